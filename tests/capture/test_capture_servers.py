"""[syncbind/_capture/] Each kind of writer, run as a process of its own, is pushed to a
subscriber of a running server (issue 22), on PostgreSQL and on a SQLite file.

How the databases are set up
----------------------------
The scenario runs once per capturing backend, whatever backends the rest of the run uses:

* ``postgresql``: the ``shared_env`` fixture (tests/livesystem.py, described in
  tests/e2e/test_distributed.py): a dedicated PostgreSQL database and Redis prefix, migrated by
  a child ``python -m django migrate``, dropped (and the keys deleted) afterwards.
* ``sqlite``: a fresh SQLite file in the test's temporary directory
  (``SYNCBIND_TEST_DB=sqlite``, ``SYNCBIND_TEST_DB_NAME=<file>``, the in-memory channel
  layer: capture needs no layer), migrated by a child ``python -m django migrate``; the
  file and its WAL are removed afterwards.

Both environments set ``SYNCBIND_TEST_TOKEN_AUTH=1`` (tests/settings.py adds
``TokenAuthentication``). The test process never opens either database with Django: the
rows and the user's token come from a ``django shell`` child.

The scenario
------------
A client of a uvicorn server (another process) retrieves a product and lists a filtered page.
Then each writer runs in a process of its own, no server in it: ``save()``,
``QuerySet.update()``, ``bulk_create()``, ``bulk_update()`` (``django shell`` children), an
``UPDATE`` from the ``psql`` or ``sqlite3`` command line, and a queryset ``delete()``. After
each, the client receives exactly the row and page pushes that write makes; each write
changes what a push shows, so a push sent twice would be taken for the next step's and fail
it. Nothing more arrives at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from syncbind.testing import SyncbindClient, connect_url
from tests.livesystem import SEED, run_child, shell
from tests.servers import ROOT, token_protocols, uvicorn_server

# Not in the e2e tail: every leg (each Django of the matrix) shows each writer pushed
# by a real server, on both databases (issue 22).

PRODUCT = "testapp.Product"
TABLE = "testapp_product"
TIMEOUT = 10  # seconds to wait for any one message; generous, never asserted on


# The ORM writers, each run by a `django shell` process of its own.
SAVE = """
p = Product.objects.get(pk={pk})
p.name = "saved"
p.save()
"""
UPDATE = 'Product.objects.filter(pk={pk}).update(name="updated")'
BULK_CREATE = """
import json
from decimal import Decimal
made = Product.objects.bulk_create([
    Product(name="new 1", price=Decimal("1.00"), category_id={category}),
    Product(name="new 2", price=Decimal("2.00"), category_id={category}),
])
print(json.dumps([p.pk for p in made]))
"""
BULK_UPDATE = """
rows = list(Product.objects.filter(pk__in={pks}))
for p in rows:
    p.name = "bulk " + p.name
