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
A client on server A (BindingConsumer) retrieves a row and lists a filtered page; a client on
server B (AsyncBindingConsumer) updates the row; A receives the row and page pushes. Then a plain
``django shell`` process (no server at all) changes the row and deletes it; A receives the
retrieve push, then the delete push, each followed by the recomputed page.
"""

import asyncio
import json
from urllib.parse import quote

import pytest

from syncbind.testing import connect_url
from tests.livesystem import SEED, shell
from tests.servers import token_protocols, uvicorn_server

pytestmark = [pytest.mark.e2e, pytest.mark.services]

PRODUCT = "testapp.Product"
TIMEOUT = 10  # seconds to wait for any one message; generous, never asserted on


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
                connect_url(
                    f"ws://127.0.0.1:{port_a}/ws/",
                    subprotocols=token_protocols(token),
                    timeout=TIMEOUT,
                ) as a,
                connect_url(
                    f"ws://127.0.0.1:{port_b}/ws/async/",
                    subprotocols=token_protocols(token),
                    timeout=TIMEOUT,
                ) as b,
            ):
                # A subscribes to the row and to a filtered page (by retrieving / listing).
                retrieved = await a.send_event(f"{PRODUCT}.retrieve", {"id": pk})
                assert retrieved["event"] == f"{PRODUCT}.retrieve"
                row = retrieved["data"]
                assert (row["id"], row["name"], row["price"]) == (pk, "shared", "5.00")
                listed = await a.send_event(f"{PRODUCT}.list", {"filters": filters})
                assert listed["event"] == f"{PRODUCT}.list"
                page = listed["data"]
                assert page["count"] == 2
                assert page["rows"][0] == row
                other_row = page["rows"][1]
                assert other_row["id"] == other_pk

                # A write through process B...
                from_b = {**row, "name": "from B"}
                reply = await b.send_event(f"{PRODUCT}.update", {"id": pk, "name": "from B"})
                assert reply == {
                    "event": f"{PRODUCT}.update",
                    "data": {"success": True, "id": pk, "row": from_b},
                    "request_id": "t1",  # b's first request
                }
                # ...reaches the subscriber on process A: the row, and the recomputed page.
                assert await a.receive_push(f"{PRODUCT}.retrieve") == {
                    "event": f"{PRODUCT}.retrieve",
                    "data": from_b,
                }
                assert await a.receive_push(f"{PRODUCT}.list") == {
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
                assert await a.receive_push(f"{PRODUCT}.retrieve") == {
                    "event": f"{PRODUCT}.retrieve",
                    "data": from_shell,
                }
                assert await a.receive_push(f"{PRODUCT}.list") == {
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
                assert await a.receive_push(f"{PRODUCT}.delete") == {
                    "event": f"{PRODUCT}.delete",
                    "data": {"id": pk},
                }
                assert await a.receive_push(f"{PRODUCT}.list") == {
                    "event": f"{PRODUCT}.list",
                    "data": {**page, "count": 1, "rows": [other_row]},
                }

                # Nothing else arrived on either connection (B subscribed to nothing).
                assert a.pending == []
                assert b.pending == []

        asyncio.run(scenario())
