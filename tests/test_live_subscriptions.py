"""[syncbind/live/subscriptions.py] Per-connection limits on live subscriptions (issue 11, points 4 and 5).

A connection could once hold any number of subscriptions, each keeping its
whole request (400 tagged lists of 250 KB junk each: +98 MiB), and make every
write by anyone evaluate thousands of its keys. Now each limit answers
``limit_exceeded`` past its documented default, closes nothing, and leaves
everything within it working.
"""

import gc
import tracemalloc

import pytest

from syncbind import protocol
from syncbind.live import fanout
from syncbind.live.hub import get_hub
from syncbind.testing import settle
from tests import factories
from tests.testapp.models import Product

pytestmark = pytest.mark.django_db(transaction=True)

P = "testapp.Product"
# What one followed row or page, and one subscription, may keep besides the pages
# kept (docs/subscriptions.md, "Limits").
PER_KEY = 24 * 1024
PER_SUBSCRIPTION = 4 * 1024


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


# -- Issue 21, point 7: what subscriptions keep is bounded in bytes ---------------------

T = "testapp.Task"
BLOB = 20_000  # characters of text in each large row


def large_tasks(owner, count):
    """``count`` of ``owner``'s tasks, each carrying BLOB characters of text."""
    return [
        factories.TaskFactory(owner=owner, meta={"blob": f"{index:05d}" + "x" * BLOB})
        for index in range(count)
    ]