Product.objects.bulk_update(rows, ["name"])
"""
DELETE = "Product.objects.filter(pk__in={pks}).delete()"


@contextmanager
def sqlite_env(path: Path) -> Iterator[dict[str, str]]:
    """A migrated SQLite file, as an environment for child processes."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "SYNCBIND_TEST_DB": "sqlite",
        "SYNCBIND_TEST_DB_NAME": str(path),
        "SYNCBIND_TEST_LAYER": "memory",
        "SYNCBIND_TEST_TOKEN_AUTH": "1",
    }
    try:
        run_child(env, "migrate", "-v0")
        yield env
    finally:
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.services), "sqlite"])
def system(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of every child process: the server, the writers."""
    if request.param == "postgresql":
        yield request.getfixturevalue("shared_env")
        return
    with sqlite_env(tmp_path / "capture.sqlite3") as env:
        yield env


def other_program(env: dict[str, str], sql: str) -> None:
    """Run ``sql`` from the ``psql`` or ``sqlite3`` command line."""
    if env["SYNCBIND_TEST_DB"] == "sqlite":
        command = ["sqlite3", "-cmd", ".timeout 5000", env["SYNCBIND_TEST_DB_NAME"], sql]
    else:
        command = [
            "psql",
            "-h",
            env.get("SYNCBIND_PG_HOST", "127.0.0.1"),
            "-p",
            env.get("SYNCBIND_PG_PORT", "5432"),
            "-U",
            env.get("SYNCBIND_PG_USER", "postgres"),
            "-d",
            env["SYNCBIND_PG_NAME"],
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{command[0]} failed:\n{done.stdout}\n{done.stderr}"


async def in_child(env: dict[str, str], code: str) -> str:
    """Run ORM ``code`` in a ``django shell`` process; return what it printed."""
    return await asyncio.to_thread(shell, env, f"from tests.testapp.models import Product\n{code}")


def shown(rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    return [(row["id"], row["name"], row["price"]) for row in rows]


def test_each_kind_of_writer_in_another_process_is_pushed(system: dict[str, str]) -> None:
    seed = json.loads(shell(system, SEED).strip().splitlines()[-1])
    with uvicorn_server("tests.asgi:application", env=system) as port:
        asyncio.run(each_writer(system, port, seed))


async def subscribe(client: SyncbindClient, seed: dict[str, Any]) -> tuple[dict, dict]:
    """Retrieve the shared product and list the cheap page; return the row and the page."""
    pk = seed["shared"]
    row = (await client.send_event(f"{PRODUCT}.retrieve", {"id": pk}))["data"]
    assert shown([row]) == [(pk, "shared", "5.00")]
    filters = {"category": seed["category"], "price__lt": "10"}
    page = (await client.send_event(f"{PRODUCT}.list", {"filters": filters}))["data"]
    assert page["count"] == 2
    assert page["rows"][0] == row
    assert shown(page["rows"][1:]) == [(seed["other"], "other", "7.00")]
    return row, page


async def each_writer(env: dict[str, str], port: int, seed: dict[str, Any]) -> None:
    pk = seed["shared"]
    async with connect_url(
        f"ws://127.0.0.1:{port}/ws/",
        subprotocols=token_protocols(quote(seed["token"])),
        timeout=TIMEOUT,
    ) as client:
        row, page = await subscribe(client, seed)
        other = page["rows"][1]

        async def pushed(changed: dict[str, Any], *more: dict[str, Any]) -> None:
            """The row push of ``changed``, and the page push showing it first."""
            assert await client.receive_push(f"{PRODUCT}.retrieve") == {
                "event": f"{PRODUCT}.retrieve",
                "data": changed,
            }
            assert await client.receive_push(f"{PRODUCT}.list") == {
                "event": f"{PRODUCT}.list",
                "data": {**page, "count": 2 + len(more), "rows": [changed, other, *more]},
            }

        # save()
        await in_child(env, SAVE.format(pk=pk))
        await pushed({**row, "name": "saved"})

        # QuerySet.update()
        await in_child(env, UPDATE.format(pk=pk))
        updated = {**row, "name": "updated"}
        await pushed(updated)

        # bulk_create(): two rows enter the page; no row push (neither is retrieved).
        printed = await in_child(env, BULK_CREATE.format(category=seed["category"]))
        made = json.loads(printed.strip().splitlines()[-1])
        page_push = await client.receive_push(f"{PRODUCT}.list")
        new_rows = page_push["data"]["rows"][2:]
        assert page_push == {
            "event": f"{PRODUCT}.list",
            "data": {**page, "count": 4, "rows": [updated, other, *new_rows]},
        }
        assert shown(new_rows) == [(made[0], "new 1", "1.00"), (made[1], "new 2", "2.00")]

        # bulk_update() of the retrieved row and a new one.
        await in_child(env, BULK_UPDATE.format(pks=[pk, made[0]]))
        renamed = {**new_rows[0], "name": "bulk new 1"}
        await pushed({**row, "name": "bulk updated"}, renamed, new_rows[1])

        # Raw SQL from another program: the psql or sqlite3 command line.
        sql = f"UPDATE {TABLE} SET name = 'raw', price = 3.00 WHERE id = {pk}"
        await asyncio.to_thread(other_program, env, sql)
        await pushed({**row, "name": "raw", "price": "3.00"}, renamed, new_rows[1])

        # A queryset delete() of the retrieved row and the new ones.
        await in_child(env, DELETE.format(pks=[pk, *made]))
        assert await client.receive_push(f"{PRODUCT}.delete") == {
            "event": f"{PRODUCT}.delete",
            "data": {"id": pk},
        }
        assert await client.receive_push(f"{PRODUCT}.list") == {
            "event": f"{PRODUCT}.list",
            "data": {**page, "count": 1, "rows": [other]},
        }

        # Nothing more was pushed: a later write by another process, to the row left on
        # the page, is the next message (the server reads the writes in commit order and
        # processes a stream's changes in order).
        await in_child(env, UPDATE.format(pk=other["id"]))
        assert await client.receive() == {
            "event": f"{PRODUCT}.list",
            "data": {**page, "count": 1, "rows": [{**other, "name": "updated"}]},
        }
