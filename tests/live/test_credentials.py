"""[syncbind/_live/credentials.py] An open socket loses access as soon as what admitted it no longer holds.

Issue 11, point 2: after ``is_active = False`` an open socket kept creating
rows and receiving pushes; logging out, changing the password or revoking a
token did not cut it either. Each test opens a socket the way a browser or an
API client would, changes the credentials the way the admin or a view would,
and checks the socket is closed (code 4003) and serves nothing more.
"""

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.test import Client
from django.urls import path

from syncbind import BindingConsumer
from syncbind._live import credentials
from syncbind._live.credentials import announce
from syncbind.authentication import TokenAuthentication, make_token, revoke_tokens
from syncbind.exceptions import AuthenticationFailed
from syncbind.testing import connect, settle
from tests import factories
from tests.testapp.models import Note, Product, UUIDUser

pytestmark = pytest.mark.django_db(transaction=True)

NOTE = "testapp.Note"  # IsAuthenticated, owner-scoped: the sample site's pattern
TOKEN_AUTH = {
    "AUTHENTICATION_CLASSES": [
        "syncbind.authentication.SessionAuthentication",
        "syncbind.authentication.TokenAuthentication",
    ]
}


def session_app():
    return AuthMiddlewareStack(URLRouter([path("ws/", BindingConsumer.as_asgi())]))


def logged_in_browser(user):
    browser = Client()
    browser.force_login(user)
    cookie = f"{django_settings.SESSION_COOKIE_NAME}={browser.cookies[django_settings.SESSION_COOKIE_NAME].value}"
    return browser, [(b"cookie", cookie.encode()), (b"host", b"testserver")]


async def watching(client, user, db_call):
    """The socket works: it lists its notes and is subscribed to them."""
    await db_call(Note.objects.create, owner=user, text="mine")
    page = await client.send_event(f"{NOTE}.list", {})
    assert page["data"]["count"] == 1
    await settle()  # its stream's group joined, and what the join caught up on pushed


async def assert_cut(client, db_call, user):
    assert await client.receive_close() == 4003
    assert not [frame for frame in client.pending if "data" in frame]
    assert await db_call(Note.objects.filter(owner=user, text="after").count) == 0


async def test_deactivated_user_is_cut_at_once(make_client, db_call):
    user = await db_call(factories.UserFactory)
    client = await make_client(user)
    await watching(client, user, db_call)

    def deactivate():  # as the admin does
        fresh = get_user_model().objects.get(pk=user.pk)
        fresh.is_active = False
        fresh.save()

    await db_call(deactivate)
    await assert_cut(client, db_call, user)


async def test_deleted_user_is_cut_at_once(make_client, db_call):
    user = await db_call(factories.UserFactory)
    client = await make_client(user)
    await watching(client, user, db_call)
    await db_call(lambda: get_user_model().objects.get(pk=user.pk).delete())
    assert await client.receive_close() == 4003


async def test_a_change_the_signals_do_not_see_is_found_before_the_next_request(
    make_client, db_call, settings
):
    """``QuerySet.update()`` sends no signal: the next request checks the user again."""
    settings.SYNCBIND = {"USER_REFRESH_INTERVAL": 0}
    user = await db_call(factories.UserFactory)
    client = await make_client(user)
    await watching(client, user, db_call)
    await db_call(get_user_model().objects.filter(pk=user.pk).update, is_active=False)
    reply = await client.send_event(f"{NOTE}.create", {"text": "after"})
    assert reply["error"]["code"] == "not_authenticated"
    await assert_cut(client, db_call, user)


async def test_logging_out_cuts_the_sockets_of_that_session(db_call):
    user = await db_call(factories.UserFactory)
    browser, headers = await db_call(logged_in_browser, user)
    _, other_headers = await db_call(logged_in_browser, user)  # another browser
    client = await connect(None, application=session_app(), headers=headers)
    other = await connect(None, application=session_app(), headers=other_headers)
    try:
        await watching(client, user, db_call)
        await db_call(browser.logout)
        await assert_cut(client, db_call, user)
        # The other browser's session still holds.
        assert (await other.send_event(f"{NOTE}.list", {}))["data"]["count"] == 1
    finally:
        await other.close()


