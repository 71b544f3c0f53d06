"""Django REST framework serializers and permission classes on bindings; and syncbind without DRF."""

import json
import os
import subprocess
import sys

import pytest
from django.test import Client
from rest_framework import permissions as drf_permissions
from rest_framework import serializers
from rest_framework.validators import UniqueTogetherValidator

from syncbind import SyncBinding, event
from syncbind._bindings.registry import registry
from syncbind.permissions import IsAuthenticated
from syncbind.testing import connect
from tests import factories
from tests.permission_matrix import (
    DENIED,
    HTTP_ROUTES,
    OK,
    case_data,
    expected,
    http_expected,
    http_matrix,
    http_send,
    outcome,
    rows,
)
from tests.servers import ROOT
from tests.testapp.bindings import OwnedBinding
from tests.testapp.models import Product, Task

pytestmark = pytest.mark.django_db(transaction=True)

S = "drf.Product"


class ProductSerializer(serializers.ModelSerializer):
    viewer = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "name", "price", "category", "tags", "viewer"]

    def get_viewer(self, obj):
        return self.context["request"].user.username

    def validate_name(self, value):
        if value == self.context["request"].user.username:
            raise serializers.ValidationError("Do not name products after yourself.")
        return value


class OwnerOnly(drf_permissions.BasePermission):
    message = "Only the owner may touch this row."

    def has_object_permission(self, request, view, obj):
        # DRF-style: read freely, write only your own rows.
        return request.method in drf_permissions.SAFE_METHODS or obj.owner_id == request.user.pk


class DRFProductBinding(SyncBinding):
    model = Product
    stream = S
    serializer_class = ProductSerializer
    permission_classes = [IsAuthenticated, drf_permissions.IsAuthenticated, OwnerOnly]

    def perform_create(self, write):
        return write.save(owner=self.request.user)


class DRFModelPermsBinding(SyncBinding):
    model = Product
    stream = "drf.Guarded"
    fields = ["id", "name", "price", "category"]
    permission_classes = [drf_permissions.DjangoModelPermissions]


class TaskSerializer(serializers.ModelSerializer):
    """DRF's own unique checks: UniqueValidator on ``slug`` (the model's unique=True) and
    a UniqueTogetherValidator, both over every row of the table."""

    class Meta:
        model = Task
        fields = ["id", "slug", "title", "priority"]
        validators = [UniqueTogetherValidator(Task.objects.all(), ["title", "priority"])]


class DRFTaskBinding(OwnedBinding):
    """testapp.Task (each user sees only their own rows) through a DRF serializer."""

    model = Task
    stream = "drf.Task"
    serializer_class = TaskSerializer


class RecordMethod(drf_permissions.BasePermission):
    """Grants everything; notes the ``request.method`` each event showed it."""

    seen: list[str] = []

    def has_permission(self, request, view):
        self.seen.append(request.method)
        return True


class DRFRecordedBinding(SyncBinding):
    model = Product
    stream = "drf.Recorded"
    fields = ["id", "name", "price", "category"]
    search_fields = ["name"]
    permission_classes = [RecordMethod]

    @event(atomic=False)
    def touch(self, request):
        return {"touched": True}


@pytest.fixture(autouse=True)
def drf_bindings():
    saved = registry.snapshot()
    registry.register(DRFProductBinding)
    registry.register(DRFModelPermsBinding)
    registry.register(DRFTaskBinding)
    registry.register(DRFRecordedBinding)
    yield
    registry.restore(saved)


async def test_serializer_output_with_request_context(db_call):
    user = await db_call(factories.UserFactory, username="ann")
    tag = await db_call(factories.TagFactory)
    product = await db_call(factories.ProductFactory, price="3.5", tags=[tag])
    async with connect(user) as client:
        reply = await client.send_event(f"{S}.retrieve", {"id": product.pk})
        assert reply["data"] == {
            "id": product.pk,
            "name": product.name,
            "price": "3.50",
            "category": product.category_id,
            "tags": [tag.pk],
            "viewer": "ann",
        }
        page = (await client.send_event(f"{S}.list"))["data"]
        assert page["count"] == 1 and page["rows"] == [reply["data"]]


async def test_serializer_validates_writes(db_call):
    user = await db_call(factories.UserFactory, username="bob")
    category = await db_call(factories.CategoryFactory)
    async with connect(user) as client:
        reply = await client.send_event(
            f"{S}.create", {"name": "bob", "price": "1", "category": category.pk}
        )
        assert reply["error"] == {
            "code": "invalid",
            "message": "Invalid data.",
            "fields": {"name": ["Do not name products after yourself."]},
        }
        reply = await client.send_event(
            f"{S}.create", {"name": "lamp", "price": "x", "category": category.pk}
        )
        assert reply["error"]["fields"] == {"price": ["A valid number is required."]}
        reply = await client.send_event(
            f"{S}.create", {"name": "lamp", "price": "1", "category": category.pk, "viewer": "x"}
        )
        assert reply["error"]["fields"] == {"viewer": ["This field is not writable."]}
        reply = await client.send_event(
            f"{S}.create", {"name": "lamp", "price": "1", "category": category.pk, "stock": 3}
        )
        assert reply["error"]["fields"] == {"stock": ["Unknown field."]}
        assert await db_call(Product.objects.count) == 0
        created = (
            await client.send_event(
                f"{S}.create", {"name": "lamp", "price": "1", "category": category.pk}
            )
        )["data"]
        product = await db_call(Product.objects.get, pk=created["id"])
        assert created == {
            "success": True,
            "id": product.pk,
            "row": {**created["row"], "name": "lamp", "viewer": "bob"},
        }
        assert product.owner_id == user.pk
        updated = (await client.send_event(f"{S}.update", {"id": product.pk, "name": "lamp 2"}))[
            "data"
        ]
        assert updated["row"]["name"] == "lamp 2"


