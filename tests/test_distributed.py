"""Fan-out across processes: two uvicorn servers, one PostgreSQL database, channels-redis.

How the databases are set up
----------------------------
The scenario needs PostgreSQL and Redis whatever backends the rest of the run uses
(SQLite + in-memory layer by default), so it does not share the run's test database.
Instead the ``shared_env`` fixture:

* creates a dedicated PostgreSQL database with a unique name (``CREATE DATABASE`` over
  psycopg on the ``postgres`` maintenance database);
* builds one environment for every child process: ``SYNCBIND_TEST_DB=postgres`` and
  ``SYNCBIND_PG_NAME=<that database>`` (tests/settings.py then uses it as the main
  database), ``SYNCBIND_TEST_LAYER=redis`` with a ``SYNCBIND_REDIS_PREFIX`` unique to this
  test, so parallel runs never see each other's groups, and ``SYNCBIND_TEST_TOKEN_AUTH=1``
  (tests/settings.py adds ``TokenAuthentication``);
* migrates it with ``python -m django migrate`` in a child process.

The rows, the user and its token are made by a ``python -m django shell -c`` child (same
SECRET_KEY, fixed by tests/settings.py), which prints them as JSON. The test process itself
never opens that database with Django. At the end the fixture terminates the connections
left on the database, drops it, and deletes the Redis keys under its prefix.

The scenario
------------
A client on server A (SyncConsumer) retrieves a row and lists a filtered page; a client on
server B (AsyncConsumer) updates the row; A receives the row and page pushes. Then a plain
``django shell`` process (no server at all) changes the row and deletes it; A receives the
retrieve push, then the delete push, each followed by the recomputed page.
"""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from urllib.parse import quote

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.servers import ROOT, require_services, uvicorn_server

pytestmark = [pytest.mark.e2e, pytest.mark.services]

PRODUCT = "testapp.Product"
TIMEOUT = 10  # seconds to wait for any one message; generous, never asserted on

SEED = """
import json
from decimal import Decimal
from syncbind.authentication import make_token
from tests.factories import CategoryFactory, ProductFactory, SuperUserFactory
user = SuperUserFactory()
cheap = CategoryFactory(name="cheap things")
shared = ProductFactory(name="shared", price=Decimal("5.00"), category=cheap)
other = ProductFactory(name="other", price=Decimal("7.00"), category=cheap)
ProductFactory(name="dear", price=Decimal("500.00"), category=cheap)
ProductFactory(name="elsewhere", price=Decimal("1.00"))
print(json.dumps({
    "token": make_token(user), "shared": shared.pk, "other": other.pk, "category": cheap.pk,
}))
"""


def _pg_dsn(dbname):
    return (
        f"host={os.environ.get('SYNCBIND_PG_HOST', '127.0.0.1')} "
        f"port={os.environ.get('SYNCBIND_PG_PORT', '5432')} "
        f"user={os.environ.get('SYNCBIND_PG_USER', 'postgres')} dbname={dbname}"
    )


def _psql(*statements):
    import psycopg

    with psycopg.connect(_pg_dsn("postgres"), autocommit=True) as conn:
        for sql, params in statements:
            conn.execute(sql, params)


def _drop_database(name):
    # Terminate what is left connected (works on every PostgreSQL version), then drop.
    _psql(
        (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ),
        (f'DROP DATABASE IF EXISTS "{name}"', None),
    )