def change_password(pk):
    fresh = get_user_model().objects.get(pk=pk)
    fresh.set_password("a new one")
    fresh.save()


async def test_a_new_password_cuts_the_other_sessions(db_call):
    user = await db_call(factories.UserFactory)
    _, headers = await db_call(logged_in_browser, user)
    client = await connect(None, application=session_app(), headers=headers)
    await watching(client, user, db_call)

    await db_call(change_password, user.pk)
    await assert_cut(client, db_call, user)


async def test_revoked_tokens_cut_their_sockets_and_refuse_handshakes(
    consumer_app, db_call, settings
):
    settings.SYNCBIND = TOKEN_AUTH
    user = await db_call(factories.UserFactory)
    token = make_token(user)
    protocols = ["syncbind", f"syncbind.token.{token}"]
    client = await connect(None, application=consumer_app, subprotocols=protocols)
    await watching(client, user, db_call)
    await db_call(revoke_tokens, user)
    await assert_cut(client, db_call, user)
    with pytest.raises(ConnectionRefusedError):
        await connect(None, application=consumer_app, subprotocols=protocols)
    # A token made afterwards works.
    fresh = await db_call(make_token, user)
    async with connect(
        None, application=consumer_app, subprotocols=["syncbind", f"syncbind.token.{fresh}"]
    ) as again:
        assert (await again.send_event(f"{NOTE}.list", {}))["data"]["count"] == 1


async def test_a_new_password_revokes_tokens(consumer_app, db_call, settings):
    settings.SYNCBIND = TOKEN_AUTH
    user = await db_call(factories.UserFactory)
    protocols = ["syncbind", f"syncbind.token.{make_token(user)}"]
    client = await connect(None, application=consumer_app, subprotocols=protocols)
    await watching(client, user, db_call)

    await db_call(change_password, user.pk)
    await assert_cut(client, db_call, user)
    with pytest.raises(ConnectionRefusedError):
        await connect(None, application=consumer_app, subprotocols=protocols)


async def test_an_open_socket_outlives_its_tokens_lifetime(consumer_app, db_call, settings):
    """Expiry refuses new handshakes; an open socket ends only by revocation."""
    settings.SYNCBIND = {**TOKEN_AUTH, "USER_REFRESH_INTERVAL": 0, "TOKEN_MAX_AGE": 3600}
    user = await db_call(factories.UserFactory)
    protocols = ["syncbind", f"syncbind.token.{make_token(user)}"]
    async with connect(None, application=consumer_app, subprotocols=protocols) as client:
        settings.SYNCBIND = {**TOKEN_AUTH, "USER_REFRESH_INTERVAL": 0, "TOKEN_MAX_AGE": -1}
        assert (await client.send_event(f"{NOTE}.list", {}))["data"]["count"] == 0
        with pytest.raises(ConnectionRefusedError):
            await connect(None, application=consumer_app, subprotocols=protocols)


API_KEYS: dict[str, int] = {}


class ApiKeyAuthentication(TokenAuthentication):
    """Tokens looked up elsewhere: an API-key table (here a dict), as docs/bindings.md shows."""

    def get_user(self, token, *, open_connection=False):
        API_KEYS.setdefault("asked", []).append((token, open_connection))
        user_pk = API_KEYS.get(token)
        if user_pk is None:
            raise AuthenticationFailed("Unknown key.")
        return get_user_model().objects.get(pk=user_pk)


