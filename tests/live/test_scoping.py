"""Every documented hook that scopes what a user reads also scopes what is pushed to them.

Each binding below scopes rows in a different hook. For each, two users
subscribe, rows change and move between them, and every frame each user
receives is compared with what a fresh read of their own returns right then:
no subscriber ever receives a row (or an id) that its own read would not.
"""

from decimal import Decimal

import pytest
from django.db.models import Q
from rest_framework import serializers as drf_serializers

from syncbind import SyncBinding
from syncbind.exceptions import NotFound
from syncbind.permissions import BasePermission, IsAuthenticated
from syncbind.serializers import ModelSerializer
from syncbind.testing import override_bindings
from tests import factories
from tests.testapp.bindings import ListScopedProjectBinding
from tests.testapp.models import Product, Task

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = ["id", "owner", "title", "priority"]


class ScopedInFilterQueryset(SyncBinding):
    """Scopes in filter_queryset (a documented hook), not in get_queryset."""

    model = Task
    stream = "testapp.FilteredTask"
    fields = [*FIELDS, "slug"]
    read_only_fields = ["owner"]
    permission_classes = [IsAuthenticated]

    def perform_create(self, write):
        return write.save(owner=self.request.user)

    def filter_queryset(self, queryset):
        return super().filter_queryset(queryset).filter(owner=self.request.user)


class ScopedInGetObject(SyncBinding):
    """Rows are public while priority is 0; otherwise only their owner may see them."""

    model = Task
    stream = "testapp.ObjectTask"
    compiled_reads = False  # get_object/get_page are its own
    fields = FIELDS
    permission_classes = [IsAuthenticated]

    def get_object(self):
        obj = super().get_object()
        if obj.priority and obj.owner_id != self.request.user.pk:
            raise NotFound()
        return obj


class OwnerOrPublic(BasePermission):
    def has_object_permission(self, request, binding, obj):
        return obj.priority == 0 or obj.owner_id == request.user.pk


class ScopedByObjectPermission(SyncBinding):
    model = Task
    stream = "testapp.PermittedTask"
    fields = FIELDS
    permission_classes = [IsAuthenticated & OwnerOrPublic]


class ScopedInGetQueryset(SyncBinding):
    model = Task
    stream = "testapp.QuerysetTask"
    fields = FIELDS
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        return super().get_queryset().filter(Q(owner=self.request.user) | Q(priority=0))


async def fresh_read(client, event, data):
    reply = await client.send_event(event, {**data, "subscribe": False})
    return reply.get("data"), reply.get("error")


@override_bindings(ScopedInFilterQueryset)
async def test_rows_scoped_in_filter_queryset_are_never_pushed_to_another_user(
    make_client, db_call
):
    """The attack of issue 11, point 1: bob creates a row and is pushed alice's rows."""
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    await db_call(factories.TaskFactory, owner=alice, title="alice's secret")
    a = await make_client(alice)
    b = await make_client(bob)
    stream = "testapp.FilteredTask"
    assert (await a.send_event(f"{stream}.list", {}))["data"]["count"] == 1
    assert (await b.send_event(f"{stream}.list", {}))["data"]["count"] == 0

    created = await b.send_event(f"{stream}.create", {"title": "bob's", "slug": "bobs"})
    assert created["data"]["success"] is True
    push = await b.receive_push(f"{stream}.list")
    assert [row["title"] for row in push["data"]["rows"]] == ["bob's"]
    assert push["data"] == (await fresh_read(b, f"{stream}.list", {}))[0]
    await b.assert_nothing_more()
    # Alice's page did not change.
    await a.assert_nothing_more()


@override_bindings(ScopedInGetObject)
async def test_rows_scoped_in_get_object_are_never_pushed_to_another_user(make_client, db_call):
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    task = await db_call(factories.TaskFactory, owner=alice, title="public", priority=0)
    stream = "testapp.ObjectTask"
    a = await make_client(alice)
    b = await make_client(bob)
    assert (await a.send_event(f"{stream}.retrieve", {"id": task.pk}))["data"]["title"] == "public"
    assert (await b.send_event(f"{stream}.retrieve", {"id": task.pk}))["data"]["title"] == "public"

    # The row becomes private to alice, with a new secret title.
    await db_call(Task.objects.filter(pk=task.pk).update, priority=5, title="alice only")
    await db_call(task.refresh_from_db)
    await db_call(task.save)
    push = await a.receive_push(f"{stream}.retrieve")
    assert push["data"]["title"] == "alice only"
    # Bob may not see it any more: he is told it is gone, never what it became.
    assert await b.receive_push(f"{stream}.delete") == {
        "event": f"{stream}.delete",
        "data": {"id": task.pk},
    }
    assert (await fresh_read(b, f"{stream}.retrieve", {"id": task.pk}))[1]["code"] == "not_found"
    await b.assert_nothing_more()


