"""Makes every statement of a server wait ``BENCH_QUERY_DELAY`` seconds, as across a network.

The wait is a ``time.sleep`` before the statement is sent, in the thread that
runs it: like a driver waiting on its socket, it holds no CPU and releases the
GIL. It is installed the same way in every contender's server (an execute
wrapper on each new database connection, inside syncbind's own wrapper, so
syncbind's pool sees it as waiting on the database, as it would see a slow
network), which makes it the same cost for all of them: the statements each
contender runs, times the delay.
"""

import os
import time

DELAY = float(os.environ.get("BENCH_QUERY_DELAY") or 0)


def _wait_then_execute(execute, sql, params, many, context):
    time.sleep(DELAY)
    return execute(sql, params, many, context)


def install(sender, connection, **kwargs) -> None:
    if DELAY and _wait_then_execute not in connection.execute_wrappers:
        connection.execute_wrappers.append(_wait_then_execute)