async def test_a_token_looked_up_elsewhere_is_asked_again_for_the_open_socket(
    consumer_app, db_call, settings
):
    """An overridden get_user decides the handshake and, asked with open_connection=True,
    whether the open socket may stay: a deleted key cuts it."""
    settings.SYNCBIND = {
        "AUTHENTICATION_CLASSES": [f"{__name__}.ApiKeyAuthentication"],
        "USER_REFRESH_INTERVAL": 0,
    }
    user = await db_call(factories.UserFactory)
    API_KEYS.clear()
    API_KEYS["key-1"] = user.pk
    protocols = ["syncbind", "syncbind.token.key-1"]
    async with connect(None, application=consumer_app, subprotocols=protocols) as client:
        assert (await client.send_event(f"{NOTE}.list", {}))["data"]["count"] == 0
        await settle()  # the subscription's join and its catch-up done: nothing else reads
        del API_KEYS["key-1"]
        assert (await client.send_event(f"{NOTE}.list", {}))["error"] == {
            "code": "not_authenticated",
            "message": "Your credentials are no longer valid; connect again.",
        }
        assert await client.receive_close() == 4003
    assert ("key-1", False) in API_KEYS["asked"]  # the handshake
    assert ("key-1", True) in API_KEYS["asked"]  # the open socket, read again


async def test_unrelated_users_keep_their_sockets(make_client, db_call):
    user, other = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    client = await make_client(user)
    await watching(client, user, db_call)

    def deactivate_other():
        fresh = get_user_model().objects.get(pk=other.pk)
        fresh.is_active = False
        fresh.save()

    await db_call(deactivate_other)
    await client.assert_nothing_more()
    assert (await client.send_event(f"{NOTE}.list", {}))["data"]["count"] == 1


async def test_a_user_whose_primary_key_is_a_uuid_is_cut_at_once(make_client, db_call):
    """The credential message names the user in the hub's wire form (channels-redis
    cannot pack a UUID): the socket of the user it names is checked and closed."""
    user = await db_call(UUIDUser.objects.create, username="uuid-user")
    other = await db_call(UUIDUser.objects.create, username="uuid-other")
    client, bystander = await make_client(user), await make_client(other)

    await db_call(UUIDUser.objects.filter(pk__in=[user.pk, other.pk]).update, is_active=False)
    await db_call(announce, user.pk)

    assert await client.receive_close() == 4003
    await bystander.assert_nothing_more()


# -- permissions and groups (issue 21, point 5) ------------------------------------------
#
# Django caches a user's permissions on the user object; a session socket holds
# Channels' lazy wrapper around it. Each test grants product permissions
# (DjangoModelPermissions: view to read, change/delete to write), opens a socket
# as a browser (session cookie) or an API client (token), takes them away the
# way the admin or a script would, and checks what the same socket may still do.

P = "testapp.Product"
DENIED = {
    "code": "permission_denied",
    "message": "You do not have permission to perform this action.",
}


def product_permissions(*actions):
    codenames = [f"{action}_product" for action in actions]
    return list(
        Permission.objects.filter(content_type__app_label="testapp", codename__in=codenames)
    )


@pytest.fixture(params=["session", "token"])
async def open_socket(request, db_call, settings):
    """``await open_socket(user)``: a socket opened with a session cookie or with a token
    (under the test's SYNCBIND settings, with TokenAuthentication added)."""
    clients = []

    async def open_(user):
        settings.SYNCBIND = {**TOKEN_AUTH, **getattr(settings, "SYNCBIND", {})}
        if request.param == "session":
            _, headers = await db_call(logged_in_browser, user)
            client = await connect(None, application=session_app(), headers=headers)
        else:
            token = await db_call(make_token, user)
            client = await connect(
                None,
                application=BindingConsumer.as_asgi(),
                subprotocols=["syncbind", f"syncbind.token.{token}"],
            )
        clients.append(client)
        return client

    yield open_
    for client in clients:
        await client.close()


def grant_directly(user, actions):
    user.user_permissions.add(*product_permissions(*actions))


def grant_through_group(user, actions):
    group = Group.objects.create(name=f"{' '.join(actions)} for {user.pk}")
    group.permissions.add(*product_permissions(*actions))
    user.groups.add(group)


