"""Private: what the WebSocket and HTTP transports share: the request path and the outbox."""