def _forget_redis_keys(env):
    import redis

    client = redis.Redis.from_url(env.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        keys = list(client.scan_iter(match=f"{env['SYNCBIND_REDIS_PREFIX']}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def run_child(env, *args):
    """Run ``python -m django <args>`` in a child process; return its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"django {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def shell(env, code):
    """Run ``code`` in a separate ``django shell`` process; return what it printed."""
    return run_child(env, "shell", "-c", code)


@pytest.fixture
def shared_env():
    require_services()
    name = f"syncbind_dist_{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "SYNCBIND_TEST_DB": "postgres",
        "SYNCBIND_PG_NAME": name,
        "SYNCBIND_TEST_LAYER": "redis",
        "SYNCBIND_REDIS_PREFIX": f"syncbind-dist-{uuid.uuid4().hex[:12]}",
        "SYNCBIND_TEST_TOKEN_AUTH": "1",
    }
    _psql((f'CREATE DATABASE "{name}"', None))
    try:
        run_child(env, "migrate", "-v0")
        yield env
    finally:
        _drop_database(name)
        _forget_redis_keys(env)


class Client:
    """A websockets connection that keeps the messages it was not waiting for."""

    def __init__(self, ws):
        self.ws = ws
        self.kept = []
        self.sent = 0

    async def _next(self, wanted):
        for index, message in enumerate(self.kept):
            if wanted(message):
                return self.kept.pop(index)
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            if wanted(message):
                return message
            self.kept.append(message)

    async def call(self, event, data):
        """Send an event; return its reply (matched by request_id)."""
        self.sent += 1
        request_id = self.sent
        await self.ws.send(json.dumps({"event": event, "data": data, "request_id": request_id}))
        return await self._next(lambda m: m.get("request_id") == request_id)

    async def push(self, event):
        """The next push (a message without request_id) under ``event``."""
        return await self._next(lambda m: m.get("event") == event and "request_id" not in m)


def test_changes_reach_subscribers_on_another_process(shared_env):
    seed = json.loads(shell(shared_env, SEED).strip().splitlines()[-1])
    pk, other_pk, token = seed["shared"], seed["other"], quote(seed["token"])
    filters = {"category": seed["category"], "price__lt": "10"}

    with (
        uvicorn_server("tests.asgi:application", env=shared_env) as port_a,
        uvicorn_server("tests.asgi:application", env=shared_env) as port_b,
    ):
        assert port_a != port_b

        async def scenario():
            async with (
                ws_connect(f"ws://127.0.0.1:{port_a}/ws/?token={token}") as ws_a,
                ws_connect(f"ws://127.0.0.1:{port_b}/ws/async/?token={token}") as ws_b,
            ):
                a, b = Client(ws_a), Client(ws_b)

                # A subscribes to the row and to a filtered page (by retrieving / listing).
                retrieved = await a.call(f"{PRODUCT}.retrieve", {"id": pk})
                assert retrieved["event"] == f"{PRODUCT}.retrieve"
                row = retrieved["data"]
                assert (row["id"], row["name"], row["price"]) == (pk, "shared", "5.00")
                listed = await a.call(f"{PRODUCT}.list", {"filters": filters})
                assert listed["event"] == f"{PRODUCT}.list"
                page = listed["data"]
                assert page["count"] == 2
                assert page["rows"][0] == row
                other_row = page["rows"][1]
                assert other_row["id"] == other_pk

                # A write through process B...
                from_b = {**row, "name": "from B"}
                reply = await b.call(f"{PRODUCT}.update", {"id": pk, "name": "from B"})
                assert reply == {
                    "event": f"{PRODUCT}.update",
                    "data": {"success": True, "id": pk, "row": from_b},
                    "request_id": 1,
                }
                # ...reaches the subscriber on process A: the row, and the recomputed page.
                assert await a.push(f"{PRODUCT}.retrieve") == {
                    "event": f"{PRODUCT}.retrieve",
                    "data": from_b,
                }
                assert await a.push(f"{PRODUCT}.list") == {
                    "event": f"{PRODUCT}.list",
                    "data": {**page, "rows": [from_b, other_row]},
                }

                # A write from a plain `django shell` process, which runs no server.
                await asyncio.to_thread(
                    shell,
                    shared_env,
                    f"from tests.testapp.models import Product\n"
                    f"p = Product.objects.get(pk={pk})\n"
                    f"p.name = 'from the shell'\n"
                    f"p.save()\n",
                )
                from_shell = {**row, "name": "from the shell"}
                assert await a.push(f"{PRODUCT}.retrieve") == {
                    "event": f"{PRODUCT}.retrieve",
                    "data": from_shell,
                }
                assert await a.push(f"{PRODUCT}.list") == {
                    "event": f"{PRODUCT}.list",
                    "data": {**page, "rows": [from_shell, other_row]},
                }

                # A delete from the shell.
                await asyncio.to_thread(
                    shell,
                    shared_env,
                    f"from tests.testapp.models import Product\n"
                    f"Product.objects.get(pk={pk}).delete()\n",
                )
                assert await a.push(f"{PRODUCT}.delete") == {
                    "event": f"{PRODUCT}.delete",
                    "data": {"id": pk},
                }
                assert await a.push(f"{PRODUCT}.list") == {
                    "event": f"{PRODUCT}.list",
                    "data": {**page, "count": 1, "rows": [other_row]},
                }

                # Nothing else arrived on either connection (B subscribed to nothing).
                assert a.kept == []
                assert b.kept == []

        asyncio.run(scenario())