# How change/delete are taken away, and how they were granted.
REVOCATIONS = {
    "user.user_permissions.remove": (
        grant_directly,
        lambda user: user.user_permissions.remove(*product_permissions("change", "delete")),
    ),
    "user.user_permissions.clear": (grant_directly, lambda user: user.user_permissions.clear()),
    "permission.user_set.remove": (
        grant_directly,
        lambda user: [p.user_set.remove(user) for p in product_permissions("change", "delete")],
    ),
    "user.groups.remove": (
        grant_through_group,
        lambda user: user.groups.remove(*user.groups.all()),
    ),
    "user.groups.clear": (grant_through_group, lambda user: user.groups.clear()),
    "group.user_set.remove": (
        grant_through_group,
        lambda user: [g.user_set.remove(user) for g in user.groups.all()],
    ),
    "group.user_set.clear": (
        grant_through_group,
        lambda user: [g.user_set.clear() for g in user.groups.all()],
    ),
    "group.permissions.remove": (
        grant_through_group,
        lambda user: [
            g.permissions.remove(*product_permissions("change", "delete"))
            for g in user.groups.all()
        ],
    ),
    "group.permissions.clear": (
        grant_through_group,
        lambda user: [g.permissions.clear() for g in user.groups.all()],
    ),
    "permission.group_set.remove": (
        grant_through_group,
        lambda user: [
            p.group_set.remove(*user.groups.all()) for p in product_permissions("change", "delete")
        ],
    ),
    "group deleted": (grant_through_group, lambda user: user.groups.all().delete()),
    "permission deleted": (
        grant_directly,
        lambda user: [p.delete() for p in product_permissions("change", "delete")],
    ),
}


def revoke_in_a_transaction(revoke, pk):
    with transaction.atomic():
        revoke(get_user_model().objects.get(pk=pk))


async def assert_writes_refused(client, product, db_call):
    """update and delete are refused on the same socket, and the row is as it was."""
    update = await client.send_event(f"{P}.update", {"id": product.pk, "name": "hijacked"})
    assert update["error"] == DENIED
    delete = await client.send_event(f"{P}.delete", {"id": product.pk})
    assert delete["error"] == DENIED
    assert await db_call(lambda: list(Product.objects.values_list("pk", "name"))) == [
        (product.pk, product.name)
    ]


@pytest.mark.parametrize("how", REVOCATIONS)
async def test_revoked_write_permissions_refuse_the_open_socket_at_once(how, open_socket, db_call):
    grant, revoke = REVOCATIONS[how]
    user = await db_call(factories.UserFactory)
    await db_call(grant, user, ["change", "delete"])
    # view the other way, so that it stays
    other_way = grant_through_group if grant is grant_directly else grant_directly
    await db_call(other_way, user, ["view"])
    product = await db_call(factories.ProductFactory, name="original")
    client = await open_socket(user)
    # Allowed once: Django has cached the user's permissions on the socket's user.
    allowed = await client.send_event(f"{P}.update", {"id": product.pk, "name": "original"})
    assert allowed["data"]["row"]["name"] == "original"

    await db_call(revoke_in_a_transaction, revoke, user.pk)
    await settle()

    await assert_writes_refused(client, product, db_call)
    # What was not taken away still works.
    assert (await client.send_event(f"{P}.retrieve", {"id": product.pk}))["data"][
        "id"
    ] == product.pk


async def test_a_revoked_write_permission_keeps_what_the_socket_may_still_read(
    open_socket, db_call
):
    user = await db_call(factories.UserFactory, perms=["testapp.view_product"])
    await db_call(grant_directly, user, ["change"])
    product = await db_call(factories.ProductFactory, name="followed")
    client = await open_socket(user)
    await client.send_event(f"{P}.retrieve", {"id": product.pk})

    await db_call(revoke_in_a_transaction, REVOCATIONS["user.user_permissions.remove"][1], user.pk)
    await settle()
    await client.assert_nothing_more()  # the subscription is not ended: view still holds

    await db_call(Product.objects.filter(pk=product.pk).update, name="renamed")
    await db_call(lambda: Product.objects.get(pk=product.pk).save())
    assert (await client.receive_push(f"{P}.retrieve"))["data"]["name"] == "renamed"


