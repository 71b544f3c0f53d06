"""asgiref: what it keeps for a ``sync_to_async`` call and has no public way to read or set.

asgiref records, in ``SyncToAsync.threadlocal``, the event loop a worker thread
runs a ``sync_to_async`` call for (for its own ``async_to_sync``), and runs
thread-sensitive calls outside a request on ``SyncToAsync.single_thread_executor``.
Neither is documented: django/asgiref#197 ("Best way to get the current loop
with asgiref"), where the maintainer calls the thread-local internal. Both are
read as asgiref 3.x sets them (checked up to 3.13); when they are not there,
the callers fall back as if there were none. Reads are not gated on a version.
The one write (:func:`serve_loop_from_this_thread`, for ``syncbind.testing``'s
sync client) sets only what asgiref itself sets for a thread that runs a loop's
sync calls, and only where it finds it shaped as in asgiref 3.x.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import Executor

from asgiref.sync import AsyncToSync, SyncToAsync


def sync_caller_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop of the ``sync_to_async`` call this worker thread runs, or None
    (not in such a call, forked since, or asgiref no longer keeps it there).

    django/asgiref#197 (no public API; asgiref 3.x). Without it, a message announced
    from a worker thread could not be sent on the loop of the code that announced
    it, which a process-local channel layer needs (it delivers on its own loop).
    """
    local = SyncToAsync.threadlocal
    if getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    return getattr(local, "main_event_loop", None)


def thread_sensitive_executor() -> Executor | None:
    """asgiref's executor for thread-sensitive calls made outside a request (tests'
    ``sync_to_async``), or None if asgiref no longer has one there.

    Undocumented (asgiref 3.x). Its thread keeps the Django database connections a
    test's ``sync_to_async`` opened: they must be closed before the test database
    is dropped, or PostgreSQL refuses ("is being accessed by other users").
    """
    executor = getattr(SyncToAsync, "single_thread_executor", None)
    return executor if isinstance(executor, Executor) else None


def serve_loop_from_this_thread(
    loop: asyncio.AbstractEventLoop, executor: Executor
) -> Callable[[], None]:
    """Make the calling thread the one that ``loop``'s thread-sensitive ``sync_to_async``
    calls run on (through ``executor``, which this thread serves), and the thread whose
    ``async_to_sync`` and announcements go to ``loop``; returns the undo.

    It is what asgiref sets up itself for a loop that ``async_to_sync`` starts in a
    thread (``AsyncToSync.loop_thread_executors``) and for a thread running a
    ``sync_to_async`` call (``SyncToAsync.threadlocal``), with no public way to ask for
    it: django/asgiref#197 (asgiref 3.x, checked up to 3.13). Without it, Channels'
    ``database_sync_to_async`` (AuthMiddlewareStack, consumers of a project's own) would
    run on asgiref's single thread, whose database connection cannot see a test
    transaction's rows. Where asgiref no longer keeps these, nothing is set.
    """
    executors = getattr(AsyncToSync, "loop_thread_executors", None)
    local = SyncToAsync.threadlocal
    saved = {
        name: getattr(local, name, None) for name in ("main_event_loop", "main_event_loop_pid")
    }
    if isinstance(executors, dict):
        executors[loop] = executor
    local.main_event_loop, local.main_event_loop_pid = loop, os.getpid()

    def undo() -> None:
        if isinstance(executors, dict):
            executors.pop(loop, None)
        for name, value in saved.items():
            setattr(local, name, value)

    return undo
