"""Private: the parts a binding is assembled from: its lifecycle (:mod:`.lifecycle`), lists
(:mod:`.listing`) and live subscriptions (:mod:`.live`); its events (:mod:`.events`), its
request (:mod:`.request`), the registry of bindings (:mod:`.registry`), and the
Protocol its parts are typed against (:mod:`.surface`)."""
