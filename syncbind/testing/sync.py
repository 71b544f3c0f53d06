"""A synchronous test client for ``django.test.TestCase`` and ``manage.py test`` suites.

:class:`SyncClient` is :class:`~syncbind.testing.SyncbindClient` for code that
is not async: each call drives the client on an event loop that runs in a
thread of its own (one loop per test thread, shared by the clients open on it)
and waits for the answer. While the test waits, the consumer's binding code,
its pushes' evaluations and Channels' ``database_sync_to_async`` run on the
test's own thread, as Django's test client runs a view: with the test's
database connection, inside a ``TestCase``'s transaction.

In a transaction (``TestCase``) changes are announced by model signals when
Django runs on-commit callbacks (``self.captureOnCommitCallbacks(execute=True)``):
change capture, which reads committed records of the change table from a
connection of its own, is off while the client is open. Outside one
(``TransactionTestCase``) every write commits and capture is used as in
production.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, Future
from typing import Any, TypeVar
from unittest import mock

from django.conf import settings
from django.db import connections
from django.test.utils import override_settings

from syncbind._capture.follower import stop_all
from syncbind._compat.asgiref import serve_loop_from_this_thread
from syncbind._live.announcer import get_announcer
from syncbind._workers.executor import run_loop_on
from syncbind.testing.client import SyncbindClient, connect

T = TypeVar("T")

# Seconds a call may wait beyond its client's own timeout before it is taken for a
# deadlock (binding code waiting on the test thread that waits on it).
SERVE_MARGIN = 30.0


class CallerExecutor(Executor):
    """Runs what is submitted on the thread that calls :meth:`serve_until` (the test's)."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[tuple[Future, Callable, tuple, dict] | None] = (
            queue.SimpleQueue()
        )

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        self._work.put((future, fn, args, kwargs))
        return future

    def serve_until(self, waited: Future, timeout: float) -> None:
        """Run submitted calls until ``waited`` is done; TimeoutError after ``timeout``."""
        waited.add_done_callback(lambda _: self._work.put(None))
        deadline = time.monotonic() + timeout
        while not waited.done():
            try:
                item = self._work.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError("The test client got no answer (a deadlock?).") from None
            if item is not None:
                self._run(*item)

    @staticmethod
    def _run(future: Future, fn: Callable, args: tuple, kwargs: dict) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)


class LoopSession:
    """The event loop the sync clients of one thread share, and what routes its sync work
    to that thread. Opened by the first client, closed after the last."""

    def __init__(self) -> None:
        self.executor = CallerExecutor()
        self.loop = asyncio.new_event_loop()
        self.clients = 0
        self._undo: list[Callable[[], None]] = []
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="syncbind-test-loop", daemon=True
        )

    def open(self) -> None:
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        self._thread.start()
        run_loop_on(self.loop, self.executor)
        self._undo.append(lambda: run_loop_on(self.loop, None))
        self._undo.append(serve_loop_from_this_thread(self.loop, self.executor))
        # The test owns its connection (and its transaction): Channels' per-call clean-up
        # must not close it (Django's test client likewise keeps request_finished's
        # close_old_connections away from the test's connection).
        patch = mock.patch("channels.db.close_old_connections", lambda: None)
        patch.start()
        self._undo.append(patch.stop)
        if any(db.in_atomic_block for db in connections.all(initialized_only=True)):
            self._undo.append(_signals_only())

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coroutine`` on the loop, serving its sync work on this thread meanwhile."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            self.executor.serve_until(future, timeout + SERVE_MARGIN)
        except TimeoutError:
            future.cancel()
            raise
        return future.result()

    def close(self) -> None:
        try:
            if self._thread.is_alive():
                self.run(_finish_tasks(), SERVE_MARGIN)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self._thread.is_alive():
                self._thread.join()
            self.loop.close()
            while self._undo:
                self._undo.pop()()
            stop_all()  # the next test's readers start from their own moment


async def _finish_tasks() -> None:
    """Send what was announced, then end whatever still runs on the loop."""
    await asyncio.wait_for(get_announcer().drained(), SERVE_MARGIN)
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _settled(request: Coroutine[Any, Any, T]) -> T:
    """``request``'s answer, after the hub has settled. A subscription's group may be
    joined after its first read; the hub then reads the rows again to catch up. That
    read must happen now: later, inside a TestCase, it would find and push the test's
    next writes before their on-commit callbacks ran."""
    # Not at module level: syncbind.testing imports this module.
    from syncbind.testing import settle

    answer = await request
    await settle()
    return answer


