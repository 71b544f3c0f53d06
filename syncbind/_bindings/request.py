"""The Request handed to binding code: one parsed message, and the connection it came on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from django.contrib.auth.models import AnonymousUser

from syncbind._wire.protocol import Message

if TYPE_CHECKING:
    from syncbind._auth.collaborators import Consumer
    from syncbind._auth.connection import Connection

# The HTTP method each built-in action stands for: what DRF permission classes
# read as ``request.method`` (custom events are POST; save is POST when it creates).
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
    "describe": "GET",
}
#: The actions every full binding serves (its mixins' events): the event names the
#: protocol gives a meaning of its own (replies, row and page pushes).
BUILTIN_ACTIONS = frozenset(ACTION_METHODS)


#: What ``get_auto_subscribe()`` answers for a read that asks to keep its subscription
#: (``"subscribe": true``): a live view, which no other read evicts.
KEEP: Final = "keep"


def effective_action(action: str, data: dict[str, Any]) -> str:
    """What ``action`` does with ``data``: ``save`` is an ``update`` when ``data``
    names an ``id`` and a ``create`` otherwise; every other action is itself."""
    if action == "save":
        return "update" if data.get("id") is not None else "create"
    return action


def action_method(action: str, data: dict[str, Any]) -> str:
    """The HTTP method ``action`` stands for (see ``ACTION_METHODS``), whatever
    method or URL carried it."""
    if effective_action(action, data) == "create":
        return "POST"
    return ACTION_METHODS.get(action, "POST")


class Request:
    """What a binding's hooks read as ``self.request`` (and action methods receive).

    Everything about the sender is read from its :class:`~syncbind._auth.connection.Connection`
    (``user`` is the connection's user, so a user read again is seen at once);
    everything about the message from the :class:`~syncbind._wire.protocol.Message`.
    """

    __slots__ = (
        "message",
        "connection",
        "_user",
        "meta",
        "data",
        "event",
        "stream",
        "action",
        "tag",
    )

    def __init__(
        self, message: Message, connection: Connection | None = None, *, user: Any = None
    ) -> None:
        self.message = message
        self.connection = connection
        # The message's parts, read by every hook: plain attributes (a message never changes).
        self.data: dict[str, Any] = message.data
        self.event: str = message.event
        self.stream: str = message.stream
        self.action: str = message.action
        self.tag: str | None = message.tag
        # Keys a live read adds to its reply beside the data: "version", "resume".
        self.meta: dict[str, Any] = {}
        # For code that makes a request without a connection (tests, scripts).
        self._user = user

    def __repr__(self) -> str:
        return f"<Request {self.message.event} from {self.user!r}>"

    # -- the sender ----------------------------------------------------------------
    @property
    def user(self) -> Any:
        if self._user is not None:
            return self._user
        return self.connection.user if self.connection is not None else AnonymousUser()

    @property
    def auth(self) -> Any:
        return getattr(self.connection, "auth", None)

    @property
    def consumer(self) -> Consumer | None:
        """The WebSocket consumer the message came on (None over HTTP)."""
        return getattr(self.connection, "consumer", None)

    @property
    def scope(self) -> dict[str, Any]:
        """The ASGI scope of the WebSocket ({} over HTTP)."""
        return getattr(self.connection, "scope", None) or {}

    @property
    def transport(self) -> str:
        return getattr(self.connection, "transport", "websocket")

    @property
    def http_request(self) -> Any:
        """The Django HttpRequest (HTTP API only)."""
        return getattr(self.connection, "http_request", None)

    # -- the message ---------------------------------------------------------------
    @property
    def method(self) -> str:
        """The HTTP method of the ACTION (what DRF permission classes read), on every
        transport: retrieve/list/search/subscribe/unsubscribe GET, create POST,
        update PATCH, save PUT when it updates and POST when it creates, delete
        DELETE, custom events POST.

        Never the method the HTTP API received: ``POST events/`` may carry a
        delete. That one is ``http_request.method``.
        """
        return action_method(self.action, self.data)

    def with_message(self, message: Message) -> Request:
        """This request for another message (same connection)."""
        return Request(message, self.connection, user=self._user)
