"""The WebSocket transports: a frame to the core, its reply to the socket.

Both consumers hand every frame to :func:`syncbind._transport.core.handle` in the worker
pool (parsing, the binding's code and the encoding happen there) and queue
what comes back in the connection's outbox (:mod:`syncbind._transport.outbox`), the one
queue every outgoing frame goes through, in order.

- :class:`BindingConsumer`, sync-first: its ``connect()``/``disconnect()``
  hooks are plain methods run in the pool, where ``accept()``, ``send()`` and
  ``close()`` queue their frames without waiting for the event loop.
  ``async def`` events run through ``async_to_sync`` in the worker.
- :class:`AsyncBindingConsumer`: the same protocol for async stacks; its
  hooks are coroutines, and ``async def`` events are awaited on the loop.

``path("ws/", BindingConsumer.as_asgi())``. Subclass either to customise the
handshake; the protocol lives in :mod:`syncbind._transport.core`.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.consumer import get_handler_name
from channels.exceptions import AcceptConnection, DenyConnection, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from syncbind._auth.connection import Connection, open_websocket
from syncbind._bindings.lifecycle import awaited
from syncbind._compat import cpython
from syncbind._live.hub import get_hub
from syncbind._live.subscriptions import ConnectionSubscriptions
from syncbind._transport import core
from syncbind._transport.outbox import Outbox
from syncbind._wire import protocol
from syncbind._wire.protocol import (
    REVOKED_CLOSE_CODE,
    SUBPROTOCOL,
    TOO_MANY_CONNECTIONS_CLOSE_CODE,
)
from syncbind._workers.executor import run_in_pool
from syncbind.exceptions import SyncbindError
from syncbind.settings import api_settings
from syncbind.throttling import RateLimit


class _Transport(AsyncWebsocketConsumer):
    """What both consumers share: the outbox, the handshake, the request path."""

    connection: Connection | None = None
    # Why open_connection() refused the handshake, when a close code says it:
    # (code, reason); None refuses it with HTTP 403.
    refusal: tuple[int, str] | None = None
    # Live pushes come from the process's hub, which joins each stream's group once,
    # not from a channel per connection. A consumer's own channel (``channel_name``,
    # for groups of its own, as a Channels consumer uses them) is received from only
    # once its name has been read: a layer receive per socket, and on channels-redis
    # a slow teardown, are paid by the consumers that use one. None: no layer at all.
    channel_layer_alias = DEFAULT_CHANNEL_LAYER
    # connect() and disconnect() are coroutines awaited on the loop (Channels' way).
    async_hooks = False

    async def __call__(self, scope, receive, send):
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._hub = get_hub()
        # Every outgoing frame (accept, replies, pushes, close) goes through one
        # bounded queue, so nobody ever waits for a slow client (syncbind._transport.outbox).
        self._outbox = Outbox(send, api_settings.MAX_OUTGOING_BYTES)
        # @event(detached=True) events running (see _detach).
        self._detached = 0
        self._detached_lock = threading.Lock()
        self._detached_tasks: set[asyncio.Task] = set()
        # Channels' AsyncConsumer.__call__, but with the consumer's own channel received
        # from only once it is used (see channel_layer_alias and channel_name).
        self.scope = scope
        self.base_send = self._outbox.aput
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self._channel: str | None = None
        # Done when the channel is first used: the receive loop then reads it too.
        self._channel_wanted: asyncio.Future[None] | None = None
        if self.channel_layer is not None:
            self._channel = await self.channel_layer.new_channel()
            self._channel_wanted = self.loop.create_future()
        try:
            await self._receive_loop(receive)
        except StopConsumer:
            pass
        finally:
            await self._outbox.aclose()

    async def _receive_loop(self, receive: Callable[[], Any]) -> None:
        """Channels' ``await_many_dispatch``: one message at a time, from the socket
        and, once it is used, this consumer's channel. Until then an idle socket
        waits on one receive, not two (a task and its frames per connection)."""
        sources: list[Callable[[], Any]] = [receive]
        tasks = [asyncio.ensure_future(receive())]
        wanted = self._channel_wanted
        try:
            while True:
                waiting: list[asyncio.Future[Any]] = [*tasks]
                if wanted is not None:
                    waiting.append(wanted)
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if wanted is not None and wanted.done():
                    wanted = None
                    sources.append(self._channel_receive)
                    tasks.append(asyncio.ensure_future(self._channel_receive()))
                for i, task in enumerate(tasks):
                    if task.done():
                        await self.dispatch(task.result())
                        tasks[i] = asyncio.ensure_future(sources[i]())
        finally:
            for task in tasks:
                # Channels cancels and awaits each; channels-redis's receive can lose
                # the cancel on Python 3.11 and would keep this consumer for ever.
                await cpython.cancel_and_wait(task)

    @property
    def channel_name(self) -> str:
        """This consumer's own channel-layer channel (any thread): receiving from it
        starts when it is first read, e.g. by ``group_add``."""
        if self._channel is None:
            raise AttributeError("This consumer has no channel layer (channel_layer_alias).")
        if self._channel_wanted is not None and not self._channel_wanted.done():
            if threading.get_ident() == self._loop_thread:
                self._want_channel()
            else:
                self.loop.call_soon_threadsafe(self._want_channel)
        return self._channel

    def _want_channel(self) -> None:
        wanted = self._channel_wanted
        if wanted is not None and not wanted.done():
            wanted.set_result(None)

    async def _channel_receive(self) -> dict[str, Any]:
        assert self.channel_layer is not None and self._channel is not None
        return await self.channel_layer.receive(self._channel)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch closes stale database connections before every message,
        # with a hop to its shared sync thread (aclose_old_connections; its cost is in
        # BENCHMARKS.md, "What was changed in syncbind because of these measurements").
        # syncbind runs no ORM code on that thread; its workers close their connections
        # around each call (syncbind._workers.executor). Only code awaited on the loop may use
        # Django's async ORM, which runs there: AsyncBindingConsumer's
        # connect()/disconnect() keep Channels' way, and an ``async def`` event makes
        # the hop itself (syncbind._bindings.lifecycle.awaited).
        if self.async_hooks and message.get("type") != "websocket.receive":
            await super().dispatch(message)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        if inspect.iscoroutinefunction(handler):
            await handler(message)
        else:  # a group message's handler written as a sync consumer's (chat_message)
            await run_in_pool(handler, message)

    async def _join_groups(self) -> None:
        """Channels' ``groups`` class attribute, for a consumer with a channel layer."""
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)

    async def _leave_groups(self) -> None:
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    def _emit(self, message: dict[str, Any]) -> None:
        """Queue an outgoing frame, from the loop or from a worker thread (in order:
        the loop runs a worker's frames in the order it queued them)."""
        if threading.get_ident() == self._loop_thread:
            self._outbox.put(message)
        else:
            self.loop.call_soon_threadsafe(self._outbox.put, message)

    # -- the handshake (worker thread) -------------------------------------------------
    def open_connection(self) -> Connection | None:
        """Authenticate the handshake; None refuses it (HTTP 403)."""
        try:
            connection = open_websocket(
                self.scope,
                consumer=self,
                subscriptions=ConnectionSubscriptions(self._hub, self._outbox),
                throttle=RateLimit.from_setting(api_settings.RATE_LIMIT),
                outbox=self._outbox,
            )
        except SyncbindError:
            return None
        most = api_settings.MAX_CONNECTIONS_PER_USER
        if not self._hub.admit(connection, most):
            self.refusal = (
                TOO_MANY_CONNECTIONS_CLOSE_CODE,
                f"This user already has {most} connections open to this server, the most "
                "allowed; close one first.",
            )
            return None
        self.choose_push_groups(connection)
        return connection

    def refuse(self) -> None:
        """Refuse the handshake (open_connection() returned None): HTTP 403, or, for a
        limit, accepted and closed at once with a code and a reason, which a browser
        sees (it is never told an HTTP status)."""
        if self.refusal is None:
            self._emit({"type": "websocket.close"})
            return
        code, reason = self.refusal
        self._emit({"type": "websocket.accept", "subprotocol": self.accepted_subprotocol()})
        self._emit({"type": "websocket.close", "code": code, "reason": reason})

    def get_push_groups(self, connection: Connection) -> list[str]:
        """Called (worker thread) when a connection opens, and again each time its user
        is read again: the push groups it is in (:mod:`syncbind.push`), e.g.
        ``[f"team.{connection.user.team_id}"]``. None by default."""
        return []

    def choose_push_groups(self, connection: Connection) -> None:
        """Put the connection in the groups ``get_push_groups()`` gives now, and out of
        those it no longer gives (groups it joined itself with ``join()`` stay).
        Called (worker thread) at the handshake and by ``Connection.refresh()``."""
        self._hub.choose_groups(connection, self.get_push_groups(connection))

    def accepted_subprotocol(self) -> str | None:
        """The subprotocol to accept: "syncbind" when the client offered it (it must,
        to send a token as a subprotocol; a browser fails a handshake that ignores it)."""
        return SUBPROTOCOL if SUBPROTOCOL in self.scope.get("subprotocols", ()) else None

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

    # -- messages (event loop) ---------------------------------------------------------
    async def websocket_receive(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        connection = self.connection
        # While a message is handled, pushes to this connection wait for its reply.
        self._outbox.hold()
        try:
            frame = await run_in_pool(
                core.handle,
                text,
                connection,
                binary=text is None,
                detach=self._detach,
                other=self._unnamed,
            )
            if frame is not None:  # None: a detached event, answered when it is done
                self._outbox.put({"type": "websocket.send", "text": frame})
            if connection is not None and not connection.valid:
                # The request found the credentials gone: its error reply, then the close.
                self._outbox.put({"type": "websocket.close", "code": REVOKED_CLOSE_CODE})
        finally:
            self._outbox.release()

    def _detach(self, job: Callable[[], str]) -> bool:
        """Run a detached event's ``job`` beside this socket's next messages (called from
        the worker thread); its reply frame is queued when it is done. False when
        ``MAX_DETACHED_EVENTS`` already run."""
        with self._detached_lock:
            if self._detached >= api_settings.MAX_DETACHED_EVENTS:
                return False
            self._detached += 1
        self.loop.call_soon_threadsafe(self._start_detached, job)
        return True

    def _start_detached(self, job: Callable[[], str]) -> None:
        task = self.loop.create_task(self._detached_reply(job), name="syncbind-detached")
        self._detached_tasks.add(task)  # the loop keeps only weak references
        task.add_done_callback(self._detached_tasks.discard)

    async def _detached_reply(self, job: Callable[[], str]) -> None:
        try:
            self._outbox.put({"type": "websocket.send", "text": await run_in_pool(job)})
        finally:
            with self._detached_lock:
                self._detached -= 1


class BindingConsumer(_Transport):
    """The syncbind WebSocket endpoint, sync-first: ``path("ws/", BindingConsumer.as_asgi())``.

    Messages of one connection are handled one at a time, in arrival order, in
    the worker pool (connections in parallel). ``connect()`` and
    ``disconnect()`` are plain methods run in the pool too.
    """

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        await self._join_groups()
        await run_in_pool(self._handshake)

    def _handshake(self) -> None:
        self.connection = self.open_connection()
        if self.connection is None:
            self.refuse()
            return
        try:
            self.connect()
        except AcceptConnection:
            self.accept()
        except DenyConnection:
            self.close()

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        await self._leave_groups()
        await run_in_pool(self.disconnect, message.get("code"))
        await run_in_pool(self.close_connection)
        await self._hub.groups_updated()
        raise StopConsumer()

    def connect(self) -> None:
        """Called (worker thread) at the handshake, once the client is authenticated:
        accept it (the default) or refuse it (``close()``). Override as in a Channels
        ``JsonWebsocketConsumer``."""
        self.accept()

    def disconnect(self, code: int | None) -> None:
        """Called (worker thread) once the socket is closed; its subscriptions are
        dropped after it, whatever it does."""

    def receive_json(self, content: dict[str, Any]) -> None:
        """A frame that names no event (worker thread), e.g. a chat message of the
        consumer this class replaced. Override to take such frames, as a Channels
        ``JsonWebsocketConsumer`` does; by default it is answered ``bad_request``."""
        self.send_json(protocol.NoEvent(content).reply())

    def _unnamed(self, content: dict[str, Any]) -> None:
        self.receive_json(content)

    # Sync counterparts of Channels' coroutines: they queue, never wait.
    def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        """Accept the handshake; with the ``syncbind`` subprotocol when the client
        offered it and no other is given."""
        subprotocol = subprotocol or self.accepted_subprotocol()
        message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = list(headers)
        self._emit(message)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        message: dict[str, Any] = {"type": "websocket.close"}
        if code is not None and code is not True:
            message["code"] = code
        if reason:
            message["reason"] = reason
        self._emit(message)

    def send(
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        if text_data is not None:
            self._emit({"type": "websocket.send", "text": text_data})
        elif bytes_data is not None:
            self._emit({"type": "websocket.send", "bytes": bytes_data})
        if close:
            self.close(close)

    def send_json(self, content: Any, close: bool = False) -> None:
        self.send(text_data=protocol.encode(content), close=close)


class AsyncBindingConsumer(_Transport):
    """The same protocol for async stacks: ``connect()``/``disconnect()`` are
    coroutines. ``async def`` events are awaited on the event loop with either consumer."""

    async_hooks = True

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        self.connection = await run_in_pool(self.open_connection)
        if self.connection is None:
            self.refuse()
            return
        await super().websocket_connect(message)  # Channels': groups, connect()

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        try:
            await super().websocket_disconnect(message)  # Channels': groups, disconnect()
        finally:
            await run_in_pool(self.close_connection)
            await self._hub.groups_updated()

    async def connect(self) -> None:
        """Awaited at the handshake, once the client is authenticated: accept it (the
        default) or refuse it. Override as in a Channels ``AsyncJsonWebsocketConsumer``."""
        await self.accept()

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        """Accept the handshake; with the ``syncbind`` subprotocol when the client
        offered it and no other is given."""
        await super().accept(subprotocol or self.accepted_subprotocol(), headers)

    async def receive_json(self, content: dict[str, Any]) -> None:
        """A frame that names no event, awaited on the loop. Override to take such
        frames, as a Channels ``AsyncJsonWebsocketConsumer`` does; by default it is
        answered ``bad_request``."""
        await self.send_json(protocol.NoEvent(content).reply())

    def _unnamed(self, content: dict[str, Any]) -> None:
        awaited(self.receive_json(content), self.connection)

    async def send_json(self, content: Any, close: bool = False) -> None:
        await self.send(text_data=protocol.encode(content), close=close)
