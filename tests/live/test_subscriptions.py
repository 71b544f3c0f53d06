"""[syncbind/_live/subscriptions.py] Per-connection limits on live subscriptions (issue 11, points 4 and 5).

A connection could once hold any number of subscriptions, each keeping its
whole request (400 tagged lists of 250 KB junk each: +98 MiB), and make every
write by anyone evaluate thousands of its keys. Now each limit answers
``limit_exceeded`` past its documented default, closes nothing, and leaves
everything within it working.
"""

import gc
import tracemalloc

import pytest

from syncbind._live import fanout
from syncbind._live.hub import get_hub
from syncbind._wire import protocol
from syncbind.testing import settle
from tests import factories
from tests.testapp.models import Product

pytestmark = pytest.mark.django_db(transaction=True)

P = "testapp.Product"
# What one followed row or page, and one subscription, may keep besides the pages
# kept (docs/subscriptions.md, "Limits").
PER_KEY = 24 * 1024
PER_SUBSCRIPTION = 4 * 1024

# What ends a subscription a read made by itself, to make room (issue 23, point 3).
KEEP_HINT = (
    'ended to make room for a newer one. Send "subscribe": true with a read to keep '
    "its subscription."
)


def evicted_by_count(most):
    return {
        "code": "limit_exceeded",
        "message": f"This connection reached its limit of {most} live subscriptions: this "
        f"subscription, the oldest one a read made by itself, {KEEP_HINT}",
    }


def evicted_by_keys(most):
    return {
        "code": "limit_exceeded",
        "message": f"This connection reached its limit of {most} different rows and pages "
        f"followed: this subscription, the oldest one a read made by itself, {KEEP_HINT}",
    }


def evicted_by_bytes(limit):
    return {
        "code": "limit_exceeded",
        "message": f"The pages this connection follows reached their limit of {limit} bytes "
        f"of rows: this subscription, the oldest one a read made by itself, {KEEP_HINT}",
    }


async def ended_frames(client, count):
    """The next ``count`` ended frames, in order: those kept while replies were awaited,
    then those still arriving."""
    frames = [message for message in client.pending if "ended" in message]
    client.pending = [message for message in client.pending if "ended" not in message]
    while len(frames) < count:
        frames.append(await client.receive())
    return frames


async def test_reads_keep_the_most_recent_subscriptions(make_client, superuser, settings, db_call):
    """Every retrieve/list/search subscribes: past the limit the oldest of those ends, and
    the client is told."""
    settings.SYNCBIND = {"MAX_SUBSCRIPTIONS": 5}
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    for index in range(8):
        assert "data" in await client.send_event(f"{P}.list#t{index}", {})
    assert await ended_frames(client, 3) == [
        {"event": f"{P}.list#t{index}", "ended": evicted_by_count(5)} for index in range(3)
    ]
    assert get_hub().subscriber_count(P) == 5
    product.name = "pushed to the five latest"
    await db_call(product.save)
    for index in range(3, 8):
        push = await client.receive_push(f"{P}.list#t{index}")
        assert push["data"]["rows"][0]["name"] == "pushed to the five latest"
    await client.assert_nothing_more()  # t0-t2 ended


