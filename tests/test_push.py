"""Server push (syncbind.push): events sent from any code to users, groups and streams.

Each test runs against both consumers. The frames asserted are exactly what a
browser receives; ``assert_nothing_more`` waits for the hub to settle, so a
push that should not arrive is known not to have arrived.
"""

import pytest
from django.db import transaction

from syncbind import SyncBinding, event, push
from syncbind.exceptions import BadRequest
from syncbind.permissions import IsAuthenticated
from syncbind.testing import override_bindings
from tests import factories
from tests.conftest import CONSUMERS
from tests.testapp.models import Note, Product

pytestmark = pytest.mark.django_db(transaction=True)


class TeamNotes(SyncBinding):
    """Joining a push group is an event the binding decides on."""

    model = Note
    stream = "testapp.TeamNote"
    fields = ["id", "text"]
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        return super().get_queryset().filter(owner=self.request.user)

    @event(atomic=False)
    def join_team(self, request):
        team = request.data["team"]
        if team not in {"red", "blue"}:
            raise BadRequest("No such team.")
        request.connection.join(f"team.{team}")
        return {"joined": team}

    @event(atomic=False)
    def leave_team(self, request):
        request.connection.leave(f"team.{request.data['team']}")
        return {"left": request.data["team"]}


def frame(event, data):
    return {"event": event, "data": data}


async def test_to_user_reaches_every_socket_of_that_user_and_no_one_else(make_client, db_call):
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    a1, a2, b = await make_client(alice), await make_client(alice), await make_client(bob)

    await db_call(push.to_user, alice, "shop.order_shipped", {"order": 7})

    for client in (a1, a2):
        assert await client.receive() == frame("shop.order_shipped", {"order": 7})
        await client.assert_nothing_more()
    await b.assert_nothing_more()


async def test_to_user_accepts_a_primary_key(make_client, db_call):
    alice = await db_call(factories.UserFactory)
    a = await make_client(alice)
    await db_call(push.to_user, alice.pk, "inbox.new", None)
    assert await a.receive() == frame("inbox.new", None)


@override_bindings(TeamNotes)
async def test_to_group_reaches_the_connections_that_joined_it_until_they_leave(
    make_client, db_call
):
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    a, b = await make_client(alice), await make_client(bob)
    stream = "testapp.TeamNote"
    assert (await a.send_event(f"{stream}.join_team", {"team": "red"}))["data"] == {"joined": "red"}
    assert (await b.send_event(f"{stream}.join_team", {"team": "blue"}))["data"]
    assert (await b.send_event(f"{stream}.join_team", {"team": "green"}))["error"]["code"] == (
        "bad_request"
    )

    await db_call(push.to_group, "team.red", "chat.posted", {"text": "red only"})
    assert await a.receive() == frame("chat.posted", {"text": "red only"})
    await a.assert_nothing_more()
    await b.assert_nothing_more()

    assert (await a.send_event(f"{stream}.leave_team", {"team": "red"}))["data"] == {"left": "red"}
    await db_call(push.to_group, "team.red", "chat.posted", {"text": "anyone?"})
    await a.assert_nothing_more()


@pytest.mark.parametrize("kind", sorted(CONSUMERS))
async def test_a_consumer_joins_groups_from_get_push_groups(kind, db_call):
    from syncbind.testing import connect

    class TeamConsumer(CONSUMERS[kind]):
        def get_push_groups(self, connection):
            return [f"user-level.{connection.user.is_staff}"]

    staff = await db_call(factories.UserFactory, is_staff=True)
    other = await db_call(factories.UserFactory)
    app = TeamConsumer.as_asgi()
    async with connect(staff, application=app) as s, connect(other, application=app) as o:
        await db_call(push.to_group, "user-level.True", "staff.notice", {"n": 1})
        assert await s.receive() == frame("staff.notice", {"n": 1})
        await o.assert_nothing_more()


async def test_to_stream_reaches_the_subscribers_of_that_stream_only(
    make_client, superuser, db_call
):
    product = await db_call(factories.ProductFactory)
    watching, idle = await make_client(superuser), await make_client(superuser)
    assert (await watching.send_event("testapp.Product.retrieve", {"id": product.pk}))["data"]
    assert (await idle.send_event("testapp.Category.list", {}))["data"] is not None

    await db_call(push.to_stream, Product, "testapp.Product.restocked", {"id": product.pk})
    assert await watching.receive() == frame("testapp.Product.restocked", {"id": product.pk})
    await watching.assert_nothing_more()
    await idle.assert_nothing_more()


