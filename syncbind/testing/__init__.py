"""Helpers for testing a project that uses syncbind (and syncbind itself).

::

    from syncbind.testing import connect

    async def test_restock(user):
        async with connect(user=user) as client:
            reply = await client.send_event("shop.Product.restock", {"id": 1})
            assert reply["data"] == {"success": True}
            push = await client.receive_push("shop.Product.retrieve")
            await client.assert_nothing_more()

Database access from async tests goes through the worker threads of the
consumer, so use ``@pytest.mark.django_db(transaction=True)``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import TYPE_CHECKING, Any

from channels.testing.websocket import WebsocketCommunicator

from .. import protocol

if TYPE_CHECKING:
    from ..bindings import BindingBase


async def settle(timeout: float = 10.0) -> None:
    """Wait until every change committed so far has been pushed to this process's
    WebSocket connections (its hub has processed what was sent to it, and every
    outgoing frame is written). Call it instead of sleeping before asserting
    that nothing (more) was pushed."""
    from ..live.hub import get_hub

    await get_hub().settle(timeout)


class SyncbindClient:
    """A connected WebsocketCommunicator that speaks the syncbind protocol."""

    def __init__(self, communicator: WebsocketCommunicator, timeout: float = 5.0):
        self.communicator = communicator
        self.timeout = timeout
        self._ids = itertools.count(1)
        # Messages read while waiting for something else, in arrival order.
        self.pending: list[dict[str, Any]] = []

    async def send_raw(self, text: str | None = None, *, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:
            await self.communicator.send_to(bytes_data=bytes_data)
        else:
            await self.communicator.send_to(text_data=text)

    async def receive(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message, whatever it is."""
        if self.pending:
            return self.pending.pop(0)
        text = await self.communicator.receive_from(timeout or self.timeout)
        return json.loads(text)

    async def _receive_matching(self, predicate, timeout: float | None) -> dict[str, Any]:
        for index, message in enumerate(self.pending):
            if predicate(message):
                return self.pending.pop(index)
        deadline = asyncio.get_running_loop().time() + (timeout or self.timeout)
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"Nothing matching arrived; also received: {self.pending!r}")
            text = await self.communicator.receive_from(remaining)
            message = json.loads(text)
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
        await self.communicator.send_to(text_data=protocol.encode(envelope))
        return await self._receive_matching(lambda m: m.get("request_id") == request_id, timeout)

    async def receive_push(self, event: str, timeout: float | None = None) -> dict[str, Any]:
        """The next push with exactly this event name (tag included)."""
        return await self._receive_matching(
            lambda m: m.get("event") == event and "request_id" not in m and "error" not in m,
            timeout,
        )

    async def assert_nothing_more(self, timeout: float | None = None) -> None:
        """Fail if any message is waiting, once every change so far has been pushed.

        Waits for this process's hub to settle (:func:`settle`), so it needs no
        sleep; with ``timeout`` it also waits that long for late messages (a
        server in another process).
        """
        await settle()
        assert not self.pending, f"Unexpected messages: {self.pending!r}"
        nothing = await self.communicator.receive_nothing(timeout or 0.005, interval=0.001)
        if not nothing:
            raise AssertionError(f"Unexpected message received: {await self.receive()!r}")

    async def receive_close(self, timeout: float | None = None) -> int | None:
        """Wait for the server to close the connection; returns the close code.

        Pushes and replies that arrive first are kept for :meth:`receive_push`.
        """
        while True:
            message = await self.communicator.receive_output(timeout or self.timeout)
            if message["type"] == "websocket.close":
                return message.get("code")
            self.pending.append(json.loads(message["text"]))

    async def close(self) -> None:
        await self.communicator.disconnect()

    async def __aenter__(self) -> SyncbindClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


class _Connect:
    def __init__(self, application, path, user, headers, subprotocols, timeout):
        self.communicator = WebsocketCommunicator(
            application, path, headers=headers, subprotocols=subprotocols
        )
        if user is not None:
            # As AuthMiddlewareStack would; left out for None so that a real middleware
            # stack in ``application`` resolves the user itself.
            self.communicator.scope["user"] = user
        self.timeout = timeout
        self.client: SyncbindClient | None = None

    def __await__(self):
        return self._open().__await__()

    async def _open(self) -> SyncbindClient:
        connected, code = await self.communicator.connect(self.timeout)
        if not connected:
            raise ConnectionRefusedError(
                f"The consumer refused the connection (close code {code})."
            )
        self.client = SyncbindClient(self.communicator, self.timeout)
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
) -> _Connect:
    """Connect to ``application`` (default: a bare BindingConsumer) as ``user``.

    Use as ``async with connect(user) as client`` or ``client = await connect(user)``.
    The user is put in the scope as AuthMiddlewareStack would (``None``: no user,
    or whatever the application's own middleware finds, e.g. a session cookie).
    """
    if application is None:
        from ..consumers import BindingConsumer

        application = BindingConsumer.as_asgi()
    return _Connect(application, path, user, headers or [], subprotocols, timeout)


class override_bindings:  # noqa: N801 (used like Django's override_settings)
    """Register bindings for the duration of a block or a test, then restore the registry.

    ::

        with override_bindings(MyBinding):
            ...

        @override_bindings(MyBinding, OtherBinding)
        async def test_something(): ...

    A binding replaces whatever was bound to its stream; ``only=True`` starts
    from an empty registry instead.
    """

    def __init__(self, *bindings: type[BindingBase], only: bool = False) -> None:
        self.bindings = bindings
        self.only = only
        self._saved: list[dict[str, type]] = []

    def __enter__(self) -> override_bindings:
        from ..registry import registry

        self._saved.append(registry.snapshot())
        if self.only:
            registry.clear()
        for binding in self.bindings:
            stream = binding.get_stream()
            if registry.is_registered(stream):
                registry.unregister(stream)
            registry.register(binding)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        from ..registry import registry

        registry.restore(self._saved.pop())

    def __call__(self, func):
        import functools
        import inspect

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper
