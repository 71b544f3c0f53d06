"""The Request handed to binding code: one parsed message plus who sent it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .protocol import Message

ACTION_METHODS = {
    "retrieve": "GET",
    "list": "GET",
    "search": "GET",
    "subscribe": "GET",
    "unsubscribe": "GET",
    "create": "POST",
    "update": "PATCH",
    "save": "PUT",
    "delete": "DELETE",
}


@dataclass(frozen=True)
class Request:
    """What a binding method receives as ``request``.

    ``data`` is the message's ``data`` object; ``user`` the authenticated user
    (or AnonymousUser); ``consumer`` the WebSocket consumer that received the
    message (None over HTTP); ``connection`` is the transport-side state of
    the sender (live subscriptions live there); ``scope`` is the ASGI scope or
    the Django HttpRequest's META-like mapping.
    """

    message: Message
    user: Any
    auth: Any = None
    consumer: Any = None
    connection: Any = None
    scope: dict[str, Any] = field(default_factory=dict)
    transport: str = "websocket"
    http_request: Any = None

    @property
    def data(self) -> dict[str, Any]:
        return self.message.data

    @property
    def event(self) -> str:
        return self.message.event

    @property
    def stream(self) -> str:
        return self.message.stream

    @property
    def action(self) -> str:
        return self.message.action

    @property
    def tag(self) -> str | None:
        return self.message.tag

    @property
    def method(self) -> str:
        """The HTTP method this action corresponds to (what DRF permission classes read).

        Over HTTP it is the real method; over WebSocket, retrieve/list/search/
        subscribe/unsubscribe are GET, create POST, update PATCH, save PUT,
        delete DELETE and custom events POST.
        """
        if self.http_request is not None:
            return self.http_request.method
        return ACTION_METHODS.get(self.action, "POST")

    @property
    def query_params(self) -> dict[str, Any]:
        return self.data

    def with_message(self, message: Message) -> Request:
        """A copy of this request for another message (same user and transport)."""
        return replace(self, message=message)