@override_bindings(ScopedByObjectPermission)
async def test_rows_refused_by_object_permissions_are_never_pushed(make_client, db_call):
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    task = await db_call(factories.TaskFactory, owner=alice, title="public", priority=0)
    stream = "testapp.PermittedTask"
    a = await make_client(alice)
    b = await make_client(bob)
    await a.send_event(f"{stream}.retrieve", {"id": task.pk})
    await b.send_event(f"{stream}.retrieve", {"id": task.pk})

    task.priority, task.title = 5, "alice only"
    await db_call(task.save)
    assert (await a.receive_push(f"{stream}.retrieve"))["data"]["title"] == "alice only"
    # Refused by an object permission: nothing at all is sent to bob, not even the id.
    assert (await fresh_read(b, f"{stream}.retrieve", {"id": task.pk}))[1][
        "code"
    ] == "permission_denied"
    await b.assert_nothing_more()


@override_bindings(ScopedInGetQueryset)
async def test_rows_scoped_in_get_queryset_move_between_users(make_client, db_call):
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    task = await db_call(factories.TaskFactory, owner=alice, title="shared", priority=0)
    stream = "testapp.QuerysetTask"
    a = await make_client(alice)
    b = await make_client(bob)
    await a.send_event(f"{stream}.list", {})
    await b.send_event(f"{stream}.list", {})
    await a.send_event(f"{stream}.retrieve", {"id": task.pk})
    await b.send_event(f"{stream}.retrieve", {"id": task.pk})

    task.priority, task.title = 3, "alice only"
    await db_call(task.save)
    page_a = await a.receive_push(f"{stream}.list")
    assert [row["title"] for row in page_a["data"]["rows"]] == ["alice only"]
    assert (await a.receive_push(f"{stream}.retrieve"))["data"]["title"] == "alice only"
    page_b = await b.receive_push(f"{stream}.list")
    assert page_b["data"] == {"page": 1, "limit": 25, "count": 0, "rows": []}
    assert (await b.receive_push(f"{stream}.delete"))["data"] == {"id": task.pk}
    await a.assert_nothing_more()
    await b.assert_nothing_more()

    # Moved to bob: alice loses it, bob gains it.
    task.owner = bob
    await db_call(task.save)
    assert (await a.receive_push(f"{stream}.list"))["data"]["count"] == 0
    assert (await a.receive_push(f"{stream}.delete"))["data"] == {"id": task.pk}
    page_b = await b.receive_push(f"{stream}.list")
    assert [row["title"] for row in page_b["data"]["rows"]] == ["alice only"]
    assert page_b["data"] == (await fresh_read(b, f"{stream}.list", {}))[0]
    # Bob's row subscription outlived the row's absence: he sees it again.
    row_b = await b.receive_push(f"{stream}.retrieve")
    assert row_b["data"] == (await fresh_read(b, f"{stream}.retrieve", {"id": task.pk}))[0]
    await a.assert_nothing_more()
    await b.assert_nothing_more()


class ScopedThroughAJoin(SyncBinding):
    """A team's tasks: visible through the project's owner (a join the matching cannot read)."""

    model = Task
    stream = "testapp.TeamTask"
    fields = FIELDS
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        user = self.request.user
        return super().get_queryset().filter(Q(owner=user) | Q(project__owner=user))


@override_bindings(ScopedThroughAJoin)
async def test_a_row_leaving_a_scope_through_a_join_is_not_pushed(make_client, db_call):
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    bobs_project = await db_call(factories.ProjectFactory, owner=bob)
    alices_project = await db_call(factories.ProjectFactory, owner=alice)
    task = await db_call(factories.TaskFactory, owner=alice, project=bobs_project, title="shared")
    stream = "testapp.TeamTask"
    b = await make_client(bob)
    assert (await b.send_event(f"{stream}.list", {}))["data"]["count"] == 1
    await b.send_event(f"{stream}.retrieve", {"id": task.pk})

    task.project, task.title = alices_project, "alice's again"
    await db_call(task.save)
    page = await b.receive_push(f"{stream}.list")
    assert page["data"]["count"] == 0
    assert (await b.receive_push(f"{stream}.delete"))["data"] == {"id": task.pk}
    await b.assert_nothing_more()


class WhoAsksSerializer(drf_serializers.ModelSerializer):
    """Output that depends on who asks: DRF bindings are serialized per user by default."""

    mine = drf_serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = ["id", "title", "mine"]

    def get_mine(self, obj):
        return obj.owner_id == self.context["request"].user.pk


