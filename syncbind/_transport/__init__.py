"""Private: what the WebSocket and HTTP transports share: the request path (:mod:`.core`)
and the one outgoing queue of a socket (:mod:`.outbox`)."""
