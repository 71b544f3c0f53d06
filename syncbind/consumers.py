"""The WebSocket transports: decode a frame, hand it to the core, send the reply.

``SyncConsumer`` is a ``JsonWebsocketConsumer`` whose handlers run in syncbind's
worker pool instead of Channels' single shared thread. ``AsyncConsumer`` is an
``AsyncJsonWebsocketConsumer`` speaking the same protocol through the same core.
Subclass either to customise ``connect``/``disconnect``; the protocol itself
lives in :mod:`syncbind.core`, live subscriptions in :mod:`syncbind.live`.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import channels.consumer
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer, JsonWebsocketConsumer

from . import core, protocol
from .connection import REVOKED_CLOSE_CODE, Connection, open_websocket
from .exceptions import SyncbindError
from .executor import run_in_pool
from .live.hub import get_hub
from .live.subscriptions import ConnectionSubscriptions
from .outbox import Outbox
from .settings import api_settings
from .throttling import RateLimit


class _Transport:
    """What both consumers share: the handshake, the hub hookup, push ordering."""

    connection: Connection | None = None
    # No channel-layer channel per connection: live pushes come from the process's
    # hub, which joins each stream's group once. A per-connection channel would cost
    # a layer receive per socket (and, on channels-redis, a slow teardown). Set
    # "default" in a subclass to also use Channels groups on the consumer itself.
    channel_layer_alias = None

    async def __call__(self, scope, receive, send):
        self.loop = asyncio.get_running_loop()
        self._hub = get_hub()
        # Every outgoing frame (accept, replies, pushes, close) goes through one
        # bounded queue, so nobody ever waits for a slow client (syncbind.outbox).
        self._outbox = Outbox(send, api_settings.MAX_OUTGOING_BYTES)
        try:
            await super().__call__(scope, receive, self._outbox.aput)
        finally:
            await self._outbox.aclose()

    async def _push_text(self, text: str) -> None:
        self._outbox.put({"type": "websocket.send", "text": text})

    def open_connection(self) -> Connection | None:
        """Authenticate the handshake; None refuses it (HTTP 403). Runs in a worker thread."""
        try:
            connection = open_websocket(
                self.scope,
                consumer=self,
                subscriptions=ConnectionSubscriptions(self._hub, self._push_text),
                throttle=RateLimit.from_setting(api_settings.RATE_LIMIT),
                outbox=self._outbox,
            )
        except SyncbindError:
            return None
        self._hub.attach(connection)
        return connection

    def accepted_subprotocol(self) -> str | None:
        """The subprotocol to accept: "syncbind" when the client offered it (it must,
        to send a token as a subprotocol; a browser fails a handshake that ignores it)."""
        return "syncbind" if "syncbind" in self.scope.get("subprotocols", ()) else None

    def close_connection(self) -> None:
        """Drop every live subscription of this connection."""
        if self.connection is not None:
            self._hub.detach(self.connection)
            if self.connection.subscriptions is not None:
                self.connection.subscriptions.clear()

    async def revoke(self) -> None:
        """Close the socket because its credentials no longer hold (code 4003)."""
        if self.connection is not None and self.connection.subscriptions is not None:
            self.connection.subscriptions.clear()
        self._outbox.put({"type": "websocket.close", "code": REVOKED_CLOSE_CODE})

    def _revoked(self) -> bool:
        # After the reply to the request that found the credentials gone, close.
        return self.connection is not None and not self.connection.valid

    async def _handling(self, handle):
        # While a message is handled, pushes to this connection wait for its reply.
        subscriptions = self.connection.subscriptions if self.connection else None
        if subscriptions is None:
            return await handle()
        subscriptions.begin()
        try:
            return await handle()
        finally:
            await subscriptions.end()


class _CollectedSend(channels.consumer.SyncConsumer):
    """Sits under WebsocketConsumer in SyncConsumer's bases: what a handler sends
    from its own worker thread is collected, and the event loop sends it when the
    handler returns. Channels' ``send`` would instead block the worker on a round
    trip to the loop for every frame (measured: one of the two costliest steps of
    a retrieve under load)."""

    _collecting: tuple[int, list[dict[str, Any]]] | None = None

    def send(self, message: dict[str, Any]) -> None:
        collecting = self._collecting
        if collecting is not None and collecting[0] == threading.get_ident():
            collecting[1].append(message)
        else:
            super().send(message)


class SyncConsumer(_Transport, JsonWebsocketConsumer, _CollectedSend):
    """The syncbind WebSocket endpoint, sync-first: ``path("ws/", SyncConsumer.as_asgi())``.

    Every handler (connect, receive, disconnect) runs in the worker pool, one
    message of this connection at a time, in arrival order. What a handler
    sends goes out, in order, as soon as it returns.
    """

    async def dispatch(self, message: dict[str, Any]) -> None:
        async def handle() -> None:
            sent, error = await run_in_pool(self._dispatch_in_pool, message)
            for outgoing in sent:
                await self._outbox.aput(outgoing)
            if error is not None:
                raise error

        await self._handling(handle)

    def _dispatch_in_pool(
        self, message: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], BaseException | None]:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        sent: list[dict[str, Any]] = []
        self._collecting = (threading.get_ident(), sent)
        try:
            handler(message)
        except BaseException as error:
            # What was sent before the failure still goes out, then the error propagates.
            return sent, error
        finally:
            self._collecting = None
        return sent, None

    def connect(self) -> None:
        self.connection = self.open_connection()
        if self.connection is None:
            self.close()
        else:
            self.accept(self.accepted_subprotocol())

    def disconnect(self, code: int) -> None:
        self.close_connection()

    def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        reply = core.handle_frame(text_data, self.connection, binary=text_data is None)
        self.send(text_data=protocol.encode(reply))
        if self._revoked():
            self.close(code=REVOKED_CLOSE_CODE)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return protocol.encode(content)


class AsyncConsumer(_Transport, AsyncJsonWebsocketConsumer):
    """The same protocol as SyncConsumer for async stacks; binding code still runs in the pool,
    and ``async def`` events are awaited on the event loop."""

    async def connect(self) -> None:
        self.connection = await run_in_pool(self.open_connection)
        if self.connection is None:
            await self.close()
        else:
            await self.accept(self.accepted_subprotocol())

    async def disconnect(self, code: int) -> None:
        await run_in_pool(self.close_connection)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        await self._handling(lambda: super(AsyncConsumer, self).websocket_receive(message))

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        reply = await core.ahandle_frame(text_data, self.connection, binary=text_data is None)
        await self.send(text_data=protocol.encode(reply))
        if self._revoked():
            await self.close(code=REVOKED_CLOSE_CODE)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return protocol.encode(content)