async def test_drf_object_permissions_with_method_mapping(db_call):
    owner = await db_call(factories.UserFactory)
    other = await db_call(factories.UserFactory)
    product = await db_call(factories.ProductFactory, owner=owner)
    async with connect(other) as client:
        assert "data" in await client.send_event(f"{S}.retrieve", {"id": product.pk})  # GET is safe
        for action, data in [("update", {"name": "x"}), ("save", {"name": "x"}), ("delete", {})]:
            reply = await client.send_event(f"{S}.{action}", {"id": product.pk, **data})
            assert reply["error"] == {
                "code": "permission_denied",
                "message": "Only the owner may touch this row.",
            }
    async with connect(owner) as client:
        assert (await client.send_event(f"{S}.update", {"id": product.pk, "name": "mine"}))["data"][
            "success"
        ]


async def test_drf_django_model_permissions(db_call):
    product = await db_call(factories.ProductFactory)
    nobody = await db_call(factories.UserFactory)
    changer = await db_call(factories.UserFactory, perms=["testapp.change_product"])
    async with connect(nobody) as client:
        # DRF's DjangoModelPermissions asks nothing for GET (its own semantics)...
        assert "data" in await client.send_event("drf.Guarded.retrieve", {"id": product.pk})
        # ...and change for PATCH (update) / PUT (save).
        assert (await client.send_event("drf.Guarded.update", {"id": product.pk, "name": "x"}))[
            "error"
        ]["code"] == ("permission_denied")
    async with connect(changer) as client:
        assert (await client.send_event("drf.Guarded.update", {"id": product.pk, "name": "x"}))[
            "data"
        ]["success"]
        assert (await client.send_event("drf.Guarded.delete", {"id": product.pk}))["error"][
            "code"
        ] == "permission_denied"


# What DRF's DjangoModelPermissions asks: GET nothing, POST add, PUT/PATCH change,
# DELETE delete; so each action must show it the method of what it does.
DRF_USERS = {
    "no permissions": [],
    "add permission only": ["testapp.add_product"],
    "change permission only": ["testapp.change_product"],
    "delete permission only": ["testapp.delete_product"],
}
D = DENIED
DRF_MATRIX = {
    "retrieve": ("retrieve", (OK, OK, OK, OK)),
    "list": ("list", (OK, OK, OK, OK)),
    "create": ("create", (D, OK, D, D)),
    "update": ("update", (D, D, OK, D)),
    "save with id": ("save", (D, D, OK, D)),  # PUT
    "save without id": ("save", (D, OK, D, D)),  # a create: POST
    "delete": ("delete", (D, D, D, OK)),
}
G = "drf.Guarded"


@pytest.mark.parametrize("kind", DRF_USERS)
async def test_drf_django_model_permissions_follow_the_action(kind, db_call):
    user = await db_call(factories.UserFactory, perms=DRF_USERS[kind])
    seen = {}
    async with connect(user) as client:
        for case, (action, _outcomes) in DRF_MATRIX.items():
            product = await db_call(factories.ProductFactory)
            before = await db_call(rows)
            reply = await client.send_event(f"{G}.{action}", case_data(case, product))
            seen[case] = outcome(reply)
            if seen[case] != OK:
                assert await db_call(rows) == before, case
    assert seen == expected(DRF_MATRIX, DRF_USERS, kind)


@pytest.mark.parametrize("route", HTTP_ROUTES)
@pytest.mark.parametrize("kind", DRF_USERS)
def test_drf_django_model_permissions_over_http(kind, route):
    """``POST events/`` carrying an update is PATCH to DRF, not the POST that carried it."""
    client = Client()
    client.force_login(factories.UserFactory(perms=DRF_USERS[kind]))
    seen = http_matrix(client, route, G, DRF_MATRIX, factories.ProductFactory)
    assert seen == http_expected(DRF_MATRIX, DRF_USERS, kind, route)


METHODS = {
    "retrieve": "GET",
    "list": "GET",
    "search": "GET",
    "subscribe": "GET",
    "unsubscribe": "GET",
    "create": "POST",
    "update": "PATCH",
    "save with id": "PUT",
    "save without id": "POST",
    "delete": "DELETE",
    "touch": "POST",
}


def method_cases(product):
    return [
        (case, "save" if case.startswith("save") else case, case_data(case, product))
        for case in METHODS
    ]