async def test_a_push_naming_a_bound_stream_reaches_only_those_its_permissions_admit(
    make_client, superuser, db_call
):
    """``testapp.Product`` needs ``change_product`` for custom actions: a user
    without it is not sent ``testapp.Product.restocked``, though pushed to by name."""
    plain = await db_call(factories.UserFactory)
    admin, user = await make_client(superuser), await make_client(plain)

    for target in (superuser, plain):
        await db_call(push.to_user, target, "testapp.Product.restocked", {"id": 1})
    assert await admin.receive() == frame("testapp.Product.restocked", {"id": 1})
    await admin.assert_nothing_more()
    await user.assert_nothing_more()


async def test_a_push_inside_a_transaction_is_sent_after_the_commit_and_never_on_rollback(
    make_client, db_call, monkeypatch
):
    alice = await db_call(factories.UserFactory)
    a = await make_client(alice)
    sent = []
    real_send = push.send
    monkeypatch.setattr(push, "send", lambda *args: (sent.append(args[2]), real_send(*args)))

    def commit():
        with transaction.atomic():
            push.to_user(alice, "inbox.new", {"n": 1})
            assert sent == []  # not yet: the transaction may still roll back
        assert sent == ["a push of inbox.new"]

    def roll_back():
        with transaction.atomic():
            push.to_user(alice, "inbox.new", {"n": 2})
            transaction.set_rollback(True)

    await db_call(roll_back)
    await db_call(commit)
    assert await a.receive() == frame("inbox.new", {"n": 1})
    await a.assert_nothing_more()


async def test_on_commit_false_sends_at_once(make_client, db_call):
    alice = await db_call(factories.UserFactory)
    a = await make_client(alice)

    def send_then_roll_back():
        with transaction.atomic():
            push.to_user(alice, "inbox.now", {}, on_commit=False)
            transaction.set_rollback(True)

    await db_call(send_then_roll_back)
    assert await a.receive() == frame("inbox.now", {})


@override_bindings(TeamNotes)
async def test_async_twins_send_from_the_event_loop(make_client, db_call):
    alice = await db_call(factories.UserFactory)
    product = await db_call(factories.ProductFactory)
    superuser = await db_call(factories.SuperUserFactory)
    a, s = await make_client(alice), await make_client(superuser)
    assert (await a.send_event("testapp.TeamNote.join_team", {"team": "blue"}))["data"]
    assert (await s.send_event("testapp.Product.retrieve", {"id": product.pk}))["data"]

    await push.ato_user(alice, "inbox.new", {"n": 1})
    await push.ato_group("team.blue", "chat.posted", {"text": "hi"})
    await push.ato_stream("testapp.Product", "testapp.Product.sale", {"off": 10})

    assert await a.receive() == frame("inbox.new", {"n": 1})
    assert await a.receive() == frame("chat.posted", {"text": "hi"})
    assert await s.receive() == frame("testapp.Product.sale", {"off": 10})
    await a.assert_nothing_more()
    await s.assert_nothing_more()


async def test_a_revoked_connection_is_not_pushed_to(make_client, db_call):
    alice = await db_call(factories.UserFactory)
    a = await make_client(alice)
    await db_call(alice.delete)
    await db_call(push.to_user, alice.pk, "inbox.new", {"n": 1})
    # The user is gone: the connection is closed instead of being served.
    assert await a.receive_close() is not None
    assert a.pending == []


def test_malformed_event_names_and_unbound_models_are_refused_at_the_call(transactional_db):
    from syncbind.exceptions import SyncbindError

    with pytest.raises(SyncbindError):
        push.to_user(1, "no-dots", {})
    with pytest.raises(ValueError, match="No binding serves"):
        push.to_stream(factories.UserFactory._meta.model.groups.through, "x.y", {})


async def test_http_connections_cannot_join_groups(db_call):
    from syncbind.connection import Connection

    connection = Connection(user=None, transport="http")
    with pytest.raises(RuntimeError, match="Only WebSocket connections"):
        connection.join("team.red")
