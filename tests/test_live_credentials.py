"""[syncbind/live/credentials.py] An open socket loses access as soon as what admitted it no longer holds.

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
from django.test import Client
from django.urls import path

from syncbind import BindingConsumer
from syncbind.authentication import make_token, revoke_tokens
from syncbind.live.credentials import announce
from syncbind.testing import connect
from tests import factories
from tests.testapp.models import Note, UUIDUser

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
