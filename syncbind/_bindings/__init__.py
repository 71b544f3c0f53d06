"""Private: what a binding is assembled from besides :mod:`syncbind.bindings` and
:mod:`syncbind.mixins`: its lifecycle and permission checks (:mod:`.lifecycle`), its
events (:mod:`.events`), its request (:mod:`.request`), the registry of bindings
(:mod:`.registry`), and the Protocol its parts are typed against (:mod:`.surface`)."""
