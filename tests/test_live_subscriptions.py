"""[syncbind/live/subscriptions.py] Per-connection limits on live subscriptions (issue 11, points 4 and 5).

A connection could once hold any number of subscriptions, each keeping its
whole request (400 tagged lists of 250 KB junk each: +98 MiB), and make every
write by anyone evaluate thousands of its keys. Now each limit answers
``limit_exceeded`` past its documented default, closes nothing, and leaves
everything within it working.
"""

import pytest

from syncbind.live import fanout
from syncbind.live.hub import get_hub
from tests import factories
from tests.testapp.models import Product

pytestmark = pytest.mark.django_db(transaction=True)

P = "testapp.Product"


async def test_reads_keep_the_most_recent_subscriptions(make_client, superuser, settings, db_call):
    """Every retrieve/list/search subscribes: past the limit the oldest of those goes."""
    settings.SYNCBIND = {"MAX_SUBSCRIPTIONS": 5}
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    for index in range(8):
        assert "data" in await client.send_event(f"{P}.list#t{index}", {})
    assert get_hub().subscriber_count(P) == 5
    product.name = "pushed to the five latest"
    await db_call(product.save)
    for index in range(3, 8):
        push = await client.receive_push(f"{P}.list#t{index}")
        assert push["data"]["rows"][0]["name"] == "pushed to the five latest"
    await client.assert_nothing_more()  # t0-t2 were dropped


async def test_explicit_subscriptions_per_connection(make_client, superuser, settings, db_call):
    settings.SYNCBIND = {"MAX_SUBSCRIPTIONS": 5}
    products = await db_call(lambda: [factories.ProductFactory() for _ in range(7)])
    client = await make_client(superuser)
    assert "data" in await client.send_event(f"{P}.list#read", {})
    for product in products[:5]:
        reply = await client.send_event(f"{P}.subscribe", {"id": product.pk})
        assert reply["data"] == {"success": True}
    # The read's subscription made room; the explicit ones are kept.
    refused = await client.send_event(f"{P}.subscribe", {"id": products[5].pk})
    assert refused["error"]["code"] == "limit_exceeded"
    assert "5 live subscriptions" in refused["error"]["message"]
    refused = await client.send_event(f"{P}.list#another", {})
    assert refused["error"]["code"] == "limit_exceeded"
    # Reading without subscribing is still fine, and so is making the same one again.
    assert "data" in await client.send_event(f"{P}.list#another", {"subscribe": False})
    assert "data" in await client.send_event(f"{P}.subscribe", {"id": products[0].pk})
    assert get_hub().subscriber_count(P) == 5
    # Dropping one makes room.
    await client.send_event(f"{P}.unsubscribe", {"id": products[0].pk})
    assert "data" in await client.send_event(f"{P}.subscribe", {"id": products[6].pk})


async def test_distinct_keys_per_connection(make_client, superuser, settings):
    settings.SYNCBIND = {"MAX_SUBSCRIPTION_KEYS": 3}
    client = await make_client(superuser)
    # One page under five tags is one key.
    for index in range(5):
        assert "data" in await client.send_event(f"{P}.subscribe#same{index}", {})
    for limit in (1, 2):
        assert "data" in await client.send_event(f"{P}.subscribe", {"limit": limit})
    refused = await client.send_event(f"{P}.subscribe", {"limit": 3})
    assert refused["error"]["code"] == "limit_exceeded"
    assert "3 different rows and pages" in refused["error"]["message"]
    assert get_hub().key_count(P) == 3


async def test_a_subscribing_request_may_not_carry_much(make_client, superuser, settings):
    settings.SYNCBIND = {"MAX_SUBSCRIPTION_REQUEST_BYTES": 300}
    client = await make_client(superuser)
    big = {"filters": {"name__icontains": "x" * 400}}  # valid, but its data would be kept
    refused = await client.send_event(f"{P}.list#big", big)
    assert refused["error"]["code"] == "limit_exceeded"
    assert get_hub().subscriber_count(P) == 0
    assert "data" in await client.send_event(f"{P}.list#big", {**big, "subscribe": False})


async def test_the_memory_attack_keeps_nothing(make_client, superuser):
    """The attack of point 4: many tagged lists, each with 250 KB of junk."""
    client = await make_client(superuser)
    junk = "x" * 250_000
    for index in range(40):
        reply = await client.send_event(f"{P}.list#m{index}", {"junk": junk})
        # A parameter no list takes is refused before anything is read or kept.
        assert reply["error"]["fields"] == {
            "junk": [
                "Unknown parameter (this takes filters, limit, ordering, page, query, subscribe)."
            ]
        }
    assert get_hub().subscriber_count() == 0


async def test_one_client_cannot_multiply_the_cost_of_every_write(
    make_client, superuser, settings, db_call, monkeypatch
):
    """The attack of point 5: thousands of distinct filtered pages from one connection."""
    settings.SYNCBIND = {"MAX_SUBSCRIPTION_KEYS": 100}
    product = await db_call(factories.ProductFactory, name="a product")
    client = await make_client(superuser)
    for index in range(150):
        reply = await client.send_event(
            f"{P}.list", {"filters": {"name__icontains": f"pattern {index}"}}
        )
        assert "data" in reply
    assert get_hub().key_count(P) == 100  # the 100 most recent

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    queries = []
    original = fanout.evaluate

    def counted(batch):
        with CaptureQueriesContext(connection) as ctx:
            result = original(batch)
        queries.append(len(ctx.captured_queries))
        return result

    monkeypatch.setattr(fanout, "evaluate", counted)
    product.name = "another name"
    await db_call(product.save)
    await client.assert_nothing_more()  # no page of its changed
    # 100 pages of one shape: one statement (LIVE_BATCH_SIZE = 100), not 100 or 200.
    assert sum(queries) == 1
    assert await db_call(Product.objects.count) == 1
