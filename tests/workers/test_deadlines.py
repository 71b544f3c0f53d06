"""Statement deadlines on connections that Django's PostgreSQL pool hands from thread to thread.

A worker limits its statements (``STATEMENT_TIMEOUT``) with the session setting
``statement_timeout``. A pooled connection (``OPTIONS["pool"]``, Django 5.1+)
goes back to the pool with its session, and the site's next request may take
it: it must not inherit the workers' limit.
"""

import asyncio
import contextlib

import pytest
from django.db import connections

from syncbind._workers.executor import run_in_pool
from tests.servers import require_services

pytestmark = pytest.mark.services

POOLED = "syncbind_pooled"


@contextlib.contextmanager
def pooled_alias():
    """A database alias on PostgreSQL's maintenance database, through a pool of one
    connection, so that every thread that uses it is handed the same one."""
    settings = {
        **connections.settings["default"],
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "CONN_MAX_AGE": 0,
        "OPTIONS": {"pool": {"min_size": 1, "max_size": 1, "timeout": 10}},
    }
    connections.settings[POOLED] = settings
    try:
        yield POOLED
    finally:
        connections[POOLED].close_pool()
        del connections.settings[POOLED]
        del connections[POOLED]


def session():
    """The connection's limit and server process, and the statements taking it cost;
    then it goes back to the pool."""
    connection = connections[POOLED]
    # Logged from before the connection is taken (CaptureQueriesContext takes it first).
    connection.queries_log.clear()
    connection.force_debug_cursor = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('statement_timeout'), pg_backend_pid()")
            limit, pid = cursor.fetchone()
    finally:
        connection.force_debug_cursor = False
    connection.close()
    return limit, pid, [query["sql"] for query in connection.queries_log][:-1]


async def test_a_pooled_connection_a_worker_limited_reaches_the_site_without_the_limit(
    django_db_blocker, settings
):
    require_services()
    settings.SYNCBIND = {"STATEMENT_TIMEOUT": 30}
    with django_db_blocker.unblock(), pooled_alias():
        # asyncio.to_thread: a thread of the site's own, as a view's would be.
        site_before = await asyncio.to_thread(session)
        worker = await run_in_pool(session)
        worker_again = await run_in_pool(session)
        site_after = await asyncio.to_thread(session)
        worker_after = await run_in_pool(session)
    pid = site_before[1]
    set_limit = "SELECT set_config('statement_timeout', '30s', false)"
    assert site_before == ("0", pid, [])
    assert worker == ("30s", pid, [set_limit])
    assert worker_again == ("30s", pid, [])  # the same physical connection: nothing to set
    assert site_after == ("0", pid, ["RESET statement_timeout"])
    assert worker_after == ("30s", pid, [set_limit])