@pytest.mark.parametrize("how", ["user.user_permissions.remove", "group.permissions.remove"])
async def test_a_revoked_view_permission_ends_reads_and_subscriptions(how, open_socket, db_call):
    grant = grant_directly if how.startswith("user") else grant_through_group
    user = await db_call(factories.UserFactory)
    await db_call(grant, user, ["view"])
    product = await db_call(factories.ProductFactory, name="followed")
    client = await open_socket(user)
    assert (await client.send_event(f"{P}.retrieve", {"id": product.pk}))["data"]["id"]
    assert (await client.send_event(f"{P}.list#all", {}))["data"]["count"] == 1

    def revoke(user):
        view = product_permissions("view")
        if how.startswith("user"):
            user.user_permissions.remove(*view)
        else:
            user.groups.get().permissions.remove(*view)

    await db_call(revoke_in_a_transaction, revoke, user.pk)
    # Each subscription ends with a frame that says why (not silence).
    assert await client.receive_ended(f"{P}.retrieve") == {
        "event": f"{P}.retrieve",
        "ended": DENIED,
        "data": {"id": product.pk},
    }
    assert await client.receive_ended(f"{P}.list#all") == {
        "event": f"{P}.list#all",
        "ended": DENIED,
    }
    assert (await client.send_event(f"{P}.retrieve", {"id": product.pk}))["error"] == DENIED
    assert (await client.send_event(f"{P}.list", {}))["error"] == DENIED
    # A change to the rows it followed pushes nothing.
    await db_call(Product.objects.filter(pk=product.pk).update, name="secret")
    await db_call(lambda: Product.objects.get(pk=product.pk).save())
    await client.assert_nothing_more()


async def test_joining_a_group_grants_its_permissions_at_once(open_socket, db_call):
    user = await db_call(factories.UserFactory, perms=["testapp.view_product"])
    product = await db_call(factories.ProductFactory, name="original")
    client = await open_socket(user)
    # Refused once: Django has cached that the user has no change permission.
    assert (await client.send_event(f"{P}.delete", {"id": product.pk}))["error"] == DENIED

    def join(user):
        group = Group.objects.create(name="deleters")
        group.permissions.add(*product_permissions("delete"))
        group.user_set.add(user)

    await db_call(revoke_in_a_transaction, join, user.pk)
    await settle()
    assert (await client.send_event(f"{P}.delete", {"id": product.pk}))["data"]
    assert not await db_call(Product.objects.filter(pk=product.pk).exists)


async def test_a_group_change_reaches_every_member_in_bounded_messages(
    open_socket, db_call, monkeypatch
):
    monkeypatch.setattr(credentials, "USERS_PER_MESSAGE", 2)
    sent = []
    original_send = credentials.send
    monkeypatch.setattr(
        credentials,
        "send",
        lambda group, message, what: (sent.append(message), original_send(group, message, what)),
    )
    members = [await db_call(factories.UserFactory) for _ in range(3)]
    group = await db_call(Group.objects.create, name="editors")
    await db_call(lambda: group.permissions.add(*product_permissions("view", "change")))
    await db_call(lambda: group.user_set.add(*members))
    product = await db_call(factories.ProductFactory, name="original")
    clients = [await open_socket(member) for member in members]
    for client in clients:
        assert (await client.send_event(f"{P}.update", {"id": product.pk, "name": "x"}))["data"]
    sent.clear()

    await db_call(lambda: group.permissions.remove(*product_permissions("change")))
    await settle()
    pks = sorted(member.pk for member in members)
    assert sent == [
        {"type": "syncbind.auth", "users": [str(pk) for pk in pks[:2]]},
        {"type": "syncbind.auth", "users": [str(pk) for pk in pks[2:]]},
    ]
    for client in clients:
        reply = await client.send_event(f"{P}.update", {"id": product.pk, "name": "y"})
        assert reply["error"] == DENIED
    assert (await db_call(Product.objects.get, pk=product.pk)).name == "x"