async def retained_by(action):
    """Bytes still allocated (traced) after ``await action()``, with what it returned dropped."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        await action()
        await settle()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


async def test_two_hundred_subscriptions_of_large_rows_keep_no_rows(make_client, db_call):
    """The attack: 200 subscriptions (100 rows under two tags each) to rows of 20 KB.

    Each kept its first reply's data: 200 x 20 KB = 4 MB pinned by one socket within
    every count limit. Now each keeps a digest; what the socket pins is its
    subscriptions' requests and bookkeeping (docs/subscriptions.md, "Limits").
    """
    user = await db_call(factories.UserFactory)
    tasks = await db_call(large_tasks, user, 100)
    client = await make_client(user)
    # Warm up what one subscription allocates once per process (caches, the hub).
    assert "data" in await client.send_event(f"{T}.retrieve#warm", {"id": tasks[0].pk})
    await client.send_event(f"{T}.unsubscribe#warm", {})

    async def subscribe_everything():
        for tag in ("a", "b"):
            for task in tasks:
                reply = await client.send_event(f"{T}.retrieve#{tag}", {"id": task.pk})
                assert len(reply["data"]["meta"]["blob"]) == BLOB + 5

    grown = await retained_by(subscribe_everything)
    assert get_hub().subscriber_count(T) == 200
    assert grown < 100 * PER_KEY + 200 * PER_SUBSCRIPTION, f"{grown} bytes kept by 200"


async def test_pages_kept_per_connection_are_bounded_in_bytes(make_client, settings, db_call):
    """Pages are kept to be updated in place: lists evict the oldest past MAX_SUBSCRIPTION_BYTES.

    Ten pages of ten 20 KB rows (200 KB each) under a 450 KB limit: every list is
    answered, the two latest stay live, and the memory kept is those two pages.
    """
    settings.SYNCBIND = {"MAX_SUBSCRIPTION_BYTES": 450_000}
    user = await db_call(factories.UserFactory)
    tasks = await db_call(large_tasks, user, 100)
    client = await make_client(user)
    assert "data" in await client.send_event(f"{T}.list#warm", {"limit": 1})
    await client.send_event(f"{T}.unsubscribe#warm", {})

    async def list_ten_pages():
        for page in range(1, 11):
            reply = await client.send_event(f"{T}.list#p{page}", {"limit": 10, "page": page})
            assert [row["id"] for row in reply["data"]["rows"]] == [
                task.pk for task in tasks[(page - 1) * 10 : page * 10]
            ]

    grown = await retained_by(list_ten_pages)
    assert get_hub().subscriber_count(T) == 2
    assert grown < 2 * 450_000 + 10 * PER_KEY, f"{grown} bytes kept by 10 pages"
    # Only the two latest pages are pushed to.
    for task in (tasks[0], tasks[80], tasks[95]):
        task.title = f"renamed {task.pk}"
        await db_call(task.save)
    for page, task in ((9, tasks[80]), (10, tasks[95])):
        push = await client.receive_push(f"{T}.list#p{page}")
        assert push["data"]["rows"][task.pk - tasks[(page - 1) * 10].pk]["title"] == task.title
    await client.assert_nothing_more()


async def test_explicit_subscriptions_past_the_byte_limit_are_refused(
    make_client, settings, db_call
):
    settings.SYNCBIND = {"MAX_SUBSCRIPTION_BYTES": 300_000}
    user = await db_call(factories.UserFactory)
    tasks = await db_call(large_tasks, user, 20)
    client = await make_client(user)
    assert len((await client.send_event(f"{T}.subscribe", {"limit": 10}))["data"]["rows"]) == 10
    refused = await client.send_event(f"{T}.subscribe", {"limit": 10, "page": 2})
    assert refused == {
        "event": f"{T}.subscribe",
        "error": {
            "code": "limit_exceeded",
            "message": "The pages this connection follows may keep at most 300000 bytes of "
            "rows, and this one would go past that; unsubscribe from some first.",
        },
        "request_id": refused["request_id"],
    }
    # A read has nothing older of its own to drop either; without subscribing it is fine.
    refused = await client.send_event(f"{T}.list", {"limit": 10, "page": 2})
    assert refused["error"]["code"] == "limit_exceeded"
    reply = await client.send_event(f"{T}.list", {"limit": 10, "page": 2, "subscribe": False})
    assert len(reply["data"]["rows"]) == 10
    # Rows keep no page: subscribing to one is not refused; the same page again neither.
    assert "data" in await client.send_event(f"{T}.subscribe", {"id": tasks[15].pk})
    assert "data" in await client.send_event(f"{T}.subscribe#again", {"limit": 10})
    assert get_hub().subscriber_count(T) == 3
    # The refused pages are not followed; dropping the first makes room.
    tasks[15].title = "pushed"
    await db_call(tasks[15].save)
    assert (await client.receive_push(f"{T}.retrieve"))["data"]["title"] == "pushed"
    await client.assert_nothing_more()
    await client.send_event(f"{T}.unsubscribe", {})
    assert "data" in await client.send_event(f"{T}.subscribe", {"limit": 10, "page": 2})


async def test_unchanged_large_states_are_not_pushed_again(make_client, db_call):
    """A subscriber keeps digests: an evaluation that finds what it was last sent sends nothing."""
    user = await db_call(factories.UserFactory)
    tasks = await db_call(large_tasks, user, 5)
    client = await make_client(user)

    def save_title(task):  # a write that leaves the row as it was, unless the title changed
        task.save(update_fields=["title"])

    assert "data" in await client.send_event(f"{T}.retrieve", {"id": tasks[0].pk})
    assert "data" in await client.send_event(f"{T}.list", {})
    await db_call(save_title, tasks[0])  # the same as both first replies showed
    await client.assert_nothing_more()
    tasks[0].title = "changed"
    await db_call(save_title, tasks[0])
    assert (await client.receive_push(f"{T}.retrieve"))["data"]["title"] == "changed"
    assert (await client.receive_push(f"{T}.list"))["data"]["rows"][0]["title"] == "changed"
    await db_call(save_title, tasks[0])  # the same as the pushes showed
    await client.assert_nothing_more()
    deleted = tasks[0].pk
    await db_call(tasks[0].delete)
    assert (await client.receive_push(f"{T}.delete"))["data"] == {"id": deleted}
    page = (await client.receive_push(f"{T}.list"))["data"]
    assert [row["id"] for row in page["rows"]] == [task.pk for task in tasks[1:]]
    await db_call(save_title, tasks[1])
    await client.assert_nothing_more()


async def test_a_subscribing_read_encodes_its_page_once(make_client, db_call, monkeypatch):
    """The subscription's digest is made from the text the reply then reuses."""
    user = await db_call(factories.UserFactory)
    await db_call(large_tasks, user, 10)
    client = await make_client(user)
    encoded: list[int] = []
    original = protocol.encode

    def counted(content):
        text = original(content)
        encoded.append(len(text))
        return text

    monkeypatch.setattr(protocol, "encode", counted)
    reply = await client.send_event(f"{T}.list", {"limit": 10})
    page_size = len(original(reply["data"]))
    assert page_size > 10 * BLOB
    assert page_size <= sum(encoded) < page_size + 1000
