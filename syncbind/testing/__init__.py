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
consumer, so use ``@pytest.mark.django_db(transaction=True)``. The same client
talks to a running server with ``connect_url("ws://127.0.0.1:8000/ws/", ...)``.
Synchronous tests (``django.test.TestCase``, ``manage.py test``) use
:class:`SyncClient` (:mod:`.sync`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import TYPE_CHECKING, Any

from syncbind import _capture as capture
from syncbind._bindings.registry import registry
from syncbind._capture.follower import running as capture_running
from syncbind._live.announcer import get_announcer
from syncbind._workers.executor import run_in_pool
from syncbind.testing.client import (
    CommunicatorTransport,
    SyncbindClient,
    Transport,
    WebSocketTransport,
    connect,
    connect_url,
)
from syncbind.testing.sync import SyncClient

__all__ = [
    "CommunicatorTransport",
    "SyncClient",
    "SyncbindClient",
    "Transport",
    "WebSocketTransport",
    "connect",
    "connect_url",
    "override_bindings",
    "settle",
]

if TYPE_CHECKING:
    from syncbind.bindings import BindingBase


async def settle(timeout: float = 10.0) -> None:
    """Wait until every change committed so far has been pushed to this process's
    WebSocket connections (its hub has processed what was sent to it, and every
    outgoing frame is written). Call it instead of sleeping before asserting
    that nothing (more) was pushed.

    In order: every message announced in this process before the call is sent (the
    announcer drained); every change committed before it is read (the change reader);
    the hub has processed all of it (:meth:`~syncbind._live.hub.Hub.barrier`); every
    connection's outgoing frames are written."""
    await asyncio.wait_for(_settle(), timeout)


async def _settle() -> None:
    # Lazy: the pytest plugin imports this module before django.setup(); the hub imports models.
    from syncbind._live.hub import get_hub

    hub = get_hub()
    await get_announcer().drained()
    if capture_running():
        await run_in_pool(capture.read_all_now)
    await hub.barrier()
    while not hub.outboxes_idle():
        # Written by each outbox's own task: let them run.
        await asyncio.sleep(0.001)


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

        registry.restore(self._saved.pop())

    def __call__(self, func):

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
