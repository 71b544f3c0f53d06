"""[syncbind/_live/hub.py, lanes.py, delivery.py] No user's work holds up another's (issue 23, point 5).

One user with many subscriptions that cannot be decided in Python made every
write to their table delay every other user's pushes: the hub processed one
stream's changes at a time, one stream's batches could take every evaluation
slot, and a connection due for a user refresh compiled all its subscriptions
again in the middle of a fan-out. Here each of those costs is made to block
on an event the test sets only once the other user got what they were owed,
so the old code fails by timeout, not by a measured delay.
"""

import asyncio
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Q

from syncbind import SyncBinding, push
from syncbind._live import delivery
from syncbind._live.hub import get_hub
from syncbind._wire.protocol import TOO_MANY_CONNECTIONS_CLOSE_CODE
from syncbind.permissions import IsAuthenticated
from syncbind.testing import connect, override_bindings, settle
from tests import factories
from tests.testapp.models import Product, Task

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = "testapp.SlowProduct"
PUBLIC = "testapp.PublicTask"
CATEGORY = "testapp.Category"
# User A's sockets, and the lists each follows (each on a filter of its own).
SOCKETS = 3
LISTS = 10
# One product's name, of which each list filters on another part.
NAME = "abcdefghijklmnopqrstuvwxyz"
PARTS = [NAME[i : i + 2] for i in range(25)] + [NAME[i : i + 3] for i in range(5)]


class Gate:
    """Makes SlowProductBinding's work wait, once armed, until the test releases it."""

    def __init__(self) -> None:
        self.armed: str | None = None  # "page" or "key": which work waits
        self.entered = threading.Event()
        self.released = threading.Event()

    def wait_here(self, where: str) -> None:
        if self.armed == where:
            self.entered.set()
            # Bounded, so that a failing test cannot hang the session.
            self.released.wait(30)


gate = Gate()


@pytest.fixture(autouse=True)
def _gate():
    global gate
    gate = Gate()
    yield
    gate.released.set()


class SlowProductBinding(SyncBinding):
    """Products, listed by a get_page() of its own (so each page is evaluated alone,
    by the binding), whose pages and keys wait on the gate when it is armed."""

    model = Product
    stream = SLOW
    compiled_reads = False  # get_page is its own
    fields = ["id", "name"]
    filterset_fields = {"name": ["icontains"]}
    permission_classes = [IsAuthenticated]

    def get_page(self):
        gate.wait_here("page")
        return super().get_page()

    def get_subscription_key(self, kind, pk=None):
        gate.wait_here("key")
        return super().get_subscription_key(kind, pk)


async def entered():
    """Wait until the gate holds a worker (it is a threading event: waited in a thread)."""
    assert await asyncio.to_thread(gate.entered.wait, 10), "nothing reached the gate"


async def user_a_following(db_call, app):
    """User A: SOCKETS sockets, each following LISTS lists of slow products."""
    user = await db_call(factories.UserFactory, perms=["testapp.view_category"])
    clients = [await connect(user, application=app) for _ in range(SOCKETS)]
    for number, client in enumerate(clients):
        for index in range(LISTS):
            part = PARTS[number * LISTS + index]
            reply = await client.send_event(
                f"{SLOW}.list#n{number}x{index}", {"filters": {"name__icontains": part}}
            )
            assert reply["data"]["count"] == 0
    return user, clients


async def assert_a_got_every_list(clients):
    for number, client in enumerate(clients):
        for index in range(LISTS):
            frame = await client.receive_push(f"{SLOW}.list#n{number}x{index}")
            assert frame["data"]["count"] == 1
        await client.assert_nothing_more()


