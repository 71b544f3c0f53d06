"""The WebSocket transports: decode a frame, hand it to the core, send the reply.

``SyncConsumer`` is a ``JsonWebsocketConsumer`` whose handlers run in syncbind's
worker pool instead of Channels' single shared thread. ``AsyncConsumer`` is an
``AsyncJsonWebsocketConsumer`` speaking the same protocol through the same core.
Subclass either to customise ``connect``/``disconnect``; the protocol itself
lives in :mod:`syncbind.core`.
"""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer, JsonWebsocketConsumer
from channels.consumer import get_handler_name

from . import core, protocol
from .exceptions import AuthenticationFailed
from .executor import run_in_pool
from .settings import api_settings


def open_connection(consumer: Any) -> core.Connection | None:
    """Authenticate the handshake; None means refuse it (HTTP 403). Sync, in a worker."""
    try:
        user, auth = core.authenticate(consumer.scope)
    except AuthenticationFailed:
        return None
    if not user.is_authenticated and not api_settings.ANONYMOUS_CONNECTION_ALLOWED:
        return None
    return core.Connection(user=user, auth=auth, scope=consumer.scope, consumer=consumer)


class SyncConsumer(JsonWebsocketConsumer):
    """The syncbind WebSocket endpoint, sync-first: ``path("ws/", SyncConsumer.as_asgi())``.

    Every handler (connect, receive, disconnect) runs in the worker pool, one
    message of this connection at a time, in arrival order.
    """

    connection: core.Connection | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        await run_in_pool(self._dispatch_in_pool, message)

    def _dispatch_in_pool(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        handler(message)

    def connect(self) -> None:
        self.connection = open_connection(self)
        if self.connection is None:
            self.close()
        else:
            self.accept()

    def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        reply = core.handle_frame(text_data, self.connection, binary=text_data is None)
        self.send(text_data=protocol.encode(reply))

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return protocol.encode(content)


class AsyncConsumer(AsyncJsonWebsocketConsumer):
    """The same protocol as SyncConsumer for async stacks; binding code still runs in the pool,
    and ``async def`` events are awaited on the event loop."""

    connection: core.Connection | None = None

    async def connect(self) -> None:
        self.connection = await run_in_pool(open_connection, self)
        if self.connection is None:
            await self.close()
        else:
            await self.accept()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        reply = await core.ahandle_frame(text_data, self.connection, binary=text_data is None)
        await self.send(text_data=protocol.encode(reply))

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return protocol.encode(content)
