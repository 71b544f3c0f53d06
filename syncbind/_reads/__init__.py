"""Private: reads compiled once (``compile``), executed alone or batched (``execute``), and
turned into model instances (``materialise``), for requests and fan-out alike."""
