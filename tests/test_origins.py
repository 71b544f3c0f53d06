"""SessionOriginValidator: session handshakes stay same-site, token clients connect from anywhere.

Issue 25, point 4: the README's ``asgi.py`` wrapped everything in Channels'
``AllowedHostsOriginValidator``, which refused token clients (pages on other
origins, mobile web views) with 403 unless they sent a same-host Origin. A
session cookie is ambient (the browser sends it whatever page opened the
socket); a token in the subprotocol header is not.
"""

import asyncio
import json

import pytest
from channels.auth import AuthMiddlewareStack
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from django.conf import settings as django_settings
from django.test import Client
from django.urls import path
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from syncbind import BindingConsumer
from syncbind.authentication import make_token
from syncbind.origins import SessionOriginValidator
from syncbind.testing import connect
from syncbind.testing.communicator import WebsocketCommunicator
from tests import factories
from tests.servers import test_database_env, token_protocols, uvicorn_server

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN_AUTH = {
    "AUTHENTICATION_CLASSES": [
        "syncbind.authentication.SessionAuthentication",
        "syncbind.authentication.TokenAuthentication",
    ]
}
SITE = "shop.example"


def readme_routing():
    """The README's ``"websocket"`` routing."""
    return SessionOriginValidator(
        AuthMiddlewareStack(URLRouter([path("ws/", BindingConsumer.as_asgi())]))
    )


def session_cookie(user) -> bytes:
    browser = Client()
    browser.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return f"{name}={browser.cookies[name].value}".encode()


def handshake_headers(origin=None, cookie=None):
    found = [(b"host", SITE.encode())]
    if origin is not None:
        found.append((b"origin", origin.encode()))
    if cookie is not None:
        found.append((b"cookie", cookie))
    return found


async def owner_seen(client) -> int:
    """The user the connection acts as: the owner of the note it creates."""
    reply = await client.send_event("testapp.Note.create", {"text": "mine"})
    return reply["data"]["row"]["owner"]


@pytest.mark.parametrize(
    ("origin", "with_token", "outcome"),
    [
        (f"https://{SITE}", False, "session"),  # this site's page
        (None, False, "session"),  # not a browser
        ("https://evil.example", False, "refused"),  # another site, the visitor's cookie
        ("https://evil.example", True, "token"),  # another site's page with its own token
        ("null", True, "token"),  # a sandboxed page or a file:// web view
    ],
)
async def test_the_session_counts_only_from_this_site_and_a_token_from_anywhere(
    db_call, settings, origin, with_token, outcome
):
    settings.SYNCBIND = TOKEN_AUTH
    visitor = await db_call(factories.UserFactory)
    token_user = await db_call(factories.UserFactory)
    cookie = await db_call(session_cookie, visitor)
    protocols = token_protocols(await db_call(make_token, token_user)) if with_token else None
    attempt = connect(
        application=readme_routing(),
        headers=handshake_headers(origin, cookie),
        subprotocols=protocols,
    )
    if outcome == "refused":
        with pytest.raises(ConnectionRefusedError):
            await attempt
        return
    async with attempt as client:
        expected = visitor if outcome == "session" else token_user
        assert await owner_seen(client) == expected.pk


async def test_a_refused_cross_site_handshake_opens_no_channel_and_ends_at_once(
    db_call, settings, monkeypatch
):
    """Channels' WebsocketDenier opened a channel and waited on it until the client
    went: a layer receive (a Redis blocking pop) per refused handshake, and on
    Python 3.11 one that could outlive its cancel and hang the event loop's close."""
    settings.SYNCBIND = TOKEN_AUTH
    opened = []
    layer = get_channel_layer()
    new_channel = layer.new_channel

    async def counted(*args, **kwargs):
        opened.append(await new_channel(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(layer, "new_channel", counted)
    cookie = await db_call(session_cookie, await db_call(factories.UserFactory))
    communicator = WebsocketCommunicator(
        readme_routing(), "/ws/", headers=handshake_headers("https://evil.example", cookie)
    )
    assert await communicator.connect() == (False, 1000)
    # Its application returned as it answered: nothing is left to cancel.
    assert communicator.future.done() and not communicator.future.cancelled()
    assert opened == []


async def test_a_cross_site_handshake_reaches_the_application_without_cookies(settings):
    """What passes from another origin carries no cookie: nothing behind the validator
    (Channels' session middleware, a consumer's own ``connect()``) sees the visitor's."""
    settings.SYNCBIND = TOKEN_AUTH
    seen = []

    async def application(scope, receive, send):
        seen.append(dict(scope["headers"]))
        await send({"type": "websocket.close"})

    cookie = f"{django_settings.SESSION_COOKIE_NAME}=abc; theme=dark".encode()
    for origin in (f"https://{SITE}", "https://evil.example"):
        attempt = connect(
            application=SessionOriginValidator(application),
            headers=handshake_headers(origin, cookie),
            subprotocols=token_protocols("t"),
        )
        with pytest.raises(ConnectionRefusedError):
            await attempt
    assert [headers.get(b"cookie") for headers in seen] == [cookie, None]


async def test_other_cookies_do_not_make_a_handshake_a_session_one(db_call, settings):
    """A cross-site handshake with cookies but no session cookie is not refused by the
    validator: it goes on as anonymous, and syncbind refuses anonymous users itself
    unless ``ANONYMOUS_CONNECTION_ALLOWED``."""
    settings.SYNCBIND = {**TOKEN_AUTH, "ANONYMOUS_CONNECTION_ALLOWED": True}
    async with connect(
        application=readme_routing(),
        headers=handshake_headers("https://evil.example", b"theme=dark"),
    ) as client:
        reply = await client.send_event("testapp.Note.list", {})
    assert reply["error"]["code"] == "not_authenticated"


def test_the_validator_counts_as_an_origin_validator_for_the_deploy_check(settings):
    from channels.routing import ProtocolTypeRouter

    from syncbind.checks import _served_consumers

    application = ProtocolTypeRouter({"websocket": readme_routing()})
    assert [guarded for _consumer, guarded in _served_consumers(application)] == [True]


@pytest.mark.e2e
def test_a_real_server_takes_tokens_from_any_origin_and_sessions_from_its_own():
    """uvicorn serving the README's routing: a Python websockets client with a token and
    a foreign Origin connects; a cookie handshake with a foreign Origin gets 403."""
    visitor, token_user = factories.UserFactory(), factories.UserFactory()
    cookie = session_cookie(visitor).decode()
    token = make_token(token_user)
    env = {**test_database_env(), "SYNCBIND_TEST_TOKEN_AUTH": "1"}

    with uvicorn_server("tests.asgi:guarded_application", env=env) as port:
        url = f"ws://127.0.0.1:{port}/ws/"

        async def outcome(origin, protocols=None, headers=None):
            try:
                async with ws_connect(
                    url, origin=origin, subprotocols=protocols, additional_headers=headers
                ) as ws:
                    await ws.send('{"event": "testapp.Note.create", "data": {"text": "x"}}')
                    return json.loads(await ws.recv())["data"]["row"]["owner"]
            except InvalidStatus as refused:
                return refused.response.status_code

        async def scenario():
            elsewhere = "https://app.elsewhere.example"
            return [
                await outcome(elsewhere, token_protocols(token)),
                await outcome(elsewhere, headers={"Cookie": cookie}),
                await outcome(f"http://127.0.0.1:{port}", headers={"Cookie": cookie}),
                await outcome(elsewhere, token_protocols(token), headers={"Cookie": cookie}),
            ]

        assert asyncio.run(scenario()) == [token_user.pk, 403, visitor.pk, token_user.pk]