# -- the interval alone: changes no signal announces --------------------------------------


def remove_through_the_table(user, *actions):
    """As raw SQL would: a QuerySet.delete() on the through table sends no m2m_changed."""
    through = get_user_model().user_permissions.through
    through.objects.filter(user_id=user.pk, permission__in=product_permissions(*actions)).delete()


async def test_permissions_removed_behind_the_signals_count_once_the_interval_passes(
    open_socket, db_call, settings
):
    settings.SYNCBIND = {"USER_REFRESH_INTERVAL": 0}
    user = await db_call(factories.UserFactory)
    await db_call(grant_directly, user, ["view", "change", "delete"])
    product = await db_call(factories.ProductFactory, name="original")
    client = await open_socket(user)
    assert (await client.send_event(f"{P}.update", {"id": product.pk, "name": "original"}))["data"]
    assert (await client.send_event(f"{P}.retrieve", {"id": product.pk}))["data"]

    await db_call(remove_through_the_table, user, "change", "delete")
    await client.assert_nothing_more()  # nothing was announced
    await assert_writes_refused(client, product, db_call)

    await db_call(remove_through_the_table, user, "view")
    # The next push re-reads the user: the subscription ends instead of pushing the row.
    await db_call(Product.objects.filter(pk=product.pk).update, name="secret")
    await db_call(lambda: Product.objects.get(pk=product.pk).save())
    assert await client.receive_ended(f"{P}.retrieve") == {
        "event": f"{P}.retrieve",
        "ended": DENIED,
        "data": {"id": product.pk},
    }
    await client.assert_nothing_more()
    assert (await client.send_event(f"{P}.retrieve", {"id": product.pk}))["error"] == DENIED


async def test_a_request_after_the_interval_ends_what_may_no_longer_be_read(
    open_socket, db_call, settings
):
    settings.SYNCBIND = {"USER_REFRESH_INTERVAL": 0}
    user = await db_call(factories.UserFactory)
    await db_call(grant_directly, user, ["view"])
    product = await db_call(factories.ProductFactory)
    client = await open_socket(user)
    await client.send_event(f"{P}.list", {})
    await settle()  # its stream's group joined, and what the join caught up on pushed

    await db_call(remove_through_the_table, user, "view")
    assert (await client.send_event(f"{P}.retrieve", {"id": product.pk}))["error"] == DENIED
    assert await client.receive_ended(f"{P}.list") == {"event": f"{P}.list", "ended": DENIED}
    await client.assert_nothing_more()


async def test_a_rolled_back_change_announces_nothing_and_grants_stay(
    open_socket, db_call, monkeypatch
):
    user = await db_call(factories.UserFactory, perms=["testapp.view_product"])
    await db_call(grant_directly, user, ["delete"])
    product = await db_call(factories.ProductFactory)
    client = await open_socket(user)
    await settle()
    sent = []
    monkeypatch.setattr(credentials, "send", lambda group, message, what: sent.append(message))

    class Undo(Exception):
        pass

    def revoke_then_roll_back():
        with pytest.raises(Undo), transaction.atomic():
            REVOCATIONS["user.user_permissions.remove"][1](user)
            raise Undo

    await db_call(revoke_then_roll_back)
    await settle()
    assert sent == []
    assert (await client.send_event(f"{P}.delete", {"id": product.pk}))["data"]


def test_a_user_model_without_permissions_mixin_has_no_relations_to_watch():
    """A custom user model without ``groups``/``user_permissions``: nothing to connect."""
    assert credentials.permission_relations(Note) == {}
    user_model = get_user_model()
    assert credentials.permission_relations(user_model) == {
        "user_permissions": user_model.user_permissions.through,
        "groups": user_model.groups.through,
    }
