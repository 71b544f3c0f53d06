"""What syncbind's worker threads set on their database connections: a time limit
(and the execute wrapper of :mod:`syncbind._workers.pool`).

A request or a push evaluation may not keep a database busy longer than
``STATEMENT_TIMEOUT`` seconds. On PostgreSQL that is the connection's
``statement_timeout`` (set once per connection a worker opens, so the
database itself stops the query, also after the client is gone); on SQLite a
progress handler interrupts a statement past the deadline of the call it
runs in. Either way the request is answered ``timeout``.

A connection from Django's PostgreSQL pool (``OPTIONS["pool"]``) passes between
threads: the limit set on it is remembered per physical connection, so a
worker taking it again sets nothing, and any other thread of the site that
takes it gets it back without the limit (one ``RESET``, only then).
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from syncbind._workers import pool
from syncbind.settings import api_settings

WORKER_PREFIX = "syncbind"
_local = threading.local()


def in_worker() -> bool:
    return threading.current_thread().name.startswith(WORKER_PREFIX)


def start_deadline() -> None:
    """Called before each call a worker runs (see syncbind._workers.executor)."""
    limit = api_settings.STATEMENT_TIMEOUT
    _local.deadline = None if limit is None else time.monotonic() + limit


def clear_deadline() -> None:
    _local.deadline = None


def _past_deadline() -> int:
    deadline = getattr(_local, "deadline", None)
    return 1 if deadline is not None and time.monotonic() > deadline else 0


# Physical PostgreSQL connections a worker set a limit on -> the limit (see the
# module docstring; only a pooled one is ever met again by another thread).
_limited: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_limited_lock = threading.Lock()


def connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Receiver of Django's ``connection_created`` (connected in ``ready()``)."""
    if not in_worker():
        if connection.vendor == "postgresql":
            _set_statement_timeout(connection, None)
        return
    # A worker waiting on a statement does not count as running (syncbind._workers.pool). First
    # in the list, so that a wrapper a binding pushes and pops with
    # connection.execute_wrapper() (which pops the last one) stays balanced; the list
    # survives reconnects, hence the check.
    # SQLite runs statements in this process, on a CPU: that is running, not waiting.
    waits = connection.vendor != "sqlite"
    if waits and pool.waiting_on_database not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, pool.waiting_on_database)
    limit = api_settings.STATEMENT_TIMEOUT
    if connection.vendor == "postgresql":
        _set_statement_timeout(connection, None if limit is None else f"{limit}s")
    elif connection.vendor == "sqlite" and limit is not None:
        # Called every 10,000 virtual-machine instructions: cheap, and fine-grained enough.
        connection.connection.set_progress_handler(_past_deadline, 10_000)


def _set_statement_timeout(connection: Any, limit: str | None) -> None:
    """Give ``connection`` the ``statement_timeout`` ``limit`` (None: the database's own),
    unless it has it already."""
    raw = connection.connection
    with _limited_lock:
        if _limited.get(raw) == limit:
            return
    with connection.cursor() as cursor:
        if limit is None:
            cursor.execute("RESET statement_timeout")
        else:
            cursor.execute("SELECT set_config('statement_timeout', %s, false)", [limit])
    with _limited_lock:
        if limit is None:
            _limited.pop(raw, None)
        else:
            _limited[raw] = limit


def is_timeout(exc: BaseException) -> bool:
    """Whether a database error is one of these time limits firing."""
    cause = exc.__cause__ or exc
    name = type(cause).__name__
    return name == "QueryCanceled" or (name == "OperationalError" and "interrupted" in str(cause))