def _signals_only() -> Callable[[], None]:
    """Turn change capture off (see the module docstring); returns the undo."""
    overridden = override_settings(SYNCBIND={**getattr(settings, "SYNCBIND", {}), "CAPTURE": False})
    overridden.enable()
    return overridden.disable


_local = threading.local()


def _session() -> LoopSession:
    session = getattr(_local, "session", None)
    if session is None:
        if _running_loop() is not None:
            raise RuntimeError(
                "SyncClient is for synchronous tests: an async test awaits "
                "syncbind.testing.connect() instead."
            )
        session = LoopSession()
        session.open()
        _local.session = session
    session.clients += 1
    return session


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _release(session: LoopSession) -> None:
    session.clients -= 1
    if session.clients == 0:
        _local.session = None
        session.close()


class SyncClient:
    """A connection to the consumer for synchronous tests::

        with SyncClient(user) as client:
            reply = client.send_event("shop.Note.list")

    It connects at once (ConnectionRefusedError if the consumer refuses); keyword
    arguments are those of :func:`syncbind.testing.connect`. Methods and attributes
    are :class:`~syncbind.testing.SyncbindClient`'s, without ``await``.
    """

    def __init__(self, user: Any = None, *, timeout: float = 5.0, **kwargs: Any) -> None:
        self.timeout = timeout
        self._session = _session()
        try:
            self._client: SyncbindClient | None = self._run(
                connect(user, timeout=timeout, **kwargs)._open()
            )
        except BaseException:
            _release(self._session)
            raise

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self._session.run(coroutine, max(self.timeout, timeout or 0.0))

    @property
    def client(self) -> SyncbindClient:
        """The async client this one drives."""
        if self._client is None:
            raise RuntimeError("This client is closed.")
        return self._client

    # What the async client keeps, read as it is.
    @property
    def pending(self) -> list[dict[str, Any]]:
        return self.client.pending

    @property
    def versions(self) -> dict[str, str]:
        return self.client.versions

    @property
    def batches(self) -> list[list[dict[str, Any]]]:
        return self.client.batches

    def send_event(
        self,
        event: str,
        data: dict[str, Any] | None = None,
        timeout: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Send a request and return its whole reply (see SyncbindClient.send_event), once
        what it set off has run (see ``_settled()``)."""
        request = self.client.send_event(event, data, timeout, **extra)
        return self._run(_settled(request), timeout)

    def resume(
        self, event: str, data: dict[str, Any] | None = None, versions: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return self._run(_settled(self.client.resume(event, data, versions)))

    def receive_push(self, event: str, timeout: float | None = None) -> dict[str, Any]:
        return self._run(self.client.receive_push(event, timeout), timeout)

    def receive_ended(self, event: str, timeout: float | None = None) -> dict[str, Any]:
        return self._run(self.client.receive_ended(event, timeout), timeout)

    def receive(self, timeout: float | None = None) -> dict[str, Any]:
        return self._run(self.client.receive(timeout), timeout)

    def receive_close(self, timeout: float | None = None) -> int | None:
        return self._run(self.client.receive_close(timeout), timeout)

    def send_raw(self, text: str | None = None, *, bytes_data: bytes | None = None) -> None:
        self._run(self.client.send_raw(text, bytes_data=bytes_data))

    def assert_nothing_more(self, timeout: float | None = None) -> None:
        """Fail if any message is waiting once every change so far has been pushed."""
        self._run(self.client.assert_nothing_more(timeout), timeout)

    def settle(self, timeout: float = 10.0) -> None:
        """Return once every change committed (or, in a TestCase, whose on-commit
        callbacks ran) so far has been pushed."""
        # Not at module level: syncbind.testing imports this module.
        from syncbind.testing import settle

        self._session.run(settle(timeout), timeout)

    def close(self) -> None:
        """Close the socket (once); the last client of a thread also stops its loop."""
        if self._client is None:
            return
        client, self._client = self._client, None
        try:
            self._run(client.close())
        finally:
            _release(self._session)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if exc_info[0] is None:
            self.close()
            return
        # The test failed (a timeout ends the consumer): its error is the one to see.
        with contextlib.suppress(Exception):
            self.close()
