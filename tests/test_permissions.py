"""[syncbind/permissions.py] The authorization matrix: who may do what, for every event and for pushes."""

import logging

import pytest

from syncbind import event
from syncbind._auth.connection import Connection
from syncbind._bindings.registry import registry
from syncbind._bindings.request import Request
from syncbind._wire import protocol
from syncbind.bindings import BindingBase
from syncbind.testing import connect
from tests import factories
from tests.permission_matrix import (
    ANON,
    DENIED,
    ERRORS,
    MATRIX,
    OK,
    USERS,
    P,
    case_data,
    expected,
    outcome,
    rows,
)
from tests.testapp.bindings import ProductBinding
from tests.testapp.models import Note, Product

pytestmark = pytest.mark.django_db(transaction=True)


class QuerysetProductBinding(ProductBinding):
    """The Product binding declared channels-binding style: ``queryset``, no ``model``."""

    model = None
    queryset = Product.objects.all()
    stream = "perms.QuerysetProduct"


class HookProductBinding(ProductBinding):
    """The Product binding declared through hooks only: no ``model``, no ``queryset``."""

    model = None
    stream = "perms.HookProduct"

    @classmethod
    def get_model(cls):
        return Product

    def get_queryset(self):
        return Product.objects.all()


# The registry needs get_model() to work, so these two are never registered: they
# are run through the lifecycle directly (as the core runs a registered binding).


class QuerysetOnlyBinding(BindingBase):
    """Names its rows only through ``get_queryset()`` (as a DRF view may)."""

    stream = "perms.QuerysetOnly"

    def get_queryset(self):
        return Product.objects.all()

    @event(atomic=False)  # atomic would need get_model() for the database
    def wipe(self, request):
        return {"deleted": self.get_queryset().delete()[0]}


class ModelessBinding(BindingBase):
    """Names no model at all: model permissions cannot say who may use it."""

    stream = "perms.Modeless"

    @event(atomic=False)  # atomic would need get_model() for the database
    def wipe(self, request):
        return {"deleted": Product.objects.all().delete()[0]}


# How the Product binding is declared -> its stream.
STYLES = {
    "model =": P,
    "queryset =": QuerysetProductBinding.stream,
    "get_model() + get_queryset()": HookProductBinding.stream,
}


@pytest.fixture
def perms_bindings():
    saved = registry.snapshot()
    for binding in (QuerysetProductBinding, HookProductBinding):
        registry.register(binding)
    yield
    registry.restore(saved)


@pytest.mark.parametrize("kind", USERS)
@pytest.mark.parametrize("style", STYLES)
async def test_product_matrix(style, kind, consumer_app, db_call, settings, perms_bindings):
    """Every event, as ``kind``: MATRIX's outcome; a refusal writes nothing and
    reveals nothing about the row."""
    settings.SYNCBIND = {"ANONYMOUS_CONNECTION_ALLOWED": True}
    user = None if USERS[kind] is None else await db_call(factories.UserFactory, **USERS[kind])
    seen = {}
    async with connect(user, application=consumer_app) as client:
        for case, (action, _outcomes) in MATRIX.items():
            product = await db_call(factories.ProductFactory)
            before = await db_call(rows)
            reply = await client.send_event(f"{STYLES[style]}.{action}", case_data(case, product))
            seen[case] = outcome(reply)
            if seen[case] != OK:
                assert await db_call(rows) == before, case
                assert str(product.name) not in str(reply), case
    assert seen == expected(MATRIX, USERS, kind)


def run_unregistered(binding_class, action, user):
    """The reply ``binding_class`` gives ``user`` for ``action``, through the lifecycle."""
    stream = binding_class.get_stream()
    message = protocol.Message(event=f"{stream}.{action}", stream=stream, action=action)
    request = Request(message, Connection(user=user))
    return binding_class(request=request, action=action).dispatch()


@pytest.mark.parametrize("perms", [[], ["testapp.view_product"], ["testapp.change_product"]])
def test_model_found_through_get_queryset(perms):
    """A binding naming its rows only in get_queryset() gets that model's permissions."""
    factories.ProductFactory()
    reply = run_unregistered(QuerysetOnlyBinding, "wipe", factories.UserFactory(perms=perms))
    if perms == ["testapp.change_product"]:  # a custom event: change
        assert reply["data"] == {"deleted": 1}
    else:
        assert reply["error"] == ERRORS[DENIED]
        assert Product.objects.count() == 1


@pytest.mark.parametrize("kind", ["model permissions", "superuser"])
def test_no_model_fails_closed(kind, caplog):
    """Without a model DjangoModelPermissions cannot decide: it refuses everyone, and says why."""
    factories.ProductFactory()
    user = factories.UserFactory(**USERS[kind])
    with caplog.at_level(logging.WARNING, logger="syncbind"):
        reply = run_unregistered(ModelessBinding, "wipe", user)
    assert reply["error"] == ERRORS[DENIED]
    assert Product.objects.count() == 1
    assert [
        (record.levelname, record.getMessage())
        for record in caplog.records
        if record.name.startswith("syncbind")
    ] == [
        (
            "WARNING",
            "DjangoModelPermissions refused perms.Modeless.wipe: "
            "tests.test_permissions.ModelessBinding names no model "
            "(set model or queryset, or permission_classes).",
        )
    ]


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
