"""Fan-out across processes: two uvicorn servers, one PostgreSQL database, channels-redis.

The scenario needs both services whatever backend the rest of the run uses, so it
makes its own PostgreSQL database (migrated and seeded by child processes), starts
two server processes on it sharing one Redis prefix, and drops it at the end.
"""

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.servers import ROOT, require_services, uvicorn_server

pytestmark = [pytest.mark.e2e, pytest.mark.services]

SEED = """
import json
from decimal import Decimal
from syncbind.authentication import make_token
from tests.factories import CategoryFactory, ProductFactory, SuperUserFactory
user = SuperUserFactory()
cheap = CategoryFactory(name="cheap things")
product = ProductFactory(name="shared", price=Decimal("5.00"), category=cheap)
ProductFactory(name="dear", price=Decimal("500.00"))
print(json.dumps({"token": make_token(user), "product": product.pk, "category": cheap.pk}))
"""


def _psql(sql):
    import psycopg

    with psycopg.connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(sql)


@pytest.fixture
def shared_env():
    require_services()
    name = f"syncbind_dist_{uuid.uuid4().hex[:10]}"
    _psql(f'CREATE DATABASE "{name}"')
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "SYNCBIND_TEST_DB": "postgres",
        "SYNCBIND_PG_NAME": name,
        "SYNCBIND_TEST_LAYER": "redis",
        "SYNCBIND_REDIS_PREFIX": f"syncbind-dist-{uuid.uuid4().hex[:8]}",
        "SYNCBIND_TEST_TOKEN_AUTH": "1",
    }
    try:
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "-v0"], env=env, cwd=ROOT, check=True
        )
        yield env
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def shell(env, code):
    """Run ``code`` in a separate ``django shell`` process; return what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "django", "shell", "-c", code],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


class Client:
    """A websockets connection that keeps messages it was not waiting for."""

    def __init__(self, ws):
        self.ws = ws
        self.kept = []

    async def _next(self, wanted):
        for index, message in enumerate(self.kept):
            if wanted(message):
                return self.kept.pop(index)
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if wanted(message):
                return message
            self.kept.append(message)

    async def call(self, event, data):
        await self.ws.send(json.dumps({"event": event, "data": data, "request_id": event}))
        return await self._next(lambda m: m.get("request_id") == event)

    async def push(self, event):
        return await self._next(lambda m: m.get("event") == event and "request_id" not in m)


def test_changes_reach_subscribers_on_another_process(shared_env):
    seed = json.loads(shell(shared_env, SEED).strip().splitlines()[-1])
    pk, token = seed["product"], seed["token"]
    with (
        uvicorn_server("tests.asgi:application", env=shared_env) as port_a,
        uvicorn_server("tests.asgi:application", env=shared_env) as port_b,
    ):

        async def scenario():
            async with (
                ws_connect(f"ws://127.0.0.1:{port_a}/ws/?token={token}") as ws_a,
                ws_connect(f"ws://127.0.0.1:{port_b}/ws/async/?token={token}") as ws_b,
            ):
                a, b = Client(ws_a), Client(ws_b)
                row = (await a.call("testapp.Product.retrieve", {"id": pk}))["data"]
                page = await a.call("testapp.Product.list#cheap", {"filters": {"price__lt": "10"}})
                assert [r["id"] for r in page["data"]["rows"]] == [pk]

                # A write through process B...
                reply = await b.call("testapp.Product.update", {"id": pk, "name": "from B"})
                assert reply["data"]["success"] is True
                # ...reaches the subscriber on process A: the row and the page.
                assert await a.push("testapp.Product.retrieve") == {
                    "event": "testapp.Product.retrieve",
                    "data": {**row, "name": "from B"},
                }
                pushed_page = await a.push("testapp.Product.list#cheap")
                assert pushed_page["data"] == {**page["data"], "rows": [{**row, "name": "from B"}]}

                # A write from a plain `django shell` process.
                await asyncio.to_thread(
                    shell,
                    shared_env,
                    f"from tests.testapp.models import Product; p = Product.objects.get(pk={pk}); "
                    "p.name = 'from the shell'; p.save()",
                )
                shell_row = (await a.push("testapp.Product.retrieve"))["data"]
                assert shell_row["name"] == "from the shell"
                shell_page = (await a.push("testapp.Product.list#cheap"))["data"]
                assert shell_page["rows"] == [shell_row]

                # A delete from the shell.
                await asyncio.to_thread(
                    shell,
                    shared_env,
                    f"from tests.testapp.models import Product; Product.objects.get(pk={pk}).delete()",
                )
                assert await a.push("testapp.Product.delete") == {
                    "event": "testapp.Product.delete",
                    "data": {"id": pk},
                }
                assert (await a.push("testapp.Product.list#cheap"))["data"]["rows"] == []
                assert a.kept == []  # nothing else was pushed

        asyncio.run(scenario())
