"""[syncbind/serializers.py] Related output fields (``fields = ["project__name"]``): read with a join, pushed
when the related row changes, refused as input; and unknown message keys refused."""

import pytest
from django.core import checks
from django.db import connection
from django.test.utils import CaptureQueriesContext

from syncbind import SyncBinding
from syncbind._transport import core
from syncbind._wire import protocol
from syncbind.permissions import IsAuthenticated
from syncbind.testing import override_bindings
from tests import factories
from tests.testapp.models import Project, Task

pytestmark = pytest.mark.django_db(transaction=True)

S = "testapp.NamedTask"


class NamedTasks(SyncBinding):
    model = Task
    stream = S
    # No "id": every row carries its primary key anyway.
    fields = ["title", "project", "project__name", "project__owner__username"]
    filterset_fields = ["project"]
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        return super().get_queryset().filter(owner=self.request.user)

    def perform_create(self, write):
        return write.save(owner=self.request.user, slug=write.validated_data["title"])


@override_bindings(NamedTasks)
def test_a_page_shows_related_names_in_constant_queries():
    alice = factories.UserFactory(username="alice")
    project = factories.ProjectFactory(owner=alice, name="Roof")
    for index in range(30):
        factories.TaskFactory(owner=alice, project=project if index % 2 else None)

    def page(limit):
        message = protocol.parse_envelope({"event": f"{S}.list", "data": {"limit": limit}})
        with CaptureQueriesContext(connection) as ctx:
            reply = core.dispatch(message, core.Connection(user=alice))
        return reply["data"]["rows"], len(ctx.captured_queries)

    rows, small = page(4)
    _, large = page(30)
    assert small == large == 2  # the page (joined) and its count: no query per row
    first, second = rows[0], rows[1]
    assert set(first) == {"id", "title", "project", "project__name", "project__owner__username"}
    assert first["project"] is None and first["project__name"] is None
    assert first["project__owner__username"] is None
    assert second["project"] == project.pk
    assert second["project__name"] == "Roof"
    assert second["project__owner__username"] == "alice"


@override_bindings(NamedTasks)
async def test_renaming_a_project_pushes_the_pages_and_rows_that_show_its_name(
    make_client, db_call
):
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    roof = await db_call(factories.ProjectFactory, owner=alice, name="Roof")
    task = await db_call(factories.TaskFactory, owner=alice, project=roof, title="tiles")
    await db_call(factories.TaskFactory, owner=bob, title="bob's")
    a, b = await make_client(alice), await make_client(bob)
    page = await a.send_event(f"{S}.list", {})
    assert [row["project__name"] for row in page["data"]["rows"]] == ["Roof"]
    assert (await a.send_event(f"{S}.retrieve#one", {"id": task.pk}))["data"]["project__name"]
    assert (await b.send_event(f"{S}.list", {}))["data"]["count"] == 1

    roof.name = "Attic"
    await db_call(roof.save)

    pushed = await a.receive_push(f"{S}.list")
    assert pushed["data"]["rows"] == [
        {
            "id": task.pk,
            "title": "tiles",
            "project": roof.pk,
            "project__name": "Attic",
            "project__owner__username": alice.username,
        }
    ]
    assert (await a.receive_push(f"{S}.retrieve#one"))["data"]["project__name"] == "Attic"
    await a.assert_nothing_more()
    await b.assert_nothing_more()  # bob's page shows no task of that project

    # Two levels away: renaming the project's owner also changes the rows shown.
    alice.username = "alice-renamed"
    await db_call(alice.save)
    pushed = await a.receive_push(f"{S}.list")
    assert pushed["data"]["rows"][0]["project__owner__username"] == "alice-renamed"


@override_bindings(NamedTasks)
async def test_a_project_saved_unchanged_or_unseen_pushes_nothing(make_client, db_call):
    alice = await db_call(factories.UserFactory)
    shown = await db_call(factories.ProjectFactory, owner=alice, name="Shown")
    unseen = await db_call(factories.ProjectFactory, owner=alice, name="Unseen")
    await db_call(factories.TaskFactory, owner=alice, project=shown)
    a = await make_client(alice)
    assert (await a.send_event(f"{S}.list", {}))["data"]["count"] == 1

    unseen.name = "Still unseen"
    await db_call(unseen.save)
    await db_call(shown.save)  # no visible change
    await a.assert_nothing_more()