@override_bindings(SlowProductBinding)
async def test_a_stream_evaluating_at_length_holds_up_no_other_stream_push_or_credential(
    consumer_app, db_call
):
    user_a, clients_a = await user_a_following(db_call, consumer_app)
    user_b = await db_call(factories.UserFactory, perms=["testapp.view_category"])
    user_c = await db_call(factories.UserFactory)
    category = await db_call(factories.CategoryFactory, name="before")
    client_b = await connect(user_b, application=consumer_app)
    client_c = await connect(user_c, application=consumer_app)
    try:
        assert (await client_b.send_event(f"{CATEGORY}.retrieve", {"id": category.pk}))["data"]
        gate.armed = "page"
        # One product on every one of A's lists: each of them is evaluated, and waits.
        await db_call(factories.ProductFactory, name=NAME)
        await entered()

        category.name = "after"
        await db_call(category.save)
        frame = await client_b.receive_push(f"{CATEGORY}.retrieve")
        assert frame["data"]["name"] == "after"
        await db_call(push.to_user, user_b, "chat.posted", {"text": "hello"})
        assert (await client_b.receive_push("chat.posted"))["data"] == {"text": "hello"}
        await db_call(get_user_model().objects.filter(pk=user_c.pk).update, is_active=False)
        await db_call(lambda: get_user_model().objects.get(pk=user_c.pk).save())
        assert await client_c.receive_close() == 4003
        assert not gate.released.is_set()  # all this while A's lists were still evaluated
    finally:
        gate.released.set()
    await assert_a_got_every_list(clients_a)
    await client_b.assert_nothing_more()
    for client in [*clients_a, client_b]:
        await client.close()


@override_bindings(SlowProductBinding)
async def test_a_connection_due_for_a_refresh_holds_up_no_one_else(consumer_app, db_call, settings):
    settings.SYNCBIND = {"USER_REFRESH_INTERVAL": 0}  # each push finds the user due
    user_a, clients_a = await user_a_following(db_call, consumer_app)
    user_b = await db_call(factories.UserFactory, perms=["testapp.view_category"])
    category = await db_call(factories.CategoryFactory, name="before")
    client_b = await connect(user_b, application=consumer_app)
    client_a = clients_a[0]
    try:
        for client in (client_a, client_b):
            assert (await client.send_event(f"{CATEGORY}.retrieve", {"id": category.pk}))["data"]
        # A's next refresh compiles its SLOW subscriptions again: that waits.
        gate.armed = "key"
        category.name = "after"
        await db_call(category.save)
        await entered()
        frame = await client_b.receive_push(f"{CATEGORY}.retrieve")
        assert frame["data"]["name"] == "after"
        assert not gate.released.is_set()
    finally:
        gate.released.set()
    # A's frame was held until its own refresh ran, then sent.
    assert (await client_a.receive_push(f"{CATEGORY}.retrieve"))["data"]["name"] == "after"
    await client_a.assert_nothing_more()
    await client_b.assert_nothing_more()
    for client in [*clients_a, client_b]:
        await client.close()


@override_bindings(SlowProductBinding)
async def test_a_held_frame_is_never_sent_to_a_user_who_may_no_longer_read_it(
    consumer_app, db_call, settings
):
    """Holding a frame for the refresh must not leak it: the user lost the permission
    meanwhile, so the refresh ends the subscription instead of sending it."""
    settings.SYNCBIND = {"USER_REFRESH_INTERVAL": 0}
    user = await db_call(factories.UserFactory, perms=["testapp.view_category"])
    category = await db_call(factories.CategoryFactory, name="before")
    client = await connect(user, application=consumer_app)
    assert (await client.send_event(f"{CATEGORY}.retrieve", {"id": category.pk}))["data"]
    through = get_user_model().user_permissions.through
    await db_call(lambda: through.objects.filter(user_id=user.pk).delete())  # no signal
    category.name = "secret"
    await db_call(category.save)
    ended = await client.receive_ended(f"{CATEGORY}.retrieve")
    assert ended["ended"]["code"] == "permission_denied" and "secret" not in str(ended)
    await client.assert_nothing_more()
    await client.close()


