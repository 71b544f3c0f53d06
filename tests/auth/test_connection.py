"""[syncbind/_auth/connection.py, syncbind/authentication.py] Who may connect and do what: authentication, permission classes, anonymous access."""

import pytest
from django.core import signing

from syncbind._bindings.registry import registry
from syncbind.authentication import TOKEN_SALT, make_token
from syncbind.permissions import (
    AllowAny,
    BasePermission,
    DjangoModelPermissionsOrAnonReadOnly,
    IsAdminUser,
)
from syncbind.testing import connect
from tests import factories
from tests.testapp.models import Product

pytestmark = pytest.mark.django_db(transaction=True)

P = "testapp.Product"
TOKEN_AUTH = {
    "AUTHENTICATION_CLASSES": [
        "syncbind.authentication.SessionAuthentication",
        "syncbind.authentication.TokenAuthentication",
    ]
}


# -- handshake ---------------------------------------------------------------------------


async def test_anonymous_handshake_refused_by_default(consumer_app):
    with pytest.raises(ConnectionRefusedError):
        await connect(None, application=consumer_app)


async def test_anonymous_handshake_allowed_by_setting(consumer_app, settings, db_call):
    settings.SYNCBIND = {"ANONYMOUS_CONNECTION_ALLOWED": True}
    product = await db_call(factories.ProductFactory)
    async with connect(None, application=consumer_app) as client:
        # The default permission class still wants a user.
        reply = await client.send_event(f"{P}.retrieve", {"id": product.pk})
        assert reply["error"] == {
            "code": "not_authenticated",
            "message": "Authentication credentials were not provided.",
        }
        assert (await client.send_event(f"{P}.ping"))["data"] == {"pong": True, "user": None}


async def test_token_authentication(consumer_app, settings, db_call):
    settings.SYNCBIND = TOKEN_AUTH
    user = await db_call(factories.UserFactory)
    token = make_token(user)
    async with connect(
        None, application=consumer_app, subprotocols=["syncbind", f"syncbind.token.{token}"]
    ) as client:
        assert client.communicator.scope["subprotocols"]
        assert (await client.send_event(f"{P}.ping"))["data"]["user"] == user.username


@pytest.mark.parametrize("kind", ["garbage", "expired", "unknown user", "inactive user"])
async def test_bad_tokens_refuse_the_handshake(consumer_app, settings, db_call, kind):
    settings.SYNCBIND = {**TOKEN_AUTH, "ANONYMOUS_CONNECTION_ALLOWED": True, "TOKEN_MAX_AGE": 60}
    user = await db_call(factories.UserFactory, is_active=(kind != "inactive user"))
    token = {
        "garbage": "not-a-token",
        "expired": make_token(user),
        "unknown user": signing.TimestampSigner(salt=TOKEN_SALT, sep=".").sign_object(
            {"u": 987654, "t": 0, "h": "x"}
        ),
        "inactive user": make_token(user),
    }[kind]
    if kind == "expired":
        settings.SYNCBIND = {
            **TOKEN_AUTH,
            "ANONYMOUS_CONNECTION_ALLOWED": True,
            "TOKEN_MAX_AGE": -1,
        }
    with pytest.raises(ConnectionRefusedError):
        await connect(
            None, application=consumer_app, subprotocols=["syncbind", f"syncbind.token.{token}"]
        )


# -- permission classes ------------------------------------------------------------------
# Which events each model permission allows is tests/test_permissions.py's matrix; the
# classes and their composition are its unit tests. Here: how a consumer applies them.


class RefuseOddIds(BasePermission):
    message = "Odd rows are private."

    def has_object_permission(self, request, binding, obj):
        return obj.pk % 2 == 0


@pytest.fixture
def binding_with(db):
    """Temporarily set ProductBinding.permission_classes."""
    from tests.testapp.bindings import ProductBinding

    original = ProductBinding.permission_classes

    def use(*classes):
        ProductBinding.permission_classes = list(classes)

    yield use
    ProductBinding.permission_classes = original


async def test_object_permissions_apply_to_every_row_event(
    binding_with, consumer_app, db_call, superuser
):
    binding_with(AllowAny, RefuseOddIds)
    products = await db_call(lambda: [factories.ProductFactory() for _ in range(2)])
    odd, even = sorted(products, key=lambda p: p.pk % 2 == 0)
    assert odd.pk % 2 == 1 and even.pk % 2 == 0
    async with connect(superuser, application=consumer_app) as client:
        refused = {"code": "permission_denied", "message": "Odd rows are private."}
        for action, data in [
            ("retrieve", {}),
            ("update", {"name": "x"}),
            ("save", {"name": "x"}),
            ("delete", {}),
            ("restock", {}),
            ("subscribe", {}),
        ]:
            assert (await client.send_event(f"{P}.{action}", {"id": odd.pk, **data}))[
                "error"
            ] == refused, action
        assert (await client.send_event(f"{P}.retrieve", {"id": even.pk}))["data"]["id"] == even.pk
    assert await db_call(Product.objects.filter(pk=odd.pk).exists)


async def test_anonymous_gets_not_authenticated_user_gets_permission_denied(
    binding_with, consumer_app, db_call, settings
):
    settings.SYNCBIND = {"ANONYMOUS_CONNECTION_ALLOWED": True}
    binding_with(IsAdminUser)
    user = await db_call(factories.UserFactory)
    async with (
        connect(None, application=consumer_app) as anonymous,
        connect(user, application=consumer_app) as plain,
    ):
        assert (await anonymous.send_event(f"{P}.list"))["error"]["code"] == "not_authenticated"
        assert (await plain.send_event(f"{P}.list"))["error"]["code"] == "permission_denied"


async def test_anon_read_only(binding_with, consumer_app, db_call, settings):
    settings.SYNCBIND = {"ANONYMOUS_CONNECTION_ALLOWED": True}
    binding_with(DjangoModelPermissionsOrAnonReadOnly)
    product = await db_call(factories.ProductFactory)
    async with connect(None, application=consumer_app) as client:
        assert (await client.send_event(f"{P}.retrieve", {"id": product.pk}))["data"][
            "id"
        ] == product.pk
        assert (await client.send_event(f"{P}.delete", {"id": product.pk}))["error"][
            "code"
        ] == "not_authenticated"


def test_unknown_stream_for_registry():
    from syncbind.exceptions import UnknownEvent

    with pytest.raises(UnknownEvent):
        registry.get("nope.Nothing")


async def test_session_user_through_auth_middleware(db_call, settings):
    """The real route: AuthMiddlewareStack reads the session cookie."""
    from django.test import Client

    from tests.asgi import application

    user = await db_call(factories.UserFactory)

    def login():
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    session = await db_call(login)
    async with connect(
        None, application=application, headers=[(b"cookie", f"sessionid={session}".encode())]
    ) as client:
        assert (await client.send_event(f"{P}.ping"))["data"]["user"] == user.username