async def test_explicit_subscriptions_per_connection(make_client, superuser, settings, db_call):
    settings.SYNCBIND = {"MAX_SUBSCRIPTIONS": 5}
    products = await db_call(lambda: [factories.ProductFactory() for _ in range(7)])
    client = await make_client(superuser)
    assert "data" in await client.send_event(f"{P}.list#read", {})
    for product in products[:5]:
        reply = await client.send_event(f"{P}.subscribe", {"id": product.pk})
        assert reply["data"] == {"success": True}
    # The read's subscription made room (and the client was told); the explicit ones are kept.
    assert await client.receive_ended(f"{P}.list#read") == {
        "event": f"{P}.list#read",
        "ended": evicted_by_count(5),
    }
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
    # Each of the 50 others ended with a frame (all under the one event).
    ended = {"event": f"{P}.list", "ended": evicted_by_keys(100)}
    assert await ended_frames(client, 50) == [ended] * 50

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    queries = []
    original = fanout.evaluate

    def counted(batch, version=None):
        with CaptureQueriesContext(connection) as ctx:
            result = original(batch, version)
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
    answered, the two latest stay live (the eight others, and the warm-up list before
    them, end, each with a frame), and the memory kept is those two pages.
    """
    settings.SYNCBIND = {"MAX_SUBSCRIPTION_BYTES": 450_000}
    user = await db_call(factories.UserFactory)
    tasks = await db_call(large_tasks, user, 100)
    client = await make_client(user)
    assert "data" in await client.send_event(f"{T}.list#warm", {"limit": 1})
    # Its stream's group joined first (the first of the pages below evicts it): a join
    # evaluates again the keys subscribed while it was pending.
    await settle()

    async def list_ten_pages():
        for page in range(1, 11):
            reply = await client.send_event(f"{T}.list#p{page}", {"limit": 10, "page": page})
            assert [row["id"] for row in reply["data"]["rows"]] == [
                task.pk for task in tasks[(page - 1) * 10 : page * 10]
            ]

    grown = await retained_by(list_ten_pages)
    assert get_hub().subscriber_count(T) == 2
    assert grown < 2 * 450_000 + 10 * PER_KEY, f"{grown} bytes kept by 10 pages"
    # The warm-up list is the oldest of them all: it makes room first.
    assert await ended_frames(client, 9) == [
        {"event": f"{T}.list#{tag}", "ended": evicted_by_bytes(450_000)}
        for tag in ["warm", *(f"p{page}" for page in range(1, 9))]
    ]
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
    # The stream's group joined first: joining it evaluates its keys once more.
    await client.send_event(f"{T}.list", {"limit": 1})
    await settle()
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


# -- Issue 23, point 3: views are never dropped silently ---------------------------------


@pytest.mark.parametrize("how", ["read", "subscribe"])
async def test_a_live_view_survives_a_thousand_reads(make_client, superuser, db_call, how):
    """A live view (a read with "subscribe": true, or a subscribe event) is never evicted:
    a single-page app that reads a thousand other pages still has it, and every
    subscription the reads evict is announced."""
    products = await db_call(lambda: [factories.ProductFactory() for _ in range(2)])
    client = await make_client(superuser)
    row, page = products[0].pk, {"limit": 2}
    if how == "read":
        reply = await client.send_event(f"{P}.retrieve#row", {"id": row, "subscribe": True})
        assert reply["data"]["id"] == row
        reply = await client.send_event(f"{P}.list#page", {**page, "subscribe": True})
    else:
        reply = await client.send_event(f"{P}.subscribe#row", {"id": row})
        assert reply["data"] == {"success": True}
        reply = await client.send_event(f"{P}.subscribe#page", page)
    assert [product["id"] for product in reply["data"]["rows"]] == [row, products[1].pk]
    for number in range(1, 1001):  # a thousand different pages of one row
        reply = await client.send_event(f"{P}.list#b{number}", {"limit": 1, "page": number})
        assert "data" in reply
    # The two views and 98 reads fill MAX_SUBSCRIPTION_KEYS (100): the 902 oldest
    # reads' subscriptions ended, each told so, oldest first.
    assert await ended_frames(client, 902) == [
        {"event": f"{P}.list#b{number}", "ended": evicted_by_keys(100)} for number in range(1, 903)
    ]
    assert get_hub().subscriber_count(P) == 100
    products[0].name = "still live"
    await db_call(products[0].save)
    assert (await client.receive_push(f"{P}.retrieve#row"))["data"]["name"] == "still live"
    pushed = (await client.receive_push(f"{P}.list#page"))["data"]
    assert pushed["rows"][0]["name"] == "still live"
    await client.assert_nothing_more()  # the latest reads show pages past the end


async def test_each_evicted_subscription_is_announced_after_the_reply(
    make_client, superuser, settings, db_call
):
    settings.SYNCBIND = {"MAX_SUBSCRIPTIONS": 2}
    products = await db_call(lambda: [factories.ProductFactory() for _ in range(2)])
    client = await make_client(superuser)
    assert "data" in await client.send_event(f"{P}.retrieve", {"id": products[0].pk})
    assert "data" in await client.send_event(f"{P}.list#all", {})
    await client.assert_nothing_more()
    reply = await client.send_event(f"{P}.retrieve#other", {"id": products[1].pk})
    assert reply["data"]["id"] == products[1].pk
    # Nothing came before the reply; right after it, the oldest read's subscription ends.
    assert client.pending == []
    assert await client.receive() == {
        "event": f"{P}.retrieve",
        "ended": evicted_by_count(2),
        "data": {"id": products[0].pk},
    }
    reply = await client.send_event(f"{P}.list#first", {"limit": 1})
    assert [row["id"] for row in reply["data"]["rows"]] == [products[0].pk]
    assert client.pending == []
    assert await client.receive() == {"event": f"{P}.list#all", "ended": evicted_by_count(2)}
    # What ended is pushed nothing more; the two latest are.
    products[0].name = "renamed"
    await db_call(products[0].save)
    pushed = await client.receive_push(f"{P}.list#first")
    assert pushed["data"]["rows"][0]["name"] == "renamed"
    await client.assert_nothing_more()


async def test_kept_subscriptions_past_the_limit_are_refused(
    make_client, superuser, settings, db_call
):
    """Past a limit made of kept subscriptions alone, a new kept one is refused and
    nothing is evicted; a read's auto-subscription made room before that."""
    settings.SYNCBIND = {"MAX_SUBSCRIPTIONS": 3}
    products = await db_call(lambda: [factories.ProductFactory() for _ in range(4)])
    client = await make_client(superuser)
    assert "data" in await client.send_event(f"{P}.retrieve#auto", {"id": products[0].pk})
    kept = {"id": products[1].pk, "subscribe": True}
    assert "data" in await client.send_event(f"{P}.retrieve#a", kept)
    assert "data" in await client.send_event(f"{P}.subscribe#b", {"id": products[2].pk})
    assert "data" in await client.send_event(f"{P}.list#c", {"subscribe": True})
    assert await client.receive_ended(f"{P}.retrieve#auto") == {
        "event": f"{P}.retrieve#auto",
        "ended": evicted_by_count(3),
        "data": {"id": products[0].pk},
    }
    full = {
        "code": "limit_exceeded",
        "message": "This connection already has 3 live subscriptions, the most allowed; "
        "unsubscribe from some first.",
    }
    for event, data in (
        (f"{P}.retrieve#d", {"id": products[3].pk, "subscribe": True}),
        (f"{P}.subscribe#d", {"id": products[3].pk}),
        (f"{P}.list#d", {"limit": 1, "subscribe": True}),
        (f"{P}.list#d", {"limit": 1}),  # a read has nothing of its own to evict either
    ):
        refused = await client.send_event(event, data)
        assert refused == {"event": event, "error": full, "request_id": refused["request_id"]}
    await client.assert_nothing_more()  # nothing evicted
    assert get_hub().subscriber_count(P) == 3
    products[1].name = "kept"
    await db_call(products[1].save)
    assert (await client.receive_push(f"{P}.retrieve#a"))["data"]["name"] == "kept"
    assert (await client.receive_push(f"{P}.list#c"))["data"]["rows"][1]["name"] == "kept"
    products[2].name = "kept too"
    await db_call(products[2].save)
    assert (await client.receive_push(f"{P}.retrieve#b"))["data"]["name"] == "kept too"
    assert (await client.receive_push(f"{P}.list#c"))["data"]["rows"][2]["name"] == "kept too"
    await client.assert_nothing_more()


