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
from tests.testapp.models import Note, Product, UUIDUser

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
    await db_call(push.to_user, alice.pk, "server_push.new", None)
    assert await a.receive() == frame("server_push.new", None)


async def test_to_user_accepts_the_text_of_a_primary_key(make_client, db_call):
    """A key read from a URL or a JSON body names the same user as the integer."""
    alice = await db_call(factories.UserFactory)
    a = await make_client(alice)
    await db_call(push.to_user, str(alice.pk), "server_push.new", {"from": "text"})
    assert await a.receive() == frame("server_push.new", {"from": "text"})
    await a.assert_nothing_more()


async def test_to_user_reaches_a_user_whose_primary_key_is_a_uuid(make_client, db_call):
    """channels-redis packs messages with msgpack, which has no UUID type: the push
    names its user in one wire form, the form the hub indexes connections by."""
    alice = await db_call(UUIDUser.objects.create, username="alice")
    bob = await db_call(UUIDUser.objects.create, username="bob")
    a, b = await make_client(alice), await make_client(bob)

    for n, target in enumerate([alice, alice.pk, str(alice.pk)]):
        await db_call(push.to_user, target, "server_push.new", {"n": n})
        assert await a.receive() == frame("server_push.new", {"n": n})
    await push.ato_user(alice, "server_push.new", {"n": "async"})
    assert await a.receive() == frame("server_push.new", {"n": "async"})
    await a.assert_nothing_more()
    await b.assert_nothing_more()


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
            push.to_user(alice, "server_push.new", {"n": 1})
            assert sent == []  # not yet: the transaction may still roll back
        assert sent == ["a push of server_push.new"]

    def roll_back():
        with transaction.atomic():
            push.to_user(alice, "server_push.new", {"n": 2})
            transaction.set_rollback(True)

    await db_call(roll_back)
    await db_call(commit)
    assert await a.receive() == frame("server_push.new", {"n": 1})
    await a.assert_nothing_more()


async def test_on_commit_false_sends_at_once(make_client, db_call):
    alice = await db_call(factories.UserFactory)
    a = await make_client(alice)

    def send_then_roll_back():
        with transaction.atomic():
            push.to_user(alice, "server_push.now", {}, on_commit=False)
            transaction.set_rollback(True)

    await db_call(send_then_roll_back)
    assert await a.receive() == frame("server_push.now", {})


@override_bindings(TeamNotes)
async def test_async_twins_send_from_the_event_loop(make_client, db_call):
    alice = await db_call(factories.UserFactory)
    product = await db_call(factories.ProductFactory)
    superuser = await db_call(factories.SuperUserFactory)
    a, s = await make_client(alice), await make_client(superuser)
    assert (await a.send_event("testapp.TeamNote.join_team", {"team": "blue"}))["data"]
    assert (await s.send_event("testapp.Product.retrieve", {"id": product.pk}))["data"]

    await push.ato_user(alice, "server_push.new", {"n": 1})
    await push.ato_group("team.blue", "chat.posted", {"text": "hi"})
    await push.ato_stream("testapp.Product", "testapp.Product.sale", {"off": 10})

    assert await a.receive() == frame("server_push.new", {"n": 1})
    assert await a.receive() == frame("chat.posted", {"text": "hi"})
    assert await s.receive() == frame("testapp.Product.sale", {"off": 10})
    await a.assert_nothing_more()
    await s.assert_nothing_more()


async def test_a_revoked_connection_is_not_pushed_to(make_client, db_call):
    alice = await db_call(factories.UserFactory)
    a = await make_client(alice)
    await db_call(alice.delete)
    await db_call(push.to_user, alice.pk, "server_push.new", {"n": 1})
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
    from syncbind._auth.connection import Connection

    connection = Connection(user=None, transport="http")
    with pytest.raises(RuntimeError, match="Only WebSocket connections"):
        connection.join("team.red")