@override_bindings(SlowProductBinding)
async def test_a_frame_held_while_the_refresh_reads_the_user_waits_for_the_next_read(
    consumer_app, db_call, settings
):
    """A refresh job reads the user, then (here, at the gate) compiles the keys again;
    meanwhile the user is deactivated and a row written. That row's frame, held while
    the job was pending, was sent on the user read before the deactivation: it must wait
    for a read of the user that follows it, which closes the socket instead."""
    settings.SYNCBIND = {"USER_REFRESH_INTERVAL": 0}
    user = await db_call(factories.UserFactory)
    product = await db_call(factories.ProductFactory, name="before")
    client = await connect(user, application=consumer_app)
    assert (await client.send_event(f"{SLOW}.retrieve", {"id": product.pk}))["data"]
    await settle()  # the product's insert is evaluated (and its refresh job done) first
    gate.armed = "key"
    product.name = "middle"
    await db_call(product.save)
    await entered()  # the refresh job has read the user, still active
    try:
        await db_call(get_user_model().objects.filter(pk=user.pk).update, is_active=False)
        product.name = "secret"
        await db_call(product.save)
        hub = get_hub()
        # Synchronization, not a measured delay: the second frame is held by the job.
        while not any(hub.held.values()):
            await asyncio.sleep(0.001)
    finally:
        gate.released.set()
    assert await client.receive_close() == 4003
    assert [m["data"]["name"] for m in client.pending] == ["middle"]


class PublicTaskBinding(SyncBinding):
    """Tasks a user may read: their own and the public ones (priority 0). Its pages are
    in primary-key order, so a change the fetched rows decide updates them in place."""

    model = Task
    stream = PUBLIC
    fields = ["id", "title", "priority"]
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        user = self.request.user
        return super().get_queryset().filter(Q(owner=user) | Q(priority=0))


class AloneReads:
    """Holds a refresh job's reads of its held subscriptions: the first, once made,
    until ``first_go``; the second, before it is made, until ``second_go``."""

    def __init__(self, real):
        self.real = real
        self.calls = 0
        self.first_read, self.first_go = threading.Event(), threading.Event()
        self.second_entered, self.second_go = threading.Event(), threading.Event()

    def __call__(self, sub):
        self.calls += 1
        if self.calls == 2:
            self.second_entered.set()
            self.second_go.wait(30)  # bounded: a failing test must not hang the session
        outcome = self.real(sub)
        if self.calls == 1:
            self.first_read.set()
            self.first_go.wait(30)
        return outcome

    def release(self):
        self.first_go.set()
        self.second_go.set()


def titles(frame):
    return [row["title"] for row in frame["data"]["rows"]]


@override_bindings(PublicTaskBinding)
async def test_a_refresh_that_read_before_a_write_never_brings_back_the_row_it_hid(
    consumer_app, db_call, monkeypatch
):
    """One user, two sockets on one page. The first socket's user is due to be read
    again, so its frames wait for its refresh job, which reads the page for it alone
    (held here, once read). Meanwhile a write makes a row of the page another user's
    private one, and the second socket is pushed the page without it. The job's read,
    older than that write, must not become the page the key keeps to update in place:
    the next change would push the second socket that row again, after the page
    without it, and leave it there."""
    user = await db_call(factories.UserFactory)
    other = await db_call(factories.UserFactory)
    public = await db_call(factories.TaskFactory, owner=other, priority=0, title="public")
    mine = await db_call(factories.TaskFactory, owner=user, priority=1, title="mine")
    due = await connect(user, application=consumer_app)
    [due_connection] = get_hub().connections_of(user)
    current = await connect(user, application=consumer_app)
    event = f"{PUBLIC}.list"
    for client in (due, current):
        assert titles(await client.send_event(event, {})) == ["public", "mine"]
    await settle()
    due_connection.checked_at -= 3600  # as once USER_REFRESH_INTERVAL has passed
    reads = AloneReads(delivery.read_alone)
    monkeypatch.setattr(delivery, "read_alone", reads)
    try:
        mine.title = "mine x"
        await db_call(mine.save)
        assert titles(await current.receive_push(event)) == ["public", "mine x"]
        assert await asyncio.to_thread(reads.first_read.wait, 10), "no refresh job read"
        # Read for the due socket. Now the public task becomes the other user's own.
        await db_call(Task.objects.filter(pk=public.pk).update, priority=2)
        assert titles(await current.receive_push(event)) == ["mine x"]
        reads.first_go.set()
        # The job's next round (the frame held again by that write) waits before its read.
        assert await asyncio.to_thread(reads.second_entered.wait, 10), "no second round"
        mine.title = "mine y"
        await db_call(mine.save)
        assert titles(await current.receive_push(event)) == ["mine y"]
    finally:
        reads.release()
    # The due socket is sent its reads in the order they were made: the one of "mine x"
    # (as pushed to the other socket then), then the one after the write and "mine y".
    assert titles(await due.receive_push(event)) == ["public", "mine x"]
    assert titles(await due.receive_push(event)) == ["mine y"]
    for client in (due, current):
        await client.assert_nothing_more()
        await client.close()


