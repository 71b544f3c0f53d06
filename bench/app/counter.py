"""Counts the SQL queries the server process runs, on every thread's connection.

Each new database connection gets an execute wrapper; the harness reads the
total over HTTP (``/bench/queries/``) before and after a scenario step.
"""

import threading

_lock = threading.Lock()
_count = 0


def _count_query(execute, sql, params, many, context):
    global _count
    with _lock:
        _count += 1
    return execute(sql, params, many, context)


def install(sender, connection, **kwargs) -> None:
    if _count_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count_query)


def total() -> int:
    with _lock:
        return _count