# -- Issue 21, point 6: who a push reaches is decided again, per recipient, at delivery --


def session_app(consumer_class):
    from channels.auth import AuthMiddlewareStack
    from channels.routing import URLRouter
    from django.urls import path

    return AuthMiddlewareStack(URLRouter([path("ws/", consumer_class.as_asgi())]))


class EveryoneConsumer(CONSUMERS["sync"]):
    """Joins "everyone", and "staff" while the user is staff."""

    def get_push_groups(self, connection):
        return ["everyone", "staff"] if connection.user.is_staff else ["everyone"]


class AsyncEveryoneConsumer(CONSUMERS["async"]):
    get_push_groups = EveryoneConsumer.get_push_groups


GROUP_CONSUMERS = {"sync": EveryoneConsumer, "async": AsyncEveryoneConsumer}


async def test_a_user_deactivated_without_a_signal_is_not_pushed_to_but_closed(
    make_client, db_call
):
    """``QuerySet.update()`` sends no signal, and the refresh interval has not passed."""
    from django.contrib.auth import get_user_model

    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    a, b = await make_client(alice), await make_client(bob)
    await db_call(get_user_model().objects.filter(pk=alice.pk).update, is_active=False)

    for target in (alice, bob):
        await db_call(push.to_user, target, "server_push.new", {"secret": 1})
    assert await a.receive_close() == 4003
    assert a.pending == []
    assert await b.receive() == frame("server_push.new", {"secret": 1})
    await b.assert_nothing_more()


@pytest.mark.parametrize("kind", sorted(GROUP_CONSUMERS))
@pytest.mark.parametrize("how", ["queryset", "raw sql"])
async def test_a_connection_whose_session_was_deleted_is_not_pushed_to_but_closed(
    kind, how, db_call
):
    from django.contrib.sessions.models import Session
    from django.db import connection as db

    from syncbind.testing import connect
    from tests.live.test_credentials import logged_in_browser

    def delete_sessions():
        if how == "queryset":
            Session.objects.all().delete()
        else:
            with db.cursor() as cursor:
                cursor.execute(f"DELETE FROM {Session._meta.db_table}")

    alice = await db_call(factories.UserFactory)
    _, headers = await db_call(logged_in_browser, alice)
    app = session_app(GROUP_CONSUMERS[kind])
    async with connect(None, application=app, headers=headers) as a:
        await db_call(push.to_group, "everyone", "chat.posted", {"n": 1})
        assert await a.receive() == frame("chat.posted", {"n": 1})
        await db_call(delete_sessions)

        await db_call(push.to_group, "everyone", "chat.posted", {"n": 2})
        await db_call(push.to_user, alice, "server_push.new", {"n": 3})
        assert await a.receive_close() == 4003
        assert a.pending == []


async def test_a_session_of_another_user_or_a_new_password_is_not_pushed_to(db_call):
    """The session row still exists but no longer holds for this user."""
    from syncbind.testing import connect
    from tests.live.test_credentials import logged_in_browser

    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    _, headers = await db_call(logged_in_browser, alice)
    _, bob_headers = await db_call(logged_in_browser, bob)
    app = session_app(EveryoneConsumer)
    a = await connect(None, application=app, headers=headers)
    b = await connect(None, application=app, headers=bob_headers)
    from django.contrib.auth import get_user_model

    def new_password_without_a_signal():
        fresh = get_user_model().objects.get(pk=alice.pk)
        fresh.set_password("changed elsewhere")
        get_user_model().objects.filter(pk=alice.pk).update(password=fresh.password)

    await db_call(new_password_without_a_signal)
    await db_call(push.to_group, "everyone", "chat.posted", {"n": 1})
    assert await a.receive_close() == 4003
    assert a.pending == []
    assert await b.receive() == frame("chat.posted", {"n": 1})
    await b.assert_nothing_more()
    await b.close()


