"""Private: what a :class:`~syncbind._auth.connection.Connection` asks of the objects it holds.

Each is a Protocol, so the connection depends on what it calls and not on the
modules that implement it (the consumer, the live subscriptions, the outbox), which
themselves import the connection. The implementations are named in each docstring.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from syncbind._auth.connection import Connection
    from syncbind._live.keys import SubscriptionKey


class Authenticator(Protocol):
    """An instance of one of ``AUTHENTICATION_CLASSES``
    (:class:`syncbind.authentication.BaseAuthentication`); it may also define
    ``still_valid(connection) -> bool``, asked when the user is read again."""

    def authenticate(self, scope: dict[str, Any]) -> tuple[Any, Any] | None: ...
    def authenticate_request(self, request: Any) -> tuple[Any, Any] | None: ...


class Consumer(Protocol):
    """The WebSocket consumer the connection came on (:mod:`syncbind.consumers`)."""

    loop: asyncio.AbstractEventLoop

    def choose_push_groups(self, connection: Connection) -> None: ...
    async def revoke(self) -> None: ...


class Hub(Protocol):
    """The process's hub, as a connection asks it (:class:`syncbind._live.hub.Hub`)."""

    def join_group(self, connection: Connection, name: str) -> None: ...
    def leave_group(self, connection: Connection, name: str) -> None: ...
    def rekey(self, connection: Connection) -> None: ...


class Subscriptions(Protocol):
    """A connection's live subscriptions
    (:class:`syncbind._live.subscriptions.ConnectionSubscriptions`)."""

    connection: Connection | None

    @property
    def hub(self) -> Hub: ...
    def end_refused(self) -> int: ...
    def rekey(self) -> list[Any]: ...
    def clear(self) -> None: ...
    def followed_keys(self) -> set[SubscriptionKey]: ...
    async def push(self, frame: str) -> None: ...


class Throttle(Protocol):
    """The connection's rate limit (:class:`syncbind.throttling.RateLimit`)."""

    def allow(self) -> bool: ...


class Outbox(Protocol):
    """The connection's one outgoing queue (:class:`syncbind._transport.outbox.Outbox`)."""

    @property
    def idle(self) -> bool: ...
    def push(self, text: str) -> None: ...
