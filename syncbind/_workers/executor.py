"""The bounded worker pool that runs binding code.

Channels runs every sync consumer handler on one shared thread per process, so
one slow query stalls every connection. syncbind runs them instead in a pool of
``THREAD_POOL_SIZE`` threads (:class:`~syncbind._workers.pool.WorkerPool`) through
asgiref's ``SyncToAsync`` (which keeps contextvars and lets ``async_to_sync``
inside find the event loop). Each
consumer awaits its handlers one at a time, so messages of one connection run
in arrival order while different connections run in parallel.

Each worker thread keeps its own database connection, treated as in a Django
request cycle: ``close_old_connections()`` before and after each call closes
connections that are broken or older than CONN_MAX_AGE (with CONN_HEALTH_CHECKS
honoured), and keeps the rest for the next call on that thread.

Of the pool's threads only ``MAX_RUNNING_THREADS`` (one, where Python has a GIL)
take new work while the others wait on the database, a statement counting as
waiting once it has run for ``STATEMENT_HANDOFF`` (:mod:`syncbind._workers.pool`).

An event loop may be given an executor of its own (:func:`run_loop_on`): the
loop of ``syncbind.testing.SyncClient`` runs binding code on the test's thread,
in the test's database transaction, as Django's test client runs a view.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar, cast

from asgiref.sync import SyncToAsync
from django.db import close_old_connections, connections

from syncbind._workers import deadlines
from syncbind._workers.pool import WorkerPool, default_running_limit
from syncbind.settings import api_settings

T = TypeVar("T")

_lock = threading.Lock()
_executor: WorkerPool | None = None
_executor_key: tuple[int, int, float, float | None] | None = None
# Event loops whose binding code runs on an executor of their own (run_loop_on()).
_loop_executors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Executor] = (
    weakref.WeakKeyDictionary()
)


def _pool_key() -> tuple[int, int, float, float | None]:
    size = api_settings.THREAD_POOL_SIZE
    running = api_settings.MAX_RUNNING_THREADS or default_running_limit()
    statement = api_settings.STATEMENT_HANDOFF
    statement = None if statement is None else float(statement)
    return size, running, float(api_settings.THREAD_HANDOFF), statement


def get_executor() -> WorkerPool:
    """The process-wide pool for the current settings, created on first use."""
    global _executor, _executor_key
    key = _pool_key()
    executor = _executor
    if executor is not None and _executor_key == key:
        return executor
    with _lock:
        if _executor is None or _executor_key != key:
            old = _executor
            size, running, handoff, statement = key
            _executor = WorkerPool(
                size,
                running,
                handoff,
                thread_name_prefix=deadlines.WORKER_PREFIX,
                thread_exit=_close_thread_connections,
                statement_handoff=statement,
            )
            _executor_key = key
            if old is not None:
                old.shutdown(wait=False)
        return _executor


def _in_request_cycle(func: Callable[..., T]) -> Callable[..., T]:
    def call(*args: Any, **kwargs: Any) -> T:
        close_old_connections()
        deadlines.start_deadline()
        try:
            return func(*args, **kwargs)
        finally:
            deadlines.clear_deadline()
            close_old_connections()

    return call


def run_loop_on(loop: asyncio.AbstractEventLoop, executor: Executor | None) -> None:
    """Run what :func:`run_in_pool` is given on ``loop`` with ``executor`` (None: the pool
    again). Its calls are not treated as a request cycle: the executor's thread owns its
    database connections (a test's, inside the test's transaction)."""
    with _lock:
        if executor is None:
            _loop_executors.pop(loop, None)
        else:
            _loop_executors[loop] = executor


def run_in_pool(func: Callable[..., T], *args: Any, **kwargs: Any) -> Awaitable[T]:
    """Await ``func(*args, **kwargs)`` run in a worker thread of the pool."""
    own = _loop_executors.get(asyncio.get_running_loop()) if _loop_executors else None
    if own is not None:
        return SyncToAsync(func, thread_sensitive=False, executor=cast(ThreadPoolExecutor, own))(
            *args, **kwargs
        )
    # asgiref types its executor as a ThreadPoolExecutor but only hands it to
    # loop.run_in_executor(), which takes any concurrent.futures.Executor.
    executor = cast(ThreadPoolExecutor, get_executor())
    return SyncToAsync(_in_request_cycle(func), thread_sensitive=False, executor=executor)(
        *args, **kwargs
    )


def _close_thread_connections() -> None:

    connections.close_all()


def shutdown_executor() -> None:
    """Stop the pool, each worker closing its database connections as it stops (tests,
    shutdown hooks). A fresh pool is created on the next use."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is not None:
        executor.shutdown(wait=True)
