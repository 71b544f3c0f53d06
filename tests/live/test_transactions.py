"""[syncbind/_live/transactions.py] What one transaction pushes to a connection arrives together (issue 23, point 4).

The pushes one transaction causes used to reach a client as independent
frames, one per stream and key, so a page could show half of a transfer. The
change reader hands the hub whole transactions; their pushes to a connection
go out in one ``syncbind.batch`` frame (one push alone goes out as it is).
"""

from decimal import Decimal

import pytest
from django.db import transaction

from tests import factories
from tests.testapp.models import Category, Product

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCT = "testapp.Product"
CATEGORY = "testapp.Category"


async def assert_one_batch(client, *events):
    """Nothing more came, and what came, came in one batch frame of these events."""
    await client.assert_nothing_more()
    [together] = client.batches
    assert sorted(frame["event"] for frame in together) == sorted(events)


async def test_a_transfer_between_two_rows_arrives_in_one_frame(make_client, superuser, db_call):
    """Stock moved from one product to another: both rows and the page, at once."""
    source = await db_call(factories.ProductFactory, name="source", stock=10)
    target = await db_call(
        factories.ProductFactory, name="target", stock=0, category=source.category
    )
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve#source", {"id": source.pk})
    await client.send_event(f"{PRODUCT}.retrieve#target", {"id": target.pk})
    await client.send_event(f"{PRODUCT}.list", {"filters": {"category": source.category_id}})

    def transfer():
        with transaction.atomic():
            Product.objects.filter(pk=source.pk).update(stock=4)
            Product.objects.filter(pk=target.pk).update(stock=6)

    await db_call(transfer)
    assert (await client.receive_push(f"{PRODUCT}.retrieve#source"))["data"]["stock"] == 4
    assert (await client.receive_push(f"{PRODUCT}.retrieve#target"))["data"]["stock"] == 6
    page = await client.receive_push(f"{PRODUCT}.list")
    assert [(row["name"], row["stock"]) for row in page["data"]["rows"]] == [
        ("source", 4),
        ("target", 6),
    ]
    await assert_one_batch(
        client, f"{PRODUCT}.list", f"{PRODUCT}.retrieve#source", f"{PRODUCT}.retrieve#target"
    )


async def test_a_transaction_over_two_streams_arrives_in_one_frame(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory, name="renamed with its category")
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    await client.send_event(f"{CATEGORY}.retrieve", {"id": product.category_id})

    def both():
        with transaction.atomic():
            Category.objects.filter(pk=product.category_id).update(name="new category")
            Product.objects.filter(pk=product.pk).update(price=Decimal("9.50"))

    await db_call(both)
    assert (await client.receive_push(f"{CATEGORY}.retrieve"))["data"]["name"] == "new category"
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["price"] == "9.50"
    await assert_one_batch(client, f"{CATEGORY}.retrieve", f"{PRODUCT}.retrieve")


async def test_a_single_push_goes_out_as_it_is(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory, name="alone")
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    await db_call(Product.objects.filter(pk=product.pk).update, name="still alone")
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["name"] == "still alone"
    await client.assert_nothing_more()
    assert client.batches == []