class DRFWhoAsksBinding(SyncBinding):
    model = Task
    stream = "testapp.WhoAsksTask"
    serializer_class = WhoAsksSerializer
    permission_classes = [IsAuthenticated]


@override_bindings(DRFWhoAsksBinding)
async def test_a_drf_serializer_reading_request_user_is_pushed_per_user(make_client, db_call):
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    task = await db_call(factories.TaskFactory, owner=alice, title="one")
    stream = "testapp.WhoAsksTask"
    a = await make_client(alice)
    b = await make_client(bob)
    assert (await a.send_event(f"{stream}.retrieve", {"id": task.pk}))["data"]["mine"] is True
    assert (await b.send_event(f"{stream}.retrieve", {"id": task.pk}))["data"]["mine"] is False
    await a.send_event(f"{stream}.list", {})
    await b.send_event(f"{stream}.list", {})

    task.title = "two"
    await db_call(task.save)
    assert (await a.receive_push(f"{stream}.retrieve"))["data"] == {
        "id": task.pk,
        "title": "two",
        "mine": True,
    }
    assert (await b.receive_push(f"{stream}.retrieve"))["data"] == {
        "id": task.pk,
        "title": "two",
        "mine": False,
    }
    assert (await a.receive_push(f"{stream}.list"))["data"]["rows"][0]["mine"] is True
    assert (await b.receive_push(f"{stream}.list"))["data"]["rows"][0]["mine"] is False
    await a.assert_nothing_more()
    await b.assert_nothing_more()


# -- issue 21, point 3: a push is shaped for its subscriber ------------------------------
#
# Staff see a product's cost (its price) and supplier (its owner); others don't. Whether
# the output depends on the user is decided by the serializer the binding chooses for
# each request, whichever way it chooses it.

PUBLIC_FIELDS = ["id", "name", "status"]
STAFF_FIELDS = [*PUBLIC_FIELDS, "price", "owner"]


def is_staff(request):
    return bool(getattr(getattr(request, "user", None), "is_staff", False))


class StaffSerializerBinding(SyncBinding):
    """get_serializer() returns one of two serializers, each made once."""

    model = Product
    stream = "testapp.StaffSerializerProduct"
    fields = PUBLIC_FIELDS
    permission_classes = [IsAuthenticated]
    staff_serializer = ModelSerializer(Product, fields=STAFF_FIELDS)

    def get_serializer(self):
        return self.staff_serializer if is_staff(self.request) else super().get_serializer()


class StaffFieldsBinding(SyncBinding):
    """The fields come from a get_* hook of the user; a serializer is made per call."""

    model = Product
    stream = "testapp.StaffFieldsProduct"
    permission_classes = [IsAuthenticated]

    def get_fields(self):
        return STAFF_FIELDS if is_staff(self.request) else PUBLIC_FIELDS

    def get_serializer(self):
        return ModelSerializer(self.get_model(), fields=self.get_fields())


class CostSerializer(drf_serializers.ModelSerializer):
    cost = drf_serializers.DecimalField(source="price", max_digits=8, decimal_places=2)
    supplier = drf_serializers.PrimaryKeyRelatedField(source="owner", read_only=True)

    class Meta:
        model = Product
        fields = ["id", "name", "status", "cost", "supplier"]


class StaffRepresentationSerializer(CostSerializer):
    """Drops the staff-only columns in to_representation, from the request's user."""

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not is_staff(self.context["request"]):
            del data["cost"], data["supplier"]
        return data


