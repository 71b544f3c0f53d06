"""[syncbind/middleware.py] The session's user read in syncbind's worker pool (issue 23, point 2: the reconnect storm's handshakes).

Channels' ``AuthMiddlewareStack`` reads each handshake's session and user on
asgiref's one thread-sensitive thread, so a crowd of handshakes waits there
in line. syncbind's ``AuthMiddlewareStack`` leaves the user to be read by
``SessionAuthentication`` in the worker that opens the connection; what is
admitted, and as whom, is the same as with Channels' stack.
"""

import pytest
from channels.auth import AuthMiddlewareStack as ChannelsStack
from channels.routing import URLRouter
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import path

from syncbind import middleware
from syncbind._workers import deadlines
from syncbind.middleware import AuthMiddlewareStack
from syncbind.testing import connect
from tests import factories
from tests.testapp.models import User

pytestmark = pytest.mark.django_db(transaction=True)

NOTES = "testapp.Note.list"


def signed_in(user):
    """The session cookie of ``user`` signed in through Django's login."""
    browser = Client()
    browser.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return f"{name}={browser.cookies[name].value}"


async def outcome(application, cookie, origin=None):
    """What a client with ``cookie`` gets: "refused" (the handshake; an anonymous one is),
    the error code of a read only a signed-in user may make, or how many notes it lists."""
    headers = [(b"host", b"shop.example"), (b"cookie", cookie.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    try:
        client = await connect(None, application=application, headers=headers)
    except ConnectionRefusedError:
        return "refused"
    reply = await client.send_event(NOTES, {})
    await client.close()
    return reply["error"]["code"] if "error" in reply else len(reply["data"]["rows"])


def inactive(user):
    User.objects.filter(pk=user.pk).update(is_active=False)


def new_password(user):
    user.set_password("another one")
    user.save()


def logged_out(user):
    Session.objects.all().delete()


@pytest.mark.parametrize(
    ("change", "origin", "expected"),
    [
        (None, None, 1),
        (None, "https://shop.example", 1),
        (None, "https://evil.example", "refused"),  # another site's page
        (inactive, None, "refused"),
        (new_password, None, "refused"),  # the session's auth hash no longer matches
        (logged_out, None, "refused"),
    ],
)
async def test_the_same_handshakes_are_admitted_as_the_same_users_as_with_channels_stack(
    consumer_app, db_call, change, origin, expected
):
    user = await db_call(factories.UserFactory)
    await db_call(factories.NoteFactory, owner=user)
    outcomes = []
    for stack in (ChannelsStack, AuthMiddlewareStack):
        cookie = await db_call(signed_in, user)
        if change is not None:
            await db_call(change, user)
        application = stack(URLRouter([path("ws/", consumer_app)]))
        outcomes.append(await outcome(application, cookie, origin))
        await db_call(User.objects.filter(pk=user.pk).update, is_active=True)
    assert outcomes == [expected, expected]


async def test_the_user_is_read_in_a_worker_of_the_pool(
    consumer_app, db_call, monkeypatch, worker_statements
):
    """Both statements of a handshake (the session, then the user) run in the worker that
    opens the connection; none on asgiref's thread-sensitive thread."""
    user = await db_call(factories.UserFactory)
    cookie = await db_call(signed_in, user)
    read_in: list[str] = []
    ran = worker_statements
    session_user = middleware.session_user

    def reading(session):
        import threading

        read_in.append(threading.current_thread().name)
        return session_user(session)

    monkeypatch.setattr(middleware, "session_user", reading)
    application = AuthMiddlewareStack(URLRouter([path("ws/", consumer_app)]))
    headers = [(b"cookie", cookie.encode())]
    client = await connect(None, application=application, headers=headers)
    # A reply: the handshake's worker call has returned (messages are handled in order).
    assert await client.send_event(NOTES, {})
    await client.close()
    assert len(read_in) == 1 and read_in[0].startswith(deadlines.WORKER_PREFIX)
    handshake = [sql for sql in ran if "testapp_note" not in sql]
    assert len(handshake) == 2
    assert "django_session" in handshake[0] and "testapp_user" in handshake[1]