@override_bindings(NamedTasks)
async def test_related_fields_are_output_only(make_client, db_call):
    alice = await db_call(factories.UserFactory)
    a = await make_client(alice)
    reply = await a.send_event(f"{S}.create", {"title": "t1", "project__name": "Injected"})
    assert reply["error"]["code"] == "invalid"
    assert "project__name" in reply["error"]["fields"]
    assert await db_call(Project.objects.count) == 0
    assert await db_call(Task.objects.count) == 0


def test_a_related_field_that_follows_no_foreign_key_fails_the_checks():
    class Broken(SyncBinding):
        model = Task
        stream = "testapp.BrokenTask"
        fields = ["id", "labels__name", "project__nope"]

    with override_bindings(Broken):
        errors = [e for e in checks.run_checks() if e.id == "syncbind.E002"]
    assert sorted(e.msg.split(": ", 1)[1] for e in errors) == [
        "Task field 'labels__name': 'labels' is not a foreign key "
        "(related fields follow foreign keys and one-to-ones only).",
        "Task field 'project__nope': Project has no 'nope'.",
    ]


# -- unknown keys -------------------------------------------------------------------------


async def test_an_unknown_envelope_key_is_refused_not_ignored(make_client, superuser):
    client = await make_client(superuser)
    reply = await client.send_event("testapp.Product.list", {}, order="-price")
    assert reply == {
        "event": "testapp.Product.list",
        "request_id": reply["request_id"],
        "error": {
            "code": "bad_request",
            "message": "Unknown key 'order': a message has 'event', 'data', 'request_id' "
            "and 'version' "
            "(list parameters such as 'ordering' go in 'data').",
        },
    }


@pytest.mark.parametrize(
    ("action", "data", "takes"),
    [
        ("list", {"order": "-price"}, "filters, limit, ordering, page, query, subscribe"),
        ("search", {"q": "x"}, "filters, limit, ordering, page, query, subscribe"),
        ("retrieve", {"id": 1, "pk": 1}, "id, subscribe"),
        ("delete", {"id": 1, "force": True}, "id"),
    ],
)
async def test_an_unknown_data_parameter_is_refused(
    make_client, superuser, db_call, action, data, takes
):
    await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    reply = await client.send_event(f"testapp.Product.{action}", data)
    (unknown,) = set(data) - {"id"}
    assert reply["error"]["code"] == "invalid"
    assert reply["error"]["fields"] == {unknown: [f"Unknown parameter (this takes {takes})."]}
    assert await db_call(factories.ProductFactory._meta.model.objects.count) == 1


def test_a_serializer_identity_is_what_its_output_depends_on():
    """Subscribers share a serialization when their serializers' identities are equal
    (docs/subscriptions.md, "Who shares an evaluation"): equal output, equal identity."""
    from syncbind.serializers import ModelSerializer

    def identity(**options):
        return ModelSerializer(Task, **options).identity

    # Made apart, the same output: one identity (bindings may make one per request).
    assert identity(fields=["title", "priority"]) == identity(fields=["id", "title", "priority"])
    assert identity(fields=["title"], read_only_fields=["title"]) == identity(fields=["title"])
    # Other fields, another order, another model: another identity.
    assert identity(fields=["title"]) != identity(fields=["title", "priority"])
    assert identity(fields=["title", "priority"]) != identity(fields=["priority", "title"])
    assert ModelSerializer(Project, fields=["name"]).identity != identity(fields=["name"])
    assert identity(exclude=["meta"]) != identity(fields="__all__")

    class Shouting(ModelSerializer):
        def serialize(self, obj):
            return {name: str(value).upper() for name, value in super().serialize(obj).items()}

    assert Shouting(Task, fields=["title"]).identity != identity(fields=["title"])
    hash(identity(fields="__all__"))