class StaffInitSerializer(CostSerializer):
    """Chooses its fields in __init__, from the request's user."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not is_staff(self.context.get("request")):
            for name in ("cost", "supplier"):
                self.fields.pop(name)


class DRFRepresentationBinding(SyncBinding):
    model = Product
    stream = "testapp.DRFRepresentationProduct"
    serializer_class = StaffRepresentationSerializer
    permission_classes = [IsAuthenticated]


class DRFInitBinding(SyncBinding):
    model = Product
    stream = "testapp.DRFInitProduct"
    serializer_class = StaffInitSerializer
    permission_classes = [IsAuthenticated]


SHAPED = [StaffSerializerBinding, StaffFieldsBinding, DRFRepresentationBinding, DRFInitBinding]


def product_row(binding, product, staff):
    """The row each user is meant to see (the DRF ones name cost and supplier so)."""
    row = {"id": product.pk, "name": product.name, "status": product.status}
    if staff:
        drf = binding.serializer_class is not None
        row["cost" if drf else "price"] = str(product.price)
        row["supplier" if drf else "owner"] = product.owner_id
    return row


@pytest.fixture
async def staff_and_public(db_call):
    staff = await db_call(factories.UserFactory, is_staff=True)
    public = await db_call(factories.UserFactory)
    supplier = await db_call(factories.UserFactory)
    products = await db_call(
        lambda: [
            factories.ProductFactory(name=name, price=price, owner=supplier)
            for name, price in (("bolt", Decimal("12.50")), ("nut", Decimal("3.20")))
        ]
    )
    return staff, public, products


@override_bindings(*SHAPED)
@pytest.mark.parametrize("binding", SHAPED, ids=lambda binding: binding.__name__)
@pytest.mark.parametrize("staff_first", [True, False], ids=["staff_first", "public_first"])
async def test_each_subscriber_is_pushed_the_columns_its_own_read_shows(
    binding, staff_first, make_client, db_call, staff_and_public
):
    """The attack of issue 21, point 3: one read, two shapes, and the first subscriber's
    shape pushed to both."""
    staff, public, (bolt, nut) = staff_and_public
    stream = binding.get_stream()
    clients = {True: await make_client(staff), False: await make_client(public)}
    for as_staff in (staff_first, not staff_first):
        client = clients[as_staff]
        row = await client.send_event(f"{stream}.retrieve", {"id": bolt.pk})
        assert row["data"] == product_row(binding, bolt, as_staff)
        page = await client.send_event(f"{stream}.list", {})
        rows = [product_row(binding, product, as_staff) for product in (bolt, nut)]
        assert page["data"] == {"page": 1, "limit": 25, "count": 2, "rows": rows}

    bolt.name = "hex bolt"
    await db_call(bolt.save)
    for as_staff in (False, True):
        client = clients[as_staff]
        rows = [product_row(binding, product, as_staff) for product in (bolt, nut)]
        assert await client.receive_push(f"{stream}.retrieve") == {
            "event": f"{stream}.retrieve",
            "data": rows[0],
        }
        assert await client.receive_push(f"{stream}.list") == {
            "event": f"{stream}.list",
            "data": {"page": 1, "limit": 25, "count": 2, "rows": rows},
        }
        await client.assert_nothing_more()


@override_bindings(StaffSerializerBinding, StaffFieldsBinding)
@pytest.mark.parametrize(
    "binding", [StaffSerializerBinding, StaffFieldsBinding], ids=lambda binding: binding.__name__
)
async def test_subscribers_of_one_shape_still_share_one_evaluation(
    binding, make_client, db_call, monkeypatch
):
    """Two staff and two other users on one row and one page: a key per shape, each
    row state serialized once per shape, and the row fetched once for all of them."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from syncbind._live import affected, fanout
    from syncbind._live.hub import get_hub

    users = await db_call(
        lambda: [factories.UserFactory(is_staff=staff) for staff in (True, False, True, False)]
    )
    product = await db_call(factories.ProductFactory, name="bolt", owner=users[0])
    stream = binding.get_stream()
    clients = [await make_client(user) for user in users]
    for client in clients:
        await client.send_event(f"{stream}.retrieve", {"id": product.pk})
        await client.send_event(f"{stream}.list", {})
    assert get_hub().key_count(stream) == 4  # (row, page) x (staff, others)

    serialized = []
    serialize = ModelSerializer.serialize

    def counted(serializer, obj):
        serialized.append((obj.pk, tuple(serializer.field_names)))
        return serialize(serializer, obj)

    queries = []

    def counting(function):
        def run(*args, **kwargs):
            with CaptureQueriesContext(connection) as ctx:
                result = function(*args, **kwargs)
            queries.append(len(ctx.captured_queries))
            return result

        return run

    monkeypatch.setattr(ModelSerializer, "serialize", counted)
    monkeypatch.setattr(fanout, "evaluate", counting(fanout.evaluate))
    monkeypatch.setattr(affected, "fetch", counting(affected.fetch))
    product.name = "hex bolt"
    await db_call(product.save)
    for user, client in zip(users, clients, strict=True):
        row = product_row(binding, product, user.is_staff)
        assert (await client.receive_push(f"{stream}.retrieve"))["data"] == row
        assert (await client.receive_push(f"{stream}.list"))["data"]["rows"] == [row]
        await client.assert_nothing_more()
    assert sorted(serialized) == sorted(
        [(product.pk, tuple(PUBLIC_FIELDS)), (product.pk, tuple(STAFF_FIELDS))]
    )
    assert sum(queries) == 1  # the row, fetched once


