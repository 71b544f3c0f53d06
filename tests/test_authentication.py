"""Who may connect: the Origin of session handshakes, and tokens as subprotocols.

Issue 11, point 11: with the routing missing ``AllowedHostsOriginValidator``,
or ``ALLOWED_HOSTS = ["*"]``, any site could open a socket carrying the
visitor's session cookie. Session handshakes are now refused unless their
Origin is this site's (or one of ``CSRF_TRUSTED_ORIGINS``), whatever the
routing; and tokens travel as a subprotocol, not in the URL (access logs).
"""

import pytest

from syncbind.authentication import TokenAuthentication, _signer, make_token
from syncbind.testing import connect
from tests import factories
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