async def test_a_kept_read_subscribes_where_reads_do_not(
    make_client, superuser, db_call, monkeypatch
):
    """ "subscribe": true asks for the subscription, whatever auto_subscribe says."""
    from tests.testapp.bindings import ProductBinding

    monkeypatch.setattr(ProductBinding, "auto_subscribe", False)
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    assert "data" in await client.send_event(f"{P}.retrieve#plain", {"id": product.pk})
    kept = {"id": product.pk, "subscribe": True}
    assert "data" in await client.send_event(f"{P}.retrieve#kept", kept)
    assert get_hub().subscriber_count(P) == 1
    product.name = "pushed"
    await db_call(product.save)
    assert (await client.receive_push(f"{P}.retrieve#kept"))["data"]["name"] == "pushed"
    await client.assert_nothing_more()


@pytest.mark.parametrize("value", ["true", 1, None])
async def test_subscribe_is_true_or_false(make_client, superuser, db_call, value):
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    for event, data in (
        (f"{P}.retrieve", {"id": product.pk, "subscribe": value}),
        (f"{P}.list", {"subscribe": value}),
    ):
        reply = await client.send_event(event, data)
        assert reply["error"]["code"] == "invalid"
        assert reply["error"]["fields"] == {"subscribe": ["Must be true or false."]}
    assert get_hub().subscriber_count(P) == 0


async def test_a_subscription_that_cannot_be_made_again_ends_with_a_frame(
    make_client, superuser, settings, db_call, monkeypatch
):
    """When the user is read again every subscription is compiled again; one whose
    read now fails ends with a frame saying why, rather than vanishing."""
    from syncbind.exceptions import PermissionDenied
    from tests.testapp.bindings import ProductBinding

    settings.SYNCBIND = {"USER_REFRESH_INTERVAL": 0}  # the user is read again at each push
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    kept = {"id": product.pk, "subscribe": True}
    assert "data" in await client.send_event(f"{P}.retrieve#row", kept)

    def closed(self):
        raise PermissionDenied("The catalogue is closed.")

    monkeypatch.setattr(ProductBinding, "get_queryset", closed)
    product.name = "not for anyone"
    await db_call(product.save)
    assert await client.receive_ended(f"{P}.retrieve#row") == {
        "event": f"{P}.retrieve#row",
        "ended": {"code": "permission_denied", "message": "The catalogue is closed."},
        "data": {"id": product.pk},
    }
    await client.assert_nothing_more()
    assert get_hub().subscriber_count(P) == 0