@override_bindings(StaffSerializerBinding, StaffFieldsBinding)
@pytest.mark.parametrize(
    "binding", [StaffSerializerBinding, StaffFieldsBinding], ids=lambda binding: binding.__name__
)
@pytest.mark.parametrize("was_staff", [True, False], ids=["demoted", "promoted"])
async def test_a_user_whose_shape_changes_is_pushed_its_new_shape(
    binding, was_staff, make_client, db_call
):
    """A user saved (demoted or promoted) is read again at once; its subscriptions are
    keyed again by the hub's refresh job, which pushes them their new shape, and are
    never pushed the old key's shape."""
    colleague = await db_call(factories.UserFactory, is_staff=was_staff)
    user = await db_call(factories.UserFactory, is_staff=was_staff)
    product = await db_call(factories.ProductFactory, name="bolt", owner=colleague)
    stream = binding.get_stream()
    clients = {colleague: await make_client(colleague), user: await make_client(user)}
    for client in clients.values():
        await client.send_event(f"{stream}.retrieve", {"id": product.pk})
        await client.send_event(f"{stream}.list", {})

    def change_status():  # as the admin does
        fresh = type(user).objects.get(pk=user.pk)
        fresh.is_staff = not was_staff
        fresh.save()

    await db_call(change_status)
    row = product_row(binding, product, not was_staff)
    assert (await clients[user].receive_push(f"{stream}.retrieve"))["data"] == row
    assert (await clients[user].receive_push(f"{stream}.list"))["data"]["rows"] == [row]
    for client in clients.values():
        await client.assert_nothing_more()
    product.name = "hex bolt"
    await db_call(product.save)
    for who, staff in ((user, not was_staff), (colleague, was_staff)):
        row = product_row(binding, product, staff)
        assert (await clients[who].receive_push(f"{stream}.retrieve"))["data"] == row
        assert (await clients[who].receive_push(f"{stream}.list"))["data"]["rows"] == [row]
        await clients[who].assert_nothing_more()


class ProjectNameTaskBinding(SyncBinding):
    """Every task is read by every user, with its project's name (a related output field)."""

    model = Task
    stream = "testapp.NamedTask"
    fields = ["id", "title", "project", "project__name"]
    permission_classes = [IsAuthenticated]


@override_bindings(ProjectNameTaskBinding, ListScopedProjectBinding)
async def test_a_related_field_shows_only_rows_the_related_stream_lets_the_user_read(
    make_client, db_call
):
    """Issue 21, point 4: projects are listed to their owner only (scoped in
    filter_queryset), yet alice read bob's project's name through a task, and was
    pushed each rename. A related row the user cannot read is shown as absent (null),
    in replies and pushes alike."""
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    project = await db_call(factories.ProjectFactory, owner=bob, name="bob's plan")
    task = await db_call(factories.TaskFactory, owner=bob, project=project, title="public")
    stream = "testapp.NamedTask"
    a = await make_client(alice)
    b = await make_client(bob)

    def row(name):
        return {"id": task.pk, "title": "public", "project": project.pk, "project__name": name}

    assert (await a.send_event(f"{stream}.retrieve", {"id": task.pk}))["data"] == row(None)
    assert (await a.send_event(f"{stream}.list", {}))["data"]["rows"] == [row(None)]
    assert (await b.send_event(f"{stream}.retrieve", {"id": task.pk}))["data"] == row("bob's plan")
    assert (await b.send_event(f"{stream}.list", {}))["data"]["rows"] == [row("bob's plan")]

    # Bob renames his project: pushed to him; alice's rows did not change.
    project.name = "renamed"
    await db_call(project.save)
    assert (await b.receive_push(f"{stream}.retrieve"))["data"] == row("renamed")
    assert (await b.receive_push(f"{stream}.list"))["data"]["rows"] == [row("renamed")]
    await b.assert_nothing_more()
    await a.assert_nothing_more()

    # The project becomes alice's: she is shown its name, bob no longer is.
    project.owner = alice
    await db_call(project.save)
    assert (await a.receive_push(f"{stream}.retrieve"))["data"] == row("renamed")
    page_a = await a.receive_push(f"{stream}.list")
    assert page_a["data"] == (await fresh_read(a, f"{stream}.list", {}))[0]
    assert page_a["data"]["rows"] == [row("renamed")]
    assert (await b.receive_push(f"{stream}.retrieve"))["data"] == row(None)
    page_b = await b.receive_push(f"{stream}.list")
    assert page_b["data"] == (await fresh_read(b, f"{stream}.list", {}))[0]
    assert page_b["data"]["rows"] == [row(None)]
    await a.assert_nothing_more()
    await b.assert_nothing_more()