async def test_drf_permissions_see_the_method_of_the_action_over_websocket(db_call):
    product = await db_call(factories.ProductFactory)
    user = await db_call(factories.UserFactory)
    seen = {}
    async with connect(user) as client:
        for case, action, data in method_cases(product):
            RecordMethod.seen.clear()
            reply = await client.send_event(f"drf.Recorded.{action}", data)
            assert "data" in reply, (case, reply)
            seen[case] = RecordMethod.seen[0]
    assert seen == METHODS


def test_drf_permissions_see_the_method_of_the_action_over_http():
    """Whatever method carried it: the envelope is always POST."""
    product = factories.ProductFactory()
    client = Client()
    client.force_login(factories.UserFactory())
    seen = {}
    for case, action, data in method_cases(product):
        RecordMethod.seen.clear()
        response = http_send(client, "POST events/", "drf.Recorded", case, action, data)
        assert response.status_code == 200, (case, response.content)
        seen[case] = RecordMethod.seen[0]
    assert seen == METHODS


async def test_drf_bindings_push_per_user(db_call):
    ann = await db_call(factories.UserFactory, username="ann")
    ben = await db_call(factories.UserFactory, username="ben")
    product = await db_call(factories.ProductFactory, owner=ann)
    async with connect(ann) as a, connect(ben) as b:
        await a.send_event(f"{S}.retrieve", {"id": product.pk})
        await b.send_event(f"{S}.retrieve", {"id": product.pk})
        await a.send_event(f"{S}.update", {"id": product.pk, "name": "changed"})
        # The serializer reads request.user: each subscriber gets its own evaluation.
        assert (await a.receive_push(f"{S}.retrieve"))["data"]["viewer"] == "ann"
        assert (await b.receive_push(f"{S}.retrieve"))["data"]["viewer"] == "ben"


async def test_a_unique_clash_with_a_hidden_row_answers_as_the_native_binding(db_call):
    """Issue 21, point 8: DRF's UniqueValidator said "task with this slug already
    exists." of another user's row. It now answers what the native binding
    (testapp.Task, the same rows) answers; a clash with the writer's own row is
    still described."""
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    await db_call(factories.TaskFactory, owner=bob, slug="bobs-slug")
    own = await db_call(factories.TaskFactory, owner=alice, slug="alices-slug")
    unavailable = {
        "code": "invalid",
        "message": "Invalid data.",
        "fields": {"slug": ["This value is not available."]},
    }
    async with connect(alice) as client:
        for stream in ("drf.Task", "testapp.Task"):
            created = await client.send_event(
                f"{stream}.create", {"slug": "bobs-slug", "title": "t"}
            )
            assert created["error"] == unavailable
            updated = await client.send_event(
                f"{stream}.update", {"id": own.pk, "slug": "bobs-slug"}
            )
            assert updated["error"] == unavailable

        visible = await client.send_event("drf.Task.create", {"slug": "alices-slug", "title": "t"})
        assert visible["error"]["fields"] == {"slug": ["task with this slug already exists."]}
    assert await db_call(Task.objects.count) == 2
    assert await db_call(lambda: Task.objects.get(pk=own.pk).slug) == "alices-slug"


async def test_a_unique_together_clash_is_not_described(db_call):
    """As the native binding answers a unique_together clash: under ``__all__``, whoever's
    row it is (DRF named the fields that clash)."""
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    await db_call(factories.TaskFactory, owner=bob, title="theirs", priority=1)
    await db_call(factories.TaskFactory, owner=alice, title="mine", priority=1)
    async with connect(alice) as client:
        for title in ("theirs", "mine"):
            data = {"slug": f"new-{title}", "title": title, "priority": 1}
            reply = await client.send_event("drf.Task.create", data)
            assert reply["error"]["fields"] == {"__all__": ["This value is not available."]}
        data = {"slug": "new", "title": "theirs", "priority": 2}
        assert (await client.send_event("drf.Task.create", data))["data"]["success"]
    assert await db_call(Task.objects.count) == 3


def test_syncbind_works_without_drf(transactional_db):
    script = """
import sys, json
sys.modules["rest_framework"] = None   # importing DRF now fails
import django
django.setup()
from syncbind._transport import core
from syncbind._wire import protocol
from tests.factories import ProductFactory, SuperUserFactory
from django.core.management import call_command
call_command("migrate", verbosity=0)
product = ProductFactory(name="no drf here")
message = protocol.parse_envelope({"event": "testapp.Product.retrieve", "data": {"id": product.pk}})
reply = core.dispatch(message, core.Connection(user=SuperUserFactory()))
print(json.dumps({"name": reply["data"]["name"], "drf": "rest_framework.serializers" in sys.modules}))
"""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SYNCBIND_TEST_DB": "sqlite",
        "SYNCBIND_TEST_LAYER": "memory",
        "SYNCBIND_TEST_DB_NAME": str(ROOT / f".no-drf-{os.getpid()}.sqlite3"),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        for suffix in ("", "-wal", "-shm"):
            path = ROOT / f".no-drf-{os.getpid()}.sqlite3{suffix}"
            if path.exists():
                path.unlink()
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"name": "no drf here", "drf": False}
