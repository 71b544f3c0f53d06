"""Private: reads compiled once (:mod:`.compiler`), executed alone or batched
(:mod:`.execution`), and turned into model instances (:mod:`.materialise`), for
requests and fan-out alike."""
