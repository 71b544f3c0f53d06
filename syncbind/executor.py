"""The bounded worker pool that runs binding code.

Channels runs every sync consumer handler on one shared thread per process, so
one slow query stalls every connection. syncbind runs them instead in a pool of
``THREAD_POOL_SIZE`` threads through asgiref's ``SyncToAsync`` (which keeps
contextvars and lets ``async_to_sync`` inside find the event loop). Each
consumer awaits its handlers one at a time, so messages of one connection run
in arrival order while different connections run in parallel.

Each worker thread keeps its own database connection, treated as in a Django
request cycle: ``close_old_connections()`` before and after each call closes
connections that are broken or older than CONN_MAX_AGE (with CONN_HEALTH_CHECKS
honoured), and keeps the rest for the next call on that thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync
from django.db import close_old_connections

from . import db
from .settings import api_settings

T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_size = 0


def get_executor() -> ThreadPoolExecutor:
    """The process-wide pool, created on first use with THREAD_POOL_SIZE threads."""
    global _executor, _executor_size
    size = api_settings.THREAD_POOL_SIZE
    with _lock:
        if _executor is None or _executor_size != size:
            old = _executor
            _executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=db.WORKER_PREFIX)
            _executor_size = size
            if old is not None:
                old.shutdown(wait=False)
        return _executor


def _in_request_cycle(func: Callable[..., T]) -> Callable[..., T]:
    def call(*args: Any, **kwargs: Any) -> T:
        close_old_connections()
        db.start_deadline()
        try:
            return func(*args, **kwargs)
        finally:
            db.clear_deadline()
            close_old_connections()

    return call


def run_in_pool(func: Callable[..., T], *args: Any, **kwargs: Any) -> Awaitable[T]:
    """Await ``func(*args, **kwargs)`` run in a worker thread of the pool."""
    return SyncToAsync(_in_request_cycle(func), thread_sensitive=False, executor=get_executor())(
        *args, **kwargs
    )


def _close_thread_connections() -> None:
    from django.db import connections

    connections.close_all()


def shutdown_executor() -> None:
    """Close every worker's database connections and stop the pool (tests, shutdown hooks).

    A fresh pool is created on the next use.
    """
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is None:
        return
    # One closing call per worker: each blocks on the barrier until all have started,
    # so every thread gets exactly one.
    size = len(executor._threads)
    if not size:
        executor.shutdown(wait=True)
        return
    barrier = threading.Barrier(size)

    def close_on_this_thread() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=5)
        _close_thread_connections()

    for future in [executor.submit(close_on_this_thread) for _ in range(size)]:
        future.result()
    executor.shutdown(wait=True)
