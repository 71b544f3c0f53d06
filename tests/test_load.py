"""Concurrency and load: no lost update, no lost reply, every subscriber ends current."""

import asyncio
import os
import sys
import time
import uuid
from urllib.parse import quote

import pytest

from syncbind.authentication import make_token
from syncbind.testing import connect_url
from tests import factories
from tests.livesystem import TIMEOUT
from tests.servers import (
    ROOT,
    require_services,
    server_process,
    test_database_env,
    token_protocols,
)
from tests.testapp.models import Product

pytestmark = pytest.mark.django_db(transaction=True)


async def test_concurrent_updates_of_different_fields_lose_nothing(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory, name="start", stock=0)
    a = await make_client(superuser)
    b = await make_client(superuser)

    async def write(client, field, value_of):
        for i in range(200):
            reply = await client.send_event(
                "testapp.Product.update", {"id": product.pk, field: value_of(i)}
            )
            assert reply["data"]["success"] is True, reply

    await asyncio.gather(write(a, "name", lambda i: f"a{i}"), write(b, "stock", lambda i: i))
    product = await db_call(Product.objects.get, pk=product.pk)
    assert (product.name, product.stock) == ("a199", 199)


WRITER = """
import time
import uuid
from tests.testapp.models import Product
for i in range({writes}):
    p = Product.objects.get(pk={pk})
    p.name = f"write {{i}}"
    p.save(update_fields=["name"])
    time.sleep(0.01)
"""


@pytest.mark.slow
@pytest.mark.e2e
def test_load_500_connections_while_another_process_writes(capsys):
    connections, requests_each, writes = int(os.environ.get("LOADN", 500)), 20, 50
    user = factories.SuperUserFactory()
    hot = factories.ProductFactory(name="hot")
    others = [factories.ProductFactory(name=f"other {i}") for i in range(20)]
    require_services()  # the writer is another process: the layer between them is Redis
    env = {
        **test_database_env(),
        "SYNCBIND_TEST_TOKEN_AUTH": "1",
        "SYNCBIND_TEST_LAYER": "redis",
        "SYNCBIND_REDIS_PREFIX": f"syncbind-load-{uuid.uuid4().hex[:8]}",
    }
    token = quote(make_token(user))

    with server_process("tests.asgi:application", env=env) as (port, _process):

        async def one(index, start_line, ready, final_name):
            async with connect_url(
                f"ws://127.0.0.1:{port}/ws/",
                subprotocols=token_protocols(token),
                timeout=TIMEOUT,
                max_queue=None,
            ) as client:
                await client.send_event(
                    "testapp.Product.retrieve", {"id": hot.pk}
                )  # the subscription
                ready.append(index)
                await start_line.wait()
                replies = errors = 0
                for step in range(requests_each):
                    kind = step % 4
                    if kind == 0:
                        reply = await client.send_event(
                            "testapp.Product.list", {"limit": 10, "subscribe": False}
                        )
                    elif kind == 1:
                        other = others[(index + step) % len(others)]
                        reply = await client.send_event(
                            "testapp.Product.retrieve", {"id": other.pk, "subscribe": False}
                        )
                    elif kind == 2:
                        reply = await client.send_event(
                            "testapp.Product.search", {"query": "other", "subscribe": False}
                        )
                    else:
                        reply = await client.send_event("testapp.Product.ping", {})
                    replies += 1
                    errors += "error" in reply
                # Every subscriber ends with the final state of the row.
                final = await final_name
                latest = None
                while latest != final:
                    latest = (await client.receive_push("testapp.Product.retrieve"))["data"]["name"]
                return replies, errors

        async def scenario():
            start_line, ready = asyncio.Event(), []
            final_name = asyncio.get_running_loop().create_future()
            tasks = [
                asyncio.create_task(one(i, start_line, ready, final_name))
                for i in range(connections)
            ]
            while len(ready) < connections:  # everyone subscribed before the writes start
                failed = [t for t in tasks if t.done() and t.exception()]
                if failed:
                    raise failed[0].exception()
                await asyncio.sleep(0.05)
            started = time.monotonic()
            writer = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "django",
                "shell",
                "-c",
                WRITER.format(writes=writes, pk=hot.pk),
                cwd=ROOT,
                env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env},
            )
            start_line.set()
            assert await writer.wait() == 0
            final = await asyncio.to_thread(_name_of, hot.pk)
            assert final == f"write {writes - 1}"
            final_name.set_result(final)
            results = await asyncio.gather(*tasks)
            return results, time.monotonic() - started

        results, elapsed = asyncio.run(scenario())
    replies = sum(r for r, _ in results)
    errors = sum(e for _, e in results)
    with capsys.disabled():  # the figures belong in the test output
        print(
            f"\nload: {connections} connections x {requests_each} requests + 1 subscription, "
            f"{writes} writes from another process: {replies} replies, {errors} errors, "
            f"{replies / elapsed:.0f} replies/s over {elapsed:.1f} s"
        )
    assert errors == 0
    assert replies == connections * requests_each


def _name_of(pk):
    """Read from a helper thread, closing that thread's connection (the test database
    must have no session left when it is dropped)."""
    from django.db import connection

    try:
        return Product.objects.get(pk=pk).name
    finally:
        connection.close()
