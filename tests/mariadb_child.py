"""What a process on MariaDB sees (run by tests/e2e/test_mariadb.py in a child process).

``python -m django shell -c "from tests.mariadb_child import main; main()"``, with
``SYNCBIND_TEST_DB=mariadb``: prints one JSON object per line, for the test to assert
on: whether capture is on, then what a client subscribed in this process (in-memory
channel layer) is pushed after a ``save()``, an ``update()``, a ``notify_update()``, a
many-to-many ``add()`` and a ``delete()``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from asgiref.sync import sync_to_async

PRODUCT = "testapp.Product"


def report(**facts: Any) -> None:
    print(json.dumps(facts, default=str), flush=True)


async def pushed_row(client: Any) -> dict[str, Any]:
    """The next row push's name, stock and tags; then nothing more once it settles."""
    data = (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]
    # A change is evaluated by reading the row: each step's is done before the next
    # write, or the save's evaluation could read (and push) the bare update after it.
    await client.assert_nothing_more()
    return {"name": data["name"], "stock": data["stock"], "tags": data["tags"]}


async def scenario() -> None:
    from syncbind import notify_update
    from syncbind._live.announcer import get_announcer
    from syncbind.testing import connect
    from tests import factories
    from tests.testapp.models import Product

    async def db(func: Any, *args: Any, **kwargs: Any) -> Any:
        # As tests/conftest.py's db_call: what it commits has been announced on return.
        result = await sync_to_async(func, thread_sensitive=True)(*args, **kwargs)
        await get_announcer().drained()
        return result

    user = await db(factories.SuperUserFactory)
    product = await db(factories.ProductFactory, name="first")
    tag = await db(factories.TagFactory)
    rows = Product.objects.filter(pk=product.pk)
    async with connect(user=user) as client:
        reply = await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
        report(subscribed=reply["data"]["name"], product=product.pk, tag=tag.pk)
        await client.assert_nothing_more()

        product.name = "saved"
        await db(product.save)
        report(after_save=await pushed_row(client))

        await db(rows.update, name="updated quietly")
        await client.assert_nothing_more()
        report(after_update="nothing pushed")

        await db(notify_update, rows, stock=7)
        report(after_notify_update=await pushed_row(client))

        await db(product.tags.add, tag)
        report(after_tags_add=await pushed_row(client))

        await db(product.delete)
        report(after_delete=await client.receive_push(f"{PRODUCT}.delete"))
        await client.assert_nothing_more()


def main() -> None:
    from syncbind import _capture as capture
    from tests.testapp.models import Product

    report(enabled=capture.enabled("default"), covers=capture.covers(Product))
    asyncio.run(scenario())