@pytest.fixture
def delivery_queries(monkeypatch):
    """Queries run while the hub decides who receives a push (in its worker threads)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from syncbind._live import server_push

    counted = []
    real = server_push.permitted

    def counting(*args, **kwargs):
        with CaptureQueriesContext(connection) as ctx:
            result = real(*args, **kwargs)
        counted.append(len(ctx.captured_queries))
        return result

    monkeypatch.setattr(server_push, "permitted", counting)
    return counted


@pytest.mark.parametrize("recipients", [1, 8])
async def test_the_check_at_delivery_costs_the_same_queries_for_one_or_many_recipients(
    recipients, db_call, delivery_queries
):
    """One query for the users, one for the sessions, whatever the number of recipients."""
    from syncbind.testing import connect
    from tests.live.test_credentials import logged_in_browser

    app = session_app(EveryoneConsumer)
    clients = []
    for _ in range(recipients):
        user = await db_call(factories.UserFactory)
        _, headers = await db_call(logged_in_browser, user)
        clients.append(await connect(None, application=app, headers=headers))
    await db_call(push.to_group, "everyone", "chat.posted", {"n": 1})
    for client in clients:
        assert await client.receive() == frame("chat.posted", {"n": 1})
        await client.assert_nothing_more()
        await client.close()
    assert delivery_queries == [2]


@pytest.mark.parametrize("kind", sorted(GROUP_CONSUMERS))
async def test_push_groups_are_chosen_again_when_the_user_is_read_again(kind, db_call, settings):
    """Demoted by ``QuerySet.update()``: at the next refresh the connection leaves "staff"."""
    from django.contrib.auth import get_user_model

    from syncbind.testing import connect

    staff = await db_call(factories.UserFactory, is_staff=True)
    app = GROUP_CONSUMERS[kind].as_asgi()
    async with connect(staff, application=app) as s:
        await db_call(push.to_group, "staff", "staff.notice", {"n": 1})
        assert await s.receive() == frame("staff.notice", {"n": 1})

        await db_call(get_user_model().objects.filter(pk=staff.pk).update, is_staff=False)
        settings.SYNCBIND = {"USER_REFRESH_INTERVAL": 0}
        await db_call(push.to_group, "staff", "staff.notice", {"n": 2})
        await db_call(push.to_group, "everyone", "all.notice", {"n": 3})
        assert await s.receive() == frame("all.notice", {"n": 3})
        await s.assert_nothing_more()

        # Promoted again (a save: the credential signal re-reads the user at once).
        def promote():
            fresh = get_user_model().objects.get(pk=staff.pk)
            fresh.is_staff = True
            fresh.save()

        settings.SYNCBIND = {}
        await db_call(promote)
        await s.assert_nothing_more()
        await db_call(push.to_group, "staff", "staff.notice", {"n": 4})
        assert await s.receive() == frame("staff.notice", {"n": 4})
        await s.assert_nothing_more()


@override_bindings(TeamNotes)
async def test_groups_joined_from_an_event_stay_when_push_groups_are_chosen_again(
    db_call, settings
):
    from django.contrib.auth import get_user_model

    from syncbind.testing import connect

    staff = await db_call(factories.UserFactory, is_staff=True)
    async with connect(staff, application=EveryoneConsumer.as_asgi()) as s:
        reply = await s.send_event("testapp.TeamNote.join_team", {"team": "red"})
        assert reply["data"] == {"joined": "red"}
        await db_call(get_user_model().objects.filter(pk=staff.pk).update, is_staff=False)
        settings.SYNCBIND = {"USER_REFRESH_INTERVAL": 0}
        await db_call(push.to_group, "staff", "staff.notice", {"n": 1})
        await db_call(push.to_group, "team.red", "chat.posted", {"n": 2})
        assert await s.receive() == frame("chat.posted", {"n": 2})
        await s.assert_nothing_more()


async def subscribed(client, stream):
    reply = await client.send_event(f"{stream}.list", {})
    assert "data" in reply, reply
    return reply["data"]


async def test_to_stream_about_a_row_reaches_only_the_subscribers_who_may_read_it(
    make_client, db_call
):
    """``testapp.Task`` shows each user their own tasks (get_queryset)."""
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    task = await db_call(factories.TaskFactory, owner=alice, title="alice's secret")
    a, b = await make_client(alice), await make_client(bob)
    assert (await subscribed(a, "testapp.Task"))["count"] == 1
    assert (await subscribed(b, "testapp.Task"))["count"] == 0

    data = {"id": task.pk, "title": task.title}
    await db_call(push.to_stream, "testapp.Task", "testapp.Task.renamed", data)
    assert await a.receive() == frame("testapp.Task.renamed", data)
    await a.assert_nothing_more()
    await b.assert_nothing_more()

    # Data that is not about a row (no "id") reaches every subscriber.
    await db_call(push.to_stream, "testapp.Task", "testapp.Task.reindexed", {"all": True})
    for client in (a, b):
        assert await client.receive() == frame("testapp.Task.reindexed", {"all": True})
        await client.assert_nothing_more()


@pytest.mark.parametrize(
    "binding_name", ["ScopedInFilterQueryset", "ScopedInGetObject", "ScopedByObjectPermission"]
)
async def test_to_stream_about_a_row_applies_each_scoping_hook(binding_name, make_client, db_call):
    """Each hook tests/live/test_scoping.py scopes row pushes with scopes server pushes too."""
    from tests.live import test_scoping

    binding = getattr(test_scoping, binding_name)
    stream = binding.get_stream()
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    private = await db_call(factories.TaskFactory, owner=alice, title="mine", priority=3)
    public = await db_call(factories.TaskFactory, owner=alice, title="ours", priority=0)
    with override_bindings(binding):
        a, b = await make_client(alice), await make_client(bob)
        await subscribed(a, stream)
        await subscribed(b, stream)
        visible_to_bob = binding_name != "ScopedInFilterQueryset"

        await db_call(push.to_stream, stream, f"{stream}.flagged", {"id": private.pk})
        await db_call(push.to_stream, stream, f"{stream}.flagged", {"id": public.pk})
        assert await a.receive() == frame(f"{stream}.flagged", {"id": private.pk})
        assert await a.receive() == frame(f"{stream}.flagged", {"id": public.pk})
        if visible_to_bob:
            assert await b.receive() == frame(f"{stream}.flagged", {"id": public.pk})
        await a.assert_nothing_more()
        await b.assert_nothing_more()


async def test_to_stream_about_a_missing_row_reaches_no_one(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory)
    s = await make_client(superuser)
    assert (await s.send_event("testapp.Product.retrieve", {"id": product.pk}))["data"]
    await db_call(push.to_stream, Product, "testapp.Product.restocked", {"id": product.pk + 99})
    await s.assert_nothing_more()


@pytest.mark.parametrize(
    "action",
    [
        "retrieve",
        "list",
        "search",
        "create",
        "update",
        "save",
        "delete",
        "subscribe",
        "unsubscribe",
        "retrieve#tagged",
    ],
)
def test_built_in_action_names_are_refused_at_the_call(action, transactional_db):
    """A server push must never look like a row or page push (or a reply)."""
    event = f"testapp.Task.{action}"
    for send in (
        lambda: push.to_user(1, event, {"id": 3}),
        lambda: push.to_group("team.red", event, {"id": 3}),
        lambda: push.to_stream("testapp.Task", event, {"id": 3}),
    ):
        with pytest.raises(ValueError, match="built-in"):
            send()


async def test_built_in_action_names_are_refused_by_the_async_twins(db_call):
    with pytest.raises(ValueError, match="built-in"):
        await push.ato_stream("testapp.Task", "testapp.Task.retrieve", {"id": 3})
    with pytest.raises(ValueError, match="built-in"):
        await push.ato_user(1, "chat.delete", {"id": 3})
