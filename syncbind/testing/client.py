"""A test client that speaks the syncbind protocol over any WebSocket transport.

:class:`SyncbindClient` matches replies to requests, keeps pushes that arrive
meanwhile and asserts on what (no longer) arrives. It reads and writes through a
transport: :class:`CommunicatorTransport` drives an ASGI application in this
process (a ``WebsocketCommunicator``: syncbind's, or Channels'),
:class:`WebSocketTransport` a real server over the network (the ``websockets`` package). :func:`connect` and
:func:`connect_url` open one of each.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from asgiref.testing import ApplicationCommunicator

from syncbind._live.transactions import BATCH_EVENT
from syncbind._wire import protocol
from syncbind.testing.communicator import WebsocketCommunicator

# What a transport reads: a text frame, or the close of the connection (with its code).
TEXT = "text"
CLOSE = "close"


class Transport(Protocol):
    async def send(self, text: str | None = None, bytes_data: bytes | None = None) -> None: ...

    async def receive(self, timeout: float) -> tuple[str, Any]:
        """``(TEXT, frame)`` or ``(CLOSE, code)``; raises TimeoutError after ``timeout``."""
        ...

    async def nothing_within(self, timeout: float) -> bool:
        """True if nothing arrives within ``timeout`` (what does arrive is kept)."""
        ...

    async def close(self) -> None: ...


class CommunicatorTransport:
    """An ASGI application in this process, through a ``WebsocketCommunicator``."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator

    async def send(self, text: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:
            await self.communicator.send_to(bytes_data=bytes_data)
        else:
            await self.communicator.send_to(text_data=text)

    async def receive(self, timeout: float) -> tuple[str, Any]:
        message = await self.communicator.receive_output(timeout)
        if message["type"] == "websocket.close":
            return CLOSE, message.get("code")
        return TEXT, message.get("text")

    async def nothing_within(self, timeout: float) -> bool:
        # receive_nothing peeks: a timeout in receive_output would end the application.
        return await self.communicator.receive_nothing(timeout, interval=0.001)

    async def close(self) -> None:
        await self.communicator.disconnect()


class WebSocketTransport:
    """A server over the network, through a ``websockets`` client connection."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._early: deque[tuple[str, Any]] = deque()

    async def send(self, text: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.ws.send(bytes_data if bytes_data is not None else text)

    async def receive(self, timeout: float) -> tuple[str, Any]:
        if self._early:
            return self._early.popleft()
        # Lazy: websockets is needed only against a real server (connect_url).
        from websockets.exceptions import ConnectionClosed

        try:
            # websockets' recv() may be cancelled without losing a frame.
            return TEXT, await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed as closed:
            return CLOSE, closed.rcvd.code if closed.rcvd is not None else None

    async def nothing_within(self, timeout: float) -> bool:
        if self._early:
            return False
        try:
            self._early.append(await self.receive(timeout))
        except TimeoutError:
            return True
        return False

    async def close(self) -> None:
        await self.ws.close()


class SyncbindClient:
    """A connection that speaks the syncbind protocol, over any :class:`Transport`."""

    def __init__(self, transport: Transport | WebsocketCommunicator, timeout: float = 5.0):
        # Channels' WebsocketCommunicator, like syncbind's, is an asgiref communicator.
        if isinstance(transport, ApplicationCommunicator):
            transport = CommunicatorTransport(transport)
        self.transport = transport
        self.timeout = timeout
        self._ids = itertools.count(1)
        # Messages read while waiting for something else, in arrival order.
        self.pending: list[dict[str, Any]] = []
        # The last version each event's replies and pushes carried (see resume()); kept
        # here, not in the messages returned, so tests compare data alone.
        self.versions: dict[str, str] = {}
        # The frames that came together in one "syncbind.batch" frame (one transaction's
        # pushes, docs/protocol.md), each list in arrival order; their messages are
        # handed out one by one like any other.
        self.batches: list[list[dict[str, Any]]] = []
        self._unpacked: list[dict[str, Any]] = []

    @property
    def communicator(self) -> WebsocketCommunicator:
        """The in-process communicator (for a client made by :func:`connect`)."""
        if not isinstance(self.transport, CommunicatorTransport):
            raise AttributeError("This client is not connected through a communicator.")
        return self.transport.communicator

    async def send_raw(self, text: str | None = None, *, bytes_data: bytes | None = None) -> None:
        await self.transport.send(text, bytes_data)

    async def _next(self, timeout: float) -> dict[str, Any]:
        if self._unpacked:
            return self._unpacked.pop(0)
        kind, value = await self.transport.receive(timeout)
        if kind == CLOSE:
            raise AssertionError(f"The server closed the connection (code {value}).")
        first, *rest = self._taken(value)
        self._unpacked.extend(rest)
        return first

    def _taken(self, text: str) -> list[dict[str, Any]]:
        """The messages of one frame (a batch frame's, one by one), versions set apart."""
        message = json.loads(text)
        if isinstance(message, dict) and message.get("event") == BATCH_EVENT:
            inner = [self._versioned(frame) for frame in message.get("data") or ()]
            self.batches.append(inner)
            return inner
        return [self._versioned(message)]

    def _versioned(self, message: Any) -> Any:
        version = message.pop("version", None) if isinstance(message, dict) else None
        if version is not None:
            self.versions[message.get("event")] = version
        return message

    async def receive(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message, whatever it is."""
        if self.pending:
            return self.pending.pop(0)
        return await self._next(timeout or self.timeout)

    async def _receive_matching(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float | None
    ) -> dict[str, Any]:
        for index, message in enumerate(self.pending):
            if predicate(message):
                return self.pending.pop(index)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or self.timeout)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"Nothing matching arrived; also received: {self.pending!r}")
            message = await self._next(remaining)
            if predicate(message):
                return message
            self.pending.append(message)

    async def send_event(
        self,
        event: str,
        data: dict[str, Any] | None = None,
        timeout: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Send a request and return its reply (matched by an automatic request_id).

        The whole reply is returned: ``reply["data"]`` on success, ``reply["error"]``
        otherwise. Pushes received meanwhile are kept for :meth:`receive_push`.
        """
        request_id = f"t{next(self._ids)}"
        envelope = {
            "event": event,
            "data": {} if data is None else data,
            "request_id": request_id,
            **extra,
        }
        await self.transport.send(protocol.encode(envelope))
        return await self._receive_matching(lambda m: m.get("request_id") == request_id, timeout)

    async def resume(
        self, event: str, data: dict[str, Any] | None = None, versions: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Send a subscribing read again with the version of the data held for it (from
        ``versions``, another client's :attr:`versions` after a reconnect, or this
        client's): the reply says ``"resume": "unchanged"`` (no data),
        ``"changed"`` or ``"expired"`` (the current data). docs/protocol.md, "Resuming"."""
        version = (versions if versions is not None else self.versions).get(event)
        if version is None:
            return await self.send_event(event, data)
        return await self.send_event(event, data, version=version)

    async def receive_push(self, event: str, timeout: float | None = None) -> dict[str, Any]:
        """The next push with exactly this event name (tag included)."""
        return await self._receive_matching(
            lambda m: m.get("event") == event and _is_push(m) and "ended" not in m,
            timeout,
        )

    async def receive_ended(self, event: str, timeout: float | None = None) -> dict[str, Any]:
        """The next frame ending a subscription pushed as ``event`` (tag included): the
        whole frame, ``{"event", "ended": {"code", "message"}}`` and, for a row,
        ``"data": {"id": pk}``."""
        return await self._receive_matching(
            lambda m: m.get("event") == event and _is_push(m) and "ended" in m, timeout
        )

    async def assert_nothing_more(self, timeout: float | None = None) -> None:
        """Fail if any message is waiting, once every change so far has been pushed.

        In-process (:func:`connect`) it waits for this process's hub to settle
        (:func:`syncbind.testing.settle`), so it needs no sleep; with ``timeout`` it
        also waits that long for late messages (for a server in another process,
        :func:`connect_url`, the timeout is all it can wait for).
        """
        if isinstance(self.transport, CommunicatorTransport):
            # Not at module level: syncbind.testing imports this module.
            from syncbind.testing import settle

            await settle()
        assert not self.pending and not self._unpacked, (
            f"Unexpected messages: {[*self.pending, *self._unpacked]!r}"
        )
        if not await self.transport.nothing_within(timeout or 0.005):
            raise AssertionError(f"Unexpected message received: {await self.receive()!r}")

    async def receive_close(self, timeout: float | None = None) -> int | None:
        """Wait for the server to close the connection; returns the close code.

        Pushes and replies that arrive first are kept for :meth:`receive_push`.
        """
        self.pending.extend(self._unpacked)
        self._unpacked.clear()
        while True:
            kind, value = await self.transport.receive(timeout or self.timeout)
            if kind == CLOSE:
                return value
            self.pending.extend(self._taken(value))

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> SyncbindClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


def _is_push(message: dict[str, Any]) -> bool:
    return "request_id" not in message and "error" not in message


class _Opening:
    """``await`` it for a client, or ``async with`` it to close the client afterwards."""

    def __init__(self, open_client: Callable[[], Awaitable[SyncbindClient]]) -> None:
        self._open_client = open_client
        self.client: SyncbindClient | None = None

    def __await__(self):
        return self._open().__await__()

    async def _open(self) -> SyncbindClient:
        self.client = await self._open_client()
        return self.client

    async def __aenter__(self) -> SyncbindClient:
        return await self._open()

    async def __aexit__(self, *exc_info: Any) -> None:
        if self.client is not None:
            await self.client.close()


def connect(
    user: Any = None,
    *,
    application: Any = None,
    path: str = "/ws/",
    headers: list[tuple[bytes, bytes]] | None = None,
    subprotocols: list[str] | None = None,
    timeout: float = 5.0,
) -> _Opening:
    """Connect to ``application`` (default: a bare BindingConsumer) as ``user``.

    Use as ``async with connect(user) as client`` or ``client = await connect(user)``.
    The user is put in the scope as AuthMiddlewareStack would (``None``: no user,
    or whatever the application's own middleware finds, e.g. a session cookie).
    Raises ConnectionRefusedError if the consumer refuses the handshake (the application
    has ended by then).
    """
    if application is None:
        # Lazy: the pytest plugin imports this module before django.setup(); consumers import models.
        from syncbind.consumers import BindingConsumer

        application = BindingConsumer.as_asgi()
    communicator = WebsocketCommunicator(
        application, path, headers=headers or [], subprotocols=subprotocols
    )
    if user is not None:
        # As AuthMiddlewareStack would; left out for None so that a real middleware
        # stack in ``application`` resolves the user itself.
        communicator.scope["user"] = user

    async def open_client() -> SyncbindClient:
        connected, code = await communicator.connect(timeout)
        if not connected:
            # As a server does after a refusal: the socket is gone, and the application
            # ends now rather than with the test's event loop.
            await communicator.disconnect(1006, timeout)
            raise ConnectionRefusedError(
                f"The consumer refused the connection (close code {code})."
            )
        return SyncbindClient(CommunicatorTransport(communicator), timeout)

    return _Opening(open_client)


def connect_url(
    url: str,
    *,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    subprotocols: list[str] | None = None,
    origin: str | None = None,
    timeout: float = 5.0,
    **options: Any,
) -> _Opening:
    """Connect to a running server at ``url`` (``ws://127.0.0.1:8000/ws/``), with the
    ``websockets`` package. Headers carry a session cookie, subprotocols a token
    (``["syncbind", "syncbind.token.<token>"]``); other keyword arguments go to
    ``websockets.asyncio.client.connect`` (e.g. ``max_queue``). Used like
    :func:`connect`."""

    async def open_client() -> SyncbindClient:
        # Lazy: websockets is needed only against a real server (connect_url).
        from websockets.asyncio.client import connect as ws_connect

        ws = await ws_connect(
            url,
            additional_headers=headers,
            subprotocols=subprotocols,  # type: ignore[arg-type]
            origin=origin,  # type: ignore[arg-type]
            open_timeout=timeout,
            **options,
        )
        return SyncbindClient(WebSocketTransport(ws), timeout)

    return _Opening(open_client)