# -- limits per user ----------------------------------------------------------------------------


async def test_a_user_past_max_connections_per_user_is_told_so_with_4029(
    consumer_app, db_call, settings
):
    settings.SYNCBIND = {"MAX_CONNECTIONS_PER_USER": 2}
    user, other = await db_call(lambda: [factories.UserFactory(), factories.UserFactory()])
    first = await connect(user, application=consumer_app)
    second = await connect(user, application=consumer_app)
    third = await connect(user, application=consumer_app)  # accepted, then closed at once
    assert await third.communicator.receive_output() == {
        "type": "websocket.close",
        "code": TOO_MANY_CONNECTIONS_CLOSE_CODE,
        "reason": "This user already has 2 connections open to this server, the most "
        "allowed; close one first.",
    }
    assert TOO_MANY_CONNECTIONS_CLOSE_CODE == 4029
    assert len(get_hub().connections_of(user)) == 2
    someone_else = await connect(other, application=consumer_app)  # a limit per user
    await first.close()
    again = await connect(user, application=consumer_app)  # a place was freed
    assert (await again.send_event("testapp.Product.ping", {}))["data"]["pong"] is True
    for client in (second, someone_else, again):
        await client.close()


async def test_a_user_past_max_subscription_keys_per_user_makes_room_or_is_refused(
    consumer_app, db_call, settings
):
    """The keys followed on all of a user's connections count: a read's own subscription
    makes room on its connection (with an ``ended`` frame), a kept one is refused."""
    settings.SYNCBIND = {"MAX_SUBSCRIPTION_KEYS_PER_USER": 3}
    user = await db_call(factories.UserFactory, perms=["testapp.view_category"])
    rows = await db_call(lambda: [factories.CategoryFactory() for _ in range(4)])
    first = await connect(user, application=consumer_app)
    second = await connect(user, application=consumer_app)
    for row in rows[:2]:
        kept = {"id": row.pk, "subscribe": True}
        assert "data" in await first.send_event(f"{CATEGORY}.retrieve#{row.pk}", kept)
    assert "data" in await second.send_event(
        f"{CATEGORY}.retrieve#{rows[2].pk}", {"id": rows[2].pk}
    )
    # A key the user follows already costs nothing more.
    shared = {"id": rows[0].pk, "subscribe": True}
    assert "data" in await second.send_event(f"{CATEGORY}.retrieve#{rows[0].pk}", shared)

    assert "data" in await second.send_event(
        f"{CATEGORY}.retrieve#{rows[3].pk}", {"id": rows[3].pk}
    )
    assert await second.receive_ended(f"{CATEGORY}.retrieve#{rows[2].pk}") == {
        "event": f"{CATEGORY}.retrieve#{rows[2].pk}",
        "ended": {
            "code": "limit_exceeded",
            "message": "This user reached their limit of 3 different rows and pages followed "
            "on their connections: this subscription, the oldest one a read made by itself, "
            'ended to make room for a newer one. Send "subscribe": true with a read to keep '
            "its subscription.",
        },
        "data": {"id": rows[2].pk},
    }
    event = f"{CATEGORY}.retrieve#{rows[2].pk}"
    refused = await first.send_event(event, {"id": rows[2].pk, "subscribe": True})
    assert refused == {
        "event": event,
        "error": {
            "code": "limit_exceeded",
            "message": "This user already follows 3 different rows and pages on their "
            "connections, the most allowed; unsubscribe from some first.",
        },
        "request_id": refused["request_id"],
    }
    await first.assert_nothing_more()
    await second.assert_nothing_more()
    assert get_hub().key_count(CATEGORY) == 3
    for client in (first, second):
        await client.close()
