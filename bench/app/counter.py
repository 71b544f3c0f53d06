"""Counts the SQL queries the server process runs, on every thread's connection.

Each new database connection gets an execute wrapper; the harness reads the
total over HTTP (``/bench/queries/``) before and after a scenario step. The
statements of syncbind's change-capture reader (its own thread, which wakes
and looks at the change table whatever the clients do) are also counted
apart, as ``reader``. With ``BENCH_SQL_DETAIL=1`` (the reconnect storm's
servers) each statement's text is tallied too, so that a step can say which
statements it ran (``/bench/queries/?statements=1``).

It also adds up the time the process spends in Python's cyclic garbage collector
(``gc.callbacks``) and counts its full collections, so that a step can say how
much of the server's time went there.
"""

import gc
import os
import threading
import time
from collections import Counter

# syncbind._capture.follower names its reader threads so.
READER_THREAD_PREFIX = "syncbind-capture-"
# A statement's text is tallied up to this many characters.
STATEMENT_CHARS = 120

_lock = threading.Lock()
_count = 0
_reader = 0
_statements: Counter[str] | None = Counter() if os.environ.get("BENCH_SQL_DETAIL") else None


def _count_query(execute, sql, params, many, context):
    global _count, _reader
    reader = threading.current_thread().name.startswith(READER_THREAD_PREFIX)
    with _lock:
        _count += 1
        if reader:
            _reader += 1
        if _statements is not None:
            text = " ".join(str(sql).split())[:STATEMENT_CHARS]
            _statements[f"[reader] {text}" if reader else text] += 1
    return execute(sql, params, many, context)


def install(sender, connection, **kwargs) -> None:
    if _count_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count_query)


def total() -> int:
    with _lock:
        return _count


def reader() -> int:
    """The statements the change-capture reader's thread ran, of ``total()``."""
    with _lock:
        return _reader


def statements() -> dict[str, int] | None:
    """Every statement's text (shortened) and how often it ran; None unless tallied."""
    with _lock:
        return None if _statements is None else dict(_statements)


_gc = {"seconds": 0.0, "full": 0, "started": 0.0}


def _on_gc(phase: str, info: dict) -> None:
    # A collection runs under the GIL in the thread that triggered it: no two overlap.
    if phase == "start":
        _gc["started"] = time.perf_counter()
        return
    _gc["seconds"] += time.perf_counter() - _gc["started"]
    if info.get("generation") == 2:
        _gc["full"] += 1


gc.callbacks.append(_on_gc)


def gc_totals() -> tuple[float, int]:
    """Seconds spent in the cyclic garbage collector so far, and full collections."""
    return _gc["seconds"], int(_gc["full"])
