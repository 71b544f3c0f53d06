"""Who may connect: the Origin of session handshakes, and tokens as subprotocols.

Issue 11, point 11: with the routing missing ``AllowedHostsOriginValidator``,
or ``ALLOWED_HOSTS = ["*"]``, any site could open a socket carrying the
visitor's session cookie. Session handshakes are now refused unless their
Origin is this site's (or one of ``CSRF_TRUSTED_ORIGINS``), whatever the
routing; and tokens travel as a subprotocol, not in the URL (access logs).
"""

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from syncbind.authentication import TokenAuthentication, _signer, make_token
from syncbind.testing import connect
from tests import factories
from tests.servers import test_database_env, uvicorn_server
from tests.testapp.models import UUIDUser

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN_AUTH = {
    "AUTHENTICATION_CLASSES": [
        "syncbind.authentication.SessionAuthentication",
        "syncbind.authentication.TokenAuthentication",
    ]
}


def headers(origin=None, host="shop.example"):
    found = [(b"host", host.encode())]
    if origin is not None:
        found.append((b"origin", origin.encode()))
    return found


@pytest.mark.parametrize(
    ("origin", "admitted"),
    [
        (None, True),  # not a browser
        ("https://shop.example", True),
        ("http://shop.example", True),
        ("https://evil.example", False),
        ("https://shop.example.evil.example", False),
        ("null", False),
        ("https://api.partner.example", True),  # CSRF_TRUSTED_ORIGINS = https://*.partner.example
        ("http://api.partner.example", False),  # ... with its scheme
    ],
)
async def test_session_handshakes_from_other_sites_are_refused(
    consumer_app, db_call, settings, origin, admitted
):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.partner.example"]
    user = await db_call(factories.UserFactory)
    attempt = connect(user, application=consumer_app, headers=headers(origin))
    if admitted:
        client = await attempt
        assert "data" in await client.send_event("testapp.Note.list", {})
        await client.close()
    else:
        with pytest.raises(ConnectionRefusedError):
            await attempt


def served_as(application, scheme):
    """``application`` behind a server that puts ``scheme`` ("ws"/"wss") in the scope, as
    daphne and uvicorn do (from the TLS of the socket, or a proxy's forwarded headers)."""

    async def app(scope, receive, send):
        return await application({**scope, "scheme": scheme}, receive, send)

    return app


async def handshake(application, user, found_headers):
    """How ``application`` answers a handshake: "accepted", or "refused" when it closes
    the socket before accepting it (what servers send as HTTP 403: see the e2e test)."""
    communicator = WebsocketCommunicator(application, "/ws/", headers=found_headers)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=5)
    if not connected:
        return "refused"
    await communicator.disconnect()
    return "accepted"


@pytest.mark.parametrize(
    ("socket", "origin", "outcome"),
    [
        ("wss", "https://shop.example", "accepted"),
        ("wss", "http://shop.example", "refused"),  # a plain-HTTP page, anyone may write one
        ("ws", "http://shop.example", "accepted"),
        ("ws", "https://shop.example", "refused"),
        ("wss", "https://shop.example:443", "accepted"),  # the scheme's own port, written out
        ("wss", "https://shop.example:8443", "refused"),
        ("wss", "https://evil.example", "refused"),
        ("ws", "http://evil.example", "refused"),
        ("wss", "https://api.partner.example", "accepted"),  # CSRF_TRUSTED_ORIGINS, as before
        ("ws", "http://api.partner.example", "refused"),
    ],
)
async def test_the_origin_must_have_the_sockets_scheme_host_and_port(
    consumer_app, db_call, settings, socket, origin, outcome
):
    """Issue 21, point 8: an ``http://`` page of the same host passed for a ``wss://``
    socket; a page is this site's only with the socket's scheme, host and port."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.partner.example"]
    user = await db_call(factories.UserFactory)
    app = served_as(consumer_app, socket)
    assert await handshake(app, user, headers(origin)) == outcome


@pytest.mark.parametrize(
    ("forwarded", "origin", "outcome"),
    [
        ("https", "https://shop.example", "accepted"),
        ("https", "http://shop.example", "refused"),
        ("http", "http://shop.example", "accepted"),
        ("http", "https://shop.example", "refused"),
    ],
)
async def test_secure_proxy_ssl_header_decides_the_sockets_scheme(
    consumer_app, db_call, settings, forwarded, origin, outcome
):
    """A proxy that ends TLS and says so in the header Django trusts
    (``SECURE_PROXY_SSL_HEADER``), in front of a server that sees a plain socket."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    user = await db_call(factories.UserFactory)
    found = [*headers(origin), (b"x-forwarded-proto", forwarded.encode())]
    assert await handshake(served_as(consumer_app, "ws"), user, found) == outcome


@pytest.mark.e2e
def test_a_real_server_refuses_a_plain_http_page_with_403_behind_tls(transactional_db):
    """uvicorn, as behind a proxy that ends TLS: it reads ``X-Forwarded-Proto`` from
    loopback (its default ``--forwarded-allow-ips``) and serves the socket as wss."""
    user = factories.UserFactory()
    browser = Client()
    browser.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    cookie = f"{name}={browser.cookies[name].value}"

    with uvicorn_server("tests.asgi:application", env=test_database_env()) as port:
        site = f"127.0.0.1:{port}"

        async def outcome(origin, proto):
            extra = {"Cookie": cookie, "X-Forwarded-Proto": proto}
            try:
                async with ws_connect(f"ws://{site}/ws/", origin=origin, additional_headers=extra):
                    return "accepted"
            except InvalidStatus as refused:
                return refused.response.status_code

        async def scenario():
            return [
                await outcome(f"https://{site}", "https"),
                await outcome(f"http://{site}", "https"),
                await outcome(f"http://{site}", "http"),
                await outcome(f"https://{site}", "http"),
            ]

        assert asyncio.run(scenario()) == ["accepted", 403, "accepted", 403]


async def test_token_handshakes_may_come_from_anywhere(consumer_app, db_call, settings):
    """A token is not sent by the browser on its own: another site does not have it."""
    settings.SYNCBIND = TOKEN_AUTH
    user = await db_call(factories.UserFactory)
    protocols = ["syncbind", f"syncbind.token.{make_token(user)}"]
    async with connect(
        None,
        application=consumer_app,
        headers=headers("https://app.elsewhere.example"),
        subprotocols=protocols,
    ) as client:
        assert client.communicator.scope["subprotocols"] == protocols
        assert "data" in await client.send_event("testapp.Note.list", {})


async def test_tokens_in_the_url_are_not_read(consumer_app, db_call, settings):
    settings.SYNCBIND = TOKEN_AUTH
    user = await db_call(factories.UserFactory)
    with pytest.raises(ConnectionRefusedError):
        await connect(None, application=consumer_app, path=f"/ws/?token={make_token(user)}")


async def test_a_token_names_its_user_by_the_text_of_its_primary_key(db_call):
    """A user model with a UUID primary key has tokens too (JSON has no UUID type), and
    the text of an integer key finds that user."""
    uuid_user = await db_call(UUIDUser.objects.create, username="uuid-user")
    assert _signer().unsign_object(make_token(uuid_user))["u"] == str(uuid_user.pk)

    user = await db_call(factories.UserFactory)
    token = make_token(user)
    assert _signer().unsign_object(token)["u"] == str(user.pk)
    assert await db_call(TokenAuthentication().verify, token) == user
