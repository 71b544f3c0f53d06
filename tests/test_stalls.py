"""tests/stalls.py reports what an event loop is waiting on."""

import asyncio
import contextlib
import re
import threading
import time

import psycopg
import pytest

from tests.stalls import database_report, report


@pytest.mark.unit
async def test_report_names_pending_tasks_with_their_stacks_and_timers():
    async def deep_inside():
        await asyncio.sleep(1000)

    async def waits_for_ever():
        await deep_inside()

    task = asyncio.get_running_loop().create_task(waits_for_ever(), name="stall-probe")
    await asyncio.sleep(0)
    try:
        text = report()
    finally:
        task.cancel()
    assert "task stall-probe cancelling=0" in text
    # The whole chain of awaits, down to the library call that waits.
    assert re.search(r"in waits_for_ever\n.*in deep_inside\n.*in sleep\n", text)
    assert re.search(r"timer in (999|1000)\.\d s", text)


def test_database_report_shows_a_session_holding_a_lock_and_the_one_it_blocks():
    """Run on PostgreSQL whatever the suite's own database: a flush blocked by another
    session's open transaction must say so."""
    conf = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
    }
    dsn = "dbname=postgres user=postgres host=127.0.0.1 port=5432"
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS syncbind_stall_probe (id int)")
    holder = psycopg.connect(dsn, application_name="stall-holder")
    waiter = psycopg.connect(dsn, application_name="stall-waiter", autocommit=True)
    try:
        holder.execute("SELECT * FROM syncbind_stall_probe")  # ACCESS SHARE, kept open
        waiter.execute("SET lock_timeout = '20s'")
        blocked = threading.Thread(
            target=lambda: _ignore(waiter.execute, "TRUNCATE syncbind_stall_probe")
        )
        blocked.start()
        deadline = time.monotonic() + 10
        while "waiting=Lock/relation" not in (text := database_report({"default": conf})):
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
        lines = text.splitlines()
        holding = next(line for line in lines if "'stall-holder'" in line)
        waiting = next(line for line in lines if "'stall-waiter'" in line)
        assert "idle in transaction" in holding and "SELECT * FROM syncbind_stall_probe" in holding
        holder_pid = holding.split()[1]
        assert f"blocked_by=[{holder_pid}]" in waiting and "TRUNCATE" in waiting
    finally:
        holder.rollback()
        blocked.join(30)
        holder.close()
        waiter.close()


def _ignore(call, *args):
    with contextlib.suppress(psycopg.Error):  # a lock timeout: the assertions say why
        call(*args)
