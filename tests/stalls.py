"""A pytest plugin that reports what a stalled test's event loops are waiting on.

pytest-timeout ends a test after 120 s and prints the threads' stacks, which
for a hung event loop show only ``select()``. When a test (setup, call or
teardown) has run for ``SYNCBIND_STALL_REPORT`` seconds (default 90, 0: off),
this writes to the terminal every open loop's pending tasks with their stacks
and its timers, and on PostgreSQL the test database's other sessions with what
each waits on and who blocks it (a flush waiting on a worker's open transaction
would look like a hung loop too), so a hang seen once in CI says where it is.
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
import sys
import threading
import time

import pytest

_AFTER = float(os.environ.get("SYNCBIND_STALL_REPORT", "90"))
_current: dict = {"test": None, "since": None, "reported": False}


def report() -> str:
    """The open event loops' pending tasks and timers, as text."""
    out = io.StringIO()
    # type(), not isinstance(): a lazy object (Django settings, storages) would set itself up.
    loops = [o for o in gc.get_objects() if issubclass(type(o), asyncio.AbstractEventLoop)]
    for loop in loops:
        if loop.is_closed():
            continue
        out.write(f"-- {loop!r} running={loop.is_running()}\n")
        now = loop.time()
        for handle in list(getattr(loop, "_scheduled", ())):
            out.write(f"   timer in {handle.when() - now:.1f} s: {handle}\n")
        for task in asyncio.all_tasks(loop):
            out.write(f"   task {task.get_name()} cancelling={task.cancelling()}\n")
            for line in awaiting(task.get_coro()):
                out.write(f"      {line}\n")
    return out.getvalue()


def awaiting(coro) -> list[str]:
    """Where a suspended coroutine waits, outermost first, following what each frame
    awaits (``Task.print_stack`` shows only the task's own frame, not the library
    call inside it that holds the cancel)."""
    lines = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return lines


_SESSIONS = """
    SELECT pid, state, wait_event_type, wait_event, pg_blocking_pids(pid),
           now() - xact_start, application_name, left(query, 300)
    FROM pg_stat_activity
    WHERE datname = %s AND pid <> pg_backend_pid()
    ORDER BY pid
"""


def database_report(databases: dict) -> str:
    """Each PostgreSQL database's other sessions, read on a connection of its own
    (Django's are thread-bound and may be the ones stuck)."""
    out = io.StringIO()
    for alias, conf in databases.items():
        if "postgresql" not in conf.get("ENGINE", ""):
            continue
        import psycopg

        out.write(f"-- database {alias} ({conf['NAME']}): other sessions\n")
        params = {
            "dbname": conf["NAME"],
            "user": conf.get("USER") or None,
            "host": conf.get("HOST") or None,
            "port": conf.get("PORT") or None,
            "password": conf.get("PASSWORD") or None,
            "connect_timeout": 5,
        }
        with psycopg.connect(**{k: v for k, v in params.items() if v is not None}) as conn:
            for row in conn.execute(_SESSIONS, (conf["NAME"],)).fetchall():
                pid, state, wait_type, wait, blockers, age, app, query = row
                out.write(
                    f"   pid {pid} {state} waiting={wait_type}/{wait} blocked_by={blockers} "
                    f"in transaction for {age} app={app!r}: {query}\n"
                )
    return out.getvalue()


def _databases() -> dict:
    from django.conf import settings

    return settings.DATABASES if settings.configured else {}


def _watch() -> None:
    while True:
        time.sleep(1)
        since = _current["since"]
        if since is None or _current["reported"] or time.monotonic() - since < _AFTER:
            continue
        _current["reported"] = True
        text = ""
        for part in (report, lambda: database_report(_databases())):
            try:
                text += part()
            except Exception as error:  # a report must never break the run
                text += f"(no report: {error!r})\n"
        sys.__stderr__.write(f"\n== {_current['test']} has run {_AFTER:.0f} s ==\n{text}")
        sys.__stderr__.flush()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current.update(test=item.nodeid, since=time.monotonic(), reported=False)
    yield
    _current.update(since=None)


def pytest_configure(config):
    if _AFTER > 0:
        threading.Thread(target=_watch, name="syncbind-stall-report", daemon=True).start()
