"""[syncbind/permissions.py] The authorization matrix: who may do what, for every event and for pushes."""

import pytest

from syncbind.testing import connect
from tests import factories
from tests.testapp.models import Note, Product

pytestmark = pytest.mark.django_db(transaction=True)

P = "testapp.Product"
ALL_PRODUCT_PERMS = [f"testapp.{p}_product" for p in ("view", "add", "change", "delete")]

USERS = {
    "anonymous": None,
    "no permissions": {},
    "view permission": {"perms": ["testapp.view_product"]},
    "model permissions": {"perms": ALL_PRODUCT_PERMS},
    "superuser": {"is_superuser": True},
}
OK = "ok"
DENIED, ANON = "permission_denied", "not_authenticated"

# event -> expected outcome per user kind, in USERS order
MATRIX = {
    "retrieve": (ANON, DENIED, OK, OK, OK),
    "list": (ANON, DENIED, OK, OK, OK),
    "search": (ANON, DENIED, OK, OK, OK),
    "subscribe": (ANON, DENIED, OK, OK, OK),
    "create": (ANON, DENIED, DENIED, OK, OK),
    "update": (ANON, DENIED, DENIED, OK, OK),
    "save": (ANON, DENIED, DENIED, OK, OK),
    "delete": (ANON, DENIED, DENIED, OK, OK),
    "restock": (ANON, DENIED, DENIED, OK, OK),
    "ping": (OK, OK, OK, OK, OK),
}


def _data(action, product, category):
    return {
        "retrieve": {"id": product.pk},
        "subscribe": {"id": product.pk},
        "update": {"id": product.pk, "name": "changed"},
        "save": {"id": product.pk, "name": "changed"},
        "delete": {"id": product.pk},
        "restock": {"id": product.pk},
        "create": {"name": "new", "price": "1", "category": category.pk},
        "search": {"query": "p"},
    }.get(action, {})


@pytest.mark.parametrize("action", MATRIX)
@pytest.mark.parametrize("kind", USERS)
async def test_product_matrix(kind, action, consumer_app, db_call, settings):
    settings.SYNCBIND = {"ANONYMOUS_CONNECTION_ALLOWED": True}
    product = await db_call(factories.ProductFactory)
    before = await db_call(lambda: list(Product.objects.values()))
    user = None if USERS[kind] is None else await db_call(factories.UserFactory, **USERS[kind])
    expected = MATRIX[action][list(USERS).index(kind)]
    async with connect(user, application=consumer_app) as client:
        reply = await client.send_event(f"{P}.{action}", _data(action, product, product.category))
    if expected == OK:
        assert "data" in reply, reply
    else:
        assert reply["error"]["code"] == expected
        # A refusal writes nothing and reveals nothing about the row.
        assert await db_call(lambda: list(Product.objects.values())) == before
        assert str(product.name) not in str(reply)


async def test_anonymous_refused_by_default(consumer_app):
    with pytest.raises(ConnectionRefusedError):
        await connect(None, application=consumer_app)


@pytest.mark.parametrize("kind", ["other user", "owner", "superuser"])
async def test_owner_scoped_binding(kind, consumer_app, db_call):
    owner = await db_call(factories.UserFactory)
    note = await db_call(factories.NoteFactory, owner=owner, text="private")
    user = {
        "owner": owner,
        "other user": await db_call(factories.UserFactory),
        "superuser": await db_call(factories.SuperUserFactory),
    }[kind]
    visible = kind == "owner"  # even superusers see only their own notes through this binding
    async with connect(user, application=consumer_app) as client:
        for action, data in [
            ("retrieve", {"id": note.pk}),
            ("subscribe", {"id": note.pk}),
            ("update", {"id": note.pk, "text": "hijacked"}),
            ("delete", {"id": note.pk}),
        ]:
            reply = await client.send_event(f"testapp.Note.{action}", data)
            if visible:
                assert "data" in reply, (action, reply)
                if action == "update":
                    await db_call(Note.objects.filter(pk=note.pk).update, text="private")
            else:
                assert reply["error"] == {"code": "not_found", "message": "Not found."}, action
        if not visible:
            listed = (await client.send_event("testapp.Note.list"))["data"]
            assert listed["count"] == 0 and "private" not in str(listed)
            assert await db_call(Note.objects.filter(pk=note.pk, text="private").exists)
            # And no push about it ever arrives.
            await db_call(Note.objects.filter(pk=note.pk).update, text="still private")
            note.text = "changed"
            await db_call(note.save)
            await client.assert_nothing_more()


async def test_pushes_only_to_those_who_may_read(consumer_app, db_call, settings):
    settings.SYNCBIND = {"ANONYMOUS_CONNECTION_ALLOWED": True}
    product = await db_call(factories.ProductFactory)
    reader = await db_call(factories.UserFactory, perms=["testapp.view_product"])
    stranger = await db_call(factories.UserFactory)
    async with (
        connect(reader, application=consumer_app) as r,
        connect(stranger, application=consumer_app) as s,
        connect(None, application=consumer_app) as anon,
    ):
        await r.send_event(f"{P}.retrieve", {"id": product.pk})
        await r.send_event(f"{P}.list")
        assert (await s.send_event(f"{P}.subscribe", {"id": product.pk}))["error"]["code"] == DENIED
        assert (await s.send_event(f"{P}.list"))["error"]["code"] == DENIED
        assert (await anon.send_event(f"{P}.list"))["error"]["code"] == ANON
        product.name = "visible to readers only"
        await db_call(product.save)
        assert (await r.receive_push(f"{P}.retrieve"))["data"]["name"] == "visible to readers only"
        assert (await r.receive_push(f"{P}.list"))["data"]["count"] == 1
        await s.assert_nothing_more()
        await anon.assert_nothing_more()
