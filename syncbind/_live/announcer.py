"""The per-process announcer: group messages sent in order by a thread of its own.

A write announces its changes after it commits, a server push and a
credential change announce themselves; none of them may wait on the channel
layer, since a paused or unreachable Redis would then hold the write's reply
and the worker thread that runs it (and, the pool being small, every other
user's requests). So :func:`announce` only puts the message in a bounded FIFO
queue, and one daemon thread per process sends the messages one at a time,
in the order they were announced: a later change never overtakes an earlier
one.

A message is sent on the event loop of the code that announced it when that
loop still runs (as ``async_to_sync`` would have: a process-local layer
delivers only on its own loop), else on the announcer's own loop. Past
``MAX_PENDING_ANNOUNCEMENTS`` waiting messages the oldest is dropped, and the
loss logged once until a message is sent again; a failed send is retried once
(a pooled connection the server closed fails on first use), then logged once
per outage and dropped. The thread is started on first use and again when it
died or the process forked. As a daemon it never holds up an exiting process
for long: at exit (a management command, a ``django shell`` that saved a
row) what is queued is given ``EXIT_WAIT`` seconds to be sent.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import inspect
import logging
import os
import threading
from collections import deque
from typing import Any, NamedTuple

from syncbind._compat.asgiref import sync_caller_loop
from syncbind.settings import api_settings

logger = logging.getLogger("syncbind.live")

# Seconds between checks, while a message is sent on another thread's loop, that the
# loop still runs (a test's loop may stop under it).
LOOP_CHECK = 0.1
# Seconds an exiting process gives the announcer to send what is queued.
EXIT_WAIT = 5.0


class Announcement(NamedTuple):
    layer: Any
    group: str
    message: dict[str, Any]
    what: str
    home: asyncio.AbstractEventLoop | None


class Announcer:
    """A bounded FIFO queue of group messages and the thread that sends them."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._settled = threading.Condition(self._lock)
        self._queue: deque[Announcement] = deque()
        self._thread: threading.Thread | None = None
        # Messages ever announced, and of those the ones sent, failed or dropped.
        self.announced = 0
        self.finished = 0
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._dropping = False
        self._failing = False
        self._exit_hook = False

    def get_max_pending(self) -> int:
        return max(1, int(api_settings.MAX_PENDING_ANNOUNCEMENTS))

    # -- any thread ------------------------------------------------------------------
    def announce(self, layer: Any, group: str, message: dict[str, Any], what: str) -> None:
        """Queue ``message`` for ``group``; returns at once."""
        entry = Announcement(layer, group, message, what, _home_loop())
        limit = self.get_max_pending()
        with self._lock:
            dropped = 0
            while len(self._queue) >= limit:
                self._queue.popleft()
                dropped += 1
            self._queue.append(entry)
            self.announced += 1
            self._ensure_thread()
            self._ready.notify()
            first_loss = bool(dropped) and not self._dropping
            if dropped:
                self._dropping = True
                self._finish(dropped)
        if first_loss:
            logger.error(
                "syncbind dropped announcements: %d were waiting for the channel layer "
                "(MAX_PENDING_ANNOUNCEMENTS); pushes are lost until it answers again",
                limit,
            )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every message announced before the call was sent (or given up);
        False on timeout."""
        with self._lock:
            target = self.announced
            return self._settled.wait_for(lambda: self.finished >= target, timeout)

    async def drained(self) -> None:
        """Return once every message announced before the call was sent (or given up),
        without blocking the running loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.finished >= self.announced:
                return
            future = loop.create_future()
            self._waiters.append((self.announced, loop, future))
        await future

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def _ensure_thread(self) -> None:
        if not self._exit_hook:
            self._exit_hook = True
            atexit.register(self._at_exit)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="syncbind-announcer", daemon=True
            )
            self._thread.start()

    def _at_exit(self) -> None:
        if self.pid == os.getpid() and not self.wait(EXIT_WAIT):
            logger.error(
                "syncbind exits with %d announcements not sent (the channel layer did not answer)",
                self.pending(),
            )

    def _finish(self, count: int) -> None:
        """Count ``count`` messages as done and wake whoever waits on them (lock held)."""
        self.finished += count
        self._settled.notify_all()
        waiting = []
        for target, loop, future in self._waiters:
            if target > self.finished:
                waiting.append((target, loop, future))
                continue
            # A closed loop has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)
        self._waiters = waiting

    # -- the announcer's thread -----------------------------------------------------------
    def _run(self) -> None:
        own_loop = asyncio.new_event_loop()
        while True:
            with self._lock:
                self._ready.wait_for(lambda: bool(self._queue))
                entry = self._queue.popleft()
            try:
                self._send(entry, own_loop)
            except BaseException:  # a cancel on a stopping loop included: the thread goes on
                self._failed(entry)
            else:
                self._sent()
            finally:
                with self._lock:
                    self._finish(1)

    def _send(self, entry: Announcement, own_loop: asyncio.AbstractEventLoop) -> None:
        home = entry.home
        if home is not None and home.is_running():
            sending = _group_send(entry)
            try:
                future = asyncio.run_coroutine_threadsafe(sending, home)
            except RuntimeError:
                future = None  # closed meanwhile
            while future is not None:
                concurrent.futures.wait((future,), timeout=LOOP_CHECK)
                if future.done():
                    if not future.cancelled():
                        future.result()
                        return
                    break
                if not home.is_running():
                    # Its loop stopped with the message on it: sent from here instead.
                    future.cancel()
                    break
            if inspect.getcoroutinestate(sending) == inspect.CORO_CREATED:
                sending.close()  # never started on that loop: not an un-awaited coroutine
        own_loop.run_until_complete(_group_send(entry))

    def _failed(self, entry: Announcement) -> None:
        with self._lock:
            first = not self._failing
            self._failing = True
        if first:
            logger.error(
                "syncbind could not announce %s; pushes are lost until the channel layer "
                "answers again",
                entry.what,
                exc_info=True,
            )

    def _sent(self) -> None:
        with self._lock:
            recovered = self._failing or self._dropping
            self._failing = self._dropping = False
        if recovered:
            logger.warning("syncbind announces changes again")


async def _group_send(entry: Announcement) -> None:
    try:
        await entry.layer.group_send(entry.group, entry.message)
    except Exception:
        # After an outage the pool may still hold connections the server closed;
        # the first use of one fails, a second attempt gets a fresh connection.
        await entry.layer.group_send(entry.group, entry.message)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _home_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop the announcing code runs on or for: the running loop, or the one
    of the asgiref ``SyncToAsync`` call this worker thread runs (None: neither)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return sync_caller_loop()


_announcer: Announcer | None = None
_announcer_lock = threading.Lock()


def get_announcer() -> Announcer:
    """This process's announcer (a new one after a fork: the parent's thread is not
    here, and the parent sends what it had queued)."""
    global _announcer
    announcer = _announcer
    if announcer is not None and announcer.pid == os.getpid():
        return announcer
    with _announcer_lock:
        if _announcer is None or _announcer.pid != os.getpid():
            _announcer = Announcer()
        return _announcer


def announce(layer: Any, group: str, message: dict[str, Any], what: str) -> None:
    """Send ``message`` to ``group`` through this process's announcer (see the module
    docstring); never waits, never raises for the layer."""
    get_announcer().announce(layer, group, message, what)
