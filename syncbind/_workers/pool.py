"""The worker pool: many threads for waiting, few for running.

The pool has ``THREAD_POOL_SIZE`` threads so that a slow query does not hold
up the connections behind it. When nothing waits, though, extra threads only
cost CPU: each call wakes a sleeping thread, and runnable threads hand
Python's GIL to each other (what that costs per message is measured in
BENCHMARKS.md, "What was changed in syncbind because of these measurements").
So only ``MAX_RUNNING_THREADS`` workers take new work (by default one where Python has a GIL, since only one
thread runs Python at a time and the event loop's thread is already one):

- a worker that finishes a call takes the next queued one at once, without
  sleeping, while no more than the limit are running; otherwise it goes idle.
  A call submitted while the limit is reached wakes nobody: it waits for a
  running worker to finish.
- a worker waiting on the database stops counting as running once its
  statement has run for ``statement_handoff`` seconds (an execute wrapper on
  every worker connection, installed by :mod:`syncbind._workers.deadlines`; not on SQLite,
  whose statements run in this process, on a CPU): then an idle worker is
  woken for the queued calls, so slow queries overlap as on any pool. A
  statement that ends sooner wakes nobody: waking a thread (and then trading
  the GIL with it) costs more than a fast statement's wait. A worker that is
  awake anyway (back from its statement, or done with a call) does not wait
  for another's statement to be handed off before it takes the next call.
- a worker that has been running one call (or since its last statement) for
  ``handoff`` seconds while calls are queued stops counting too, and
  another worker is woken: binding code that blocks on something else (an
  HTTP call, a lock, a sleep) holds up the queue for ``THREAD_HANDOFF`` at
  most, and calls that wait on each other cannot deadlock the pool.

The watchdog thread times both hand-offs. While statements begin and calls
are queued it looks at least every ``statement_handoff`` seconds, and then
sleeps until the first statement's hand-off is due, so a statement is timed
without a wake-up of its own; otherwise it sleeps until the next hand-off is
due, or until a call is queued (a statement beginning then wakes it).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

_local = threading.local()


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_running_limit() -> int:
    """MAX_RUNNING_THREADS when it is None: 1 where Python has a GIL (one thread runs
    Python at a time, and the event loop's is already one), the CPUs where it has none."""
    gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
    return 1 if gil_enabled else cpu_count()


class WorkerPool(Executor):
    """A ``concurrent.futures`` executor of ``size`` threads of which about
    ``running_limit`` run at once (see the module's docstring).

    ``handoff`` is how long a worker may run one call while calls are queued;
    ``statement_handoff`` (None: the class attribute) how long a statement may run
    while calls are queued before another worker is woken (0: as it begins).
    ``thread_exit`` is called on each worker thread as it stops (at shutdown).
    ``clock`` times the hand-offs (a monotonic clock in seconds; tests inject one).
    """

    #: Seconds a statement runs, while calls are queued, before another worker is
    #: woken beside its worker. About a millisecond: a fast statement (a tenth of
    #: one on a local database) costs no wake-up, a slow one still overlaps.
    statement_handoff: float = 0.001

    def __init__(
        self,
        size: int,
        running_limit: int,
        handoff: float,
        thread_name_prefix: str = "syncbind",
        thread_exit: Callable[[], None] | None = None,
        *,
        statement_handoff: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.running_limit = max(1, min(running_limit, size))
        self.handoff = handoff
        if statement_handoff is not None:
            self.statement_handoff = statement_handoff
        self._clock = clock
        self._prefix = thread_name_prefix
        self._thread_exit = thread_exit
        lock = threading.Lock()
        self._work = threading.Condition(lock)  # idle workers wait here
        self._watch = threading.Condition(lock)  # the watchdog waits here
        self._queue: deque[tuple[Future[Any], Callable[[], Any]]] = deque()
        self._threads: list[threading.Thread] = []
        # Thread ident -> since when it counts as running. Entries are added in time
        # order, so the first is the one running longest.
        self._running: dict[int, float] = {}
        # Of those, the ones waiting in a statement -> since when (in time order too).
        self._statements: dict[int, float] = {}
        self._statements_begun = 0
        self._idle = 0  # workers waiting for work, not yet woken
        self._waking = 0  # workers woken, not yet running
        self._shutdown = False
        self._watchdog: threading.Thread | None = None
        # The watchdog waits for calls to be queued, so a submit must wake it. Otherwise
        # it is awake, or sleeps until _watchdog_until, when the next hand-off is due.
        self._watchdog_idle = False
        self._watchdog_until = math.inf

    def get_statement_handoff(self) -> float:
        """Seconds a statement runs, while calls are queued, before another worker is woken."""
        return self.statement_handoff

    # -- the executor interface ------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._work:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._queue.append((future, lambda: fn(*args, **kwargs)))
            if len(self._running) + self._waking < self.running_limit:
                self._add_worker()
            elif self._watchdog is None:
                self._watchdog = self._start_thread(self._watch_loop, "watchdog")
            elif self._watchdog_idle:
                # Only then: on a timed sleep it has nothing to learn from one more
                # queued call, and waking it for each would cost a thread switch.
                self._watch.notify()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._work:
            self._shutdown = True
            self._waking += self._idle  # every idle worker is woken to stop
            self._idle = 0
            if cancel_futures:
                while self._queue:
                    self._queue.popleft()[0].cancel()
            self._work.notify_all()
            self._watch.notify_all()
            threads = list(self._threads)
            if self._watchdog is not None:
                threads.append(self._watchdog)
        if wait:
            for thread in threads:
                thread.join()

    # -- counts (tests, diagnostics) -----------------------------------------------------
    @property
    def threads(self) -> int:
        """How many worker threads exist (they are started as they are needed)."""
        with self._work:
            return len(self._threads)

    @property
    def running(self) -> int:
        """How many workers count as running now."""
        with self._work:
            return len(self._running)

    # -- waiting on something (called on a worker thread) -----------------------------
    def step_aside(self) -> None:
        """This worker is about to wait on a statement: once it has waited for
        get_statement_handoff() seconds, it stops counting and another takes the queue."""
        with self._work:
            ident = threading.get_ident()
            if ident not in self._running:
                return
            delay = self.get_statement_handoff()
            if delay <= 0:
                self._stop_counting(ident)
                return
            now = self._clock()
            self._statements[ident] = now
            self._statements_begun += 1
            # The watchdog hands it off at most one delay late; wake it only if it would
            # sleep past that (it looks every delay while statements keep beginning).
            if self._queue and self._watchdog_until > now + 2 * delay:
                self._wake_watchdog()

    def step_back(self) -> None:
        """The wait is over: this worker runs again (counted from now)."""
        with self._work:
            ident = threading.get_ident()
            self._statements.pop(ident, None)
            self._running.pop(ident, None)  # re-added last: the entries stay in time order
            self._running[ident] = self._clock()

    # -- internals (called with the lock held) --------------------------------------------
    def _add_worker(self) -> None:
        if self._idle:
            self._idle -= 1
            self._waking += 1
            self._work.notify()
        elif len(self._threads) < self.size:
            self._waking += 1
            self._threads.append(self._start_thread(self._work_loop, str(len(self._threads))))

    def _taking_work(self) -> int:
        """Workers running or woken to, less those waiting in a statement not yet handed
        off: those will be back, but an awake worker need not wait for them."""
        return len(self._running) - len(self._statements) + self._waking

    def _stop_counting(self, ident: int) -> None:
        """A worker waits on a statement: another takes the queue if there is room."""
        self._running.pop(ident, None)
        self._statements.pop(ident, None)
        if self._queue and self._taking_work() < self.running_limit:
            self._add_worker()

    def _wake_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = self._start_thread(self._watch_loop, "watchdog")
        else:
            self._watch.notify()

    def _start_thread(self, target: Callable[[], None], suffix: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=f"{self._prefix}-{suffix}", daemon=True)
        thread.start()
        return thread

    def _work_loop(self) -> None:
        ident = threading.get_ident()
        _local.pool = self
        work = self._work
        work.acquire()
        try:
            self._waking -= 1  # it was started to run
            while True:
                if self._queue:
                    future, call = self._queue.popleft()
                    self._running[ident] = self._clock()
                    work.release()
                    try:
                        if future.set_running_or_notify_cancel():
                            try:
                                future.set_result(call())
                            except BaseException as exc:
                                future.set_exception(exc)
                        del future, call
                    finally:
                        work.acquire()
                        self._running.pop(ident, None)
                        # A step_aside() never stepped back from must not outlive its call.
                        self._statements.pop(ident, None)
                    if self._taking_work() < self.running_limit:
                        continue  # the next call, without sleeping
                if self._shutdown:
                    if self._queue:
                        continue
                    break
                self._idle += 1
                work.wait()
                self._waking -= 1
        finally:
            work.release()
            if self._thread_exit is not None:
                self._thread_exit()

    def _watch_loop(self) -> None:
        seen = -1  # statements begun when it last looked
        with self._work:
            while not self._shutdown:
                if not self._queue:
                    self._sleep(None)
                    continue
                if not self._running:  # the workers woken for the queue are starting
                    self._sleep(self.handoff)
                    continue
                now = self._clock()
                ident, due = self._next_handoff(now)
                if ident is not None:
                    self._hand_off(ident)
                    continue
                if self._statements_begun != seen:
                    # Statements are beginning: look again in a statement hand-off's time,
                    # so that the next one needs no wake-up to be timed.
                    seen = self._statements_begun
                    due = min(due, now + self.get_statement_handoff())
                self._sleep(due - now)

    def _next_handoff(self, now: float) -> tuple[int | None, float]:
        """The worker to hand off now, or None and when the next hand-off is due."""
        due = math.inf
        if self._statements:
            waiting, began = next(iter(self._statements.items()))
            due = began + self.get_statement_handoff()
            if due <= now:
                return waiting, now
        oldest, since = next(iter(self._running.items()))
        if since + self.handoff <= now:
            return oldest, now
        return None, min(due, since + self.handoff)

    def _hand_off(self, ident: int) -> None:
        if ident in self._statements:
            self._stop_counting(ident)
            return
        # Running that long while calls wait: it is blocked, or has had its turn. It
        # keeps its call but no longer counts; someone else takes over.
        del self._running[ident]
        self._add_worker()

    def _sleep(self, timeout: float | None) -> None:
        self._watchdog_idle = timeout is None
        self._watchdog_until = math.inf if timeout is None else self._clock() + timeout
        self._watch.wait(timeout)
        self._watchdog_idle = False


def step_aside() -> None:
    """Called on a worker thread about to wait on something other than Python."""
    pool: WorkerPool | None = getattr(_local, "pool", None)
    if pool is not None:
        pool.step_aside()


def step_back() -> None:
    pool: WorkerPool | None = getattr(_local, "pool", None)
    if pool is not None:
        pool.step_back()


def waiting_on_database(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any
) -> Any:
    """A Django execute wrapper: while the statement runs, this worker does not count."""
    step_aside()
    try:
        return execute(sql, params, many, context)
    finally:
        step_back()
