"""[syncbind/bindings.py: get_related_queryset] Related values in writes and filters are rows the user could read (issue 11, point 7).

Alice and bob each own projects and labels; ``TaskBinding``, ``ProjectBinding``
and ``LabelBinding`` scope everything by owner. Alice must not be able to
point her task at bob's project or label, nor learn which ids exist by
comparing answers: another user's row gets the same answer as a row that does
not exist. A clash with a unique value of a row she cannot see is not
described either.
"""

import pytest

from syncbind import SyncBinding
from syncbind.permissions import IsAuthenticated
from syncbind.testing import override_bindings
from tests import factories
from tests.drf_bindings import DRFTaskBinding
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

TASK = "testapp.Task"
MISSING = 987654
NOT_A_CHOICE = "Select a valid choice. That choice is not one of the available choices."


@pytest.fixture
async def two_users(make_client, db_call):
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    mine = await db_call(factories.ProjectFactory, owner=alice)
    theirs = await db_call(factories.ProjectFactory, owner=bob)
    my_label = await db_call(factories.LabelFactory, owner=alice)
    their_label = await db_call(factories.LabelFactory, owner=bob)
    client = await make_client(alice)
    return client, alice, bob, mine, theirs, my_label, their_label


def task(**data):
    return {"slug": f"s-{data.get('title', 'x')}", "title": "x", **data}


async def test_a_foreign_key_to_another_users_row_is_refused_like_a_missing_one(two_users, db_call):
    client, alice, _, mine, theirs, _, _ = two_users
    hidden = await client.send_event(f"{TASK}.create", task(project=theirs.pk))
    missing = await client.send_event(f"{TASK}.create", task(project=MISSING))
    assert hidden["error"] == missing["error"]
    assert hidden["error"]["fields"]["project"][0].startswith("Select a valid choice.")
    assert await db_call(Task.objects.count) == 0
    own = await client.send_event(f"{TASK}.create", task(project=mine.pk))
    assert own["data"]["row"]["project"] == mine.pk


async def test_an_update_cannot_move_a_row_into_another_users_project(two_users, db_call):
    client, alice, _, mine, theirs, _, _ = two_users
    row = await db_call(factories.TaskFactory, owner=alice, project=mine)
    reply = await client.send_event(f"{TASK}.update", {"id": row.pk, "project": theirs.pk})
    assert reply["error"]["fields"] == {"project": [NOT_A_CHOICE]}
    assert await db_call(lambda: Task.objects.get(pk=row.pk).project_id) == mine.pk


async def test_many_to_many_values_are_scoped_too(two_users, db_call):
    client, _, _, _, _, my_label, their_label = two_users
    hidden = await client.send_event(f"{TASK}.create", task(labels=[my_label.pk, their_label.pk]))
    missing = await client.send_event(f"{TASK}.create", task(labels=[my_label.pk, MISSING]))
    assert list(hidden["error"]["fields"]) == ["labels"]
    assert hidden["error"]["fields"]["labels"] == [
        message.replace(str(MISSING), str(their_label.pk))
        for message in missing["error"]["fields"]["labels"]
    ]
    ok = await client.send_event(f"{TASK}.create", task(labels=[my_label.pk]))
    assert ok["data"]["row"]["labels"] == [my_label.pk]


async def test_filters_on_another_users_row_answer_as_for_a_missing_one(two_users):
    client, _, _, mine, theirs, _, _ = two_users
    hidden = await client.send_event(f"{TASK}.list", {"filters": {"project": theirs.pk}})
    missing = await client.send_event(f"{TASK}.list", {"filters": {"project": MISSING}})
    assert hidden["error"] == missing["error"]
    assert hidden["error"]["code"] == "invalid"
    own = await client.send_event(f"{TASK}.list", {"filters": {"project": mine.pk}})
    assert own["data"]["count"] == 0


async def test_a_unique_clash_with_a_hidden_row_is_not_described(two_users, db_call):
    client, alice, bob, _, _, _, _ = two_users
    await db_call(factories.TaskFactory, owner=bob, slug="bobs-slug")
    await db_call(factories.TaskFactory, owner=alice, slug="alices-slug")
    hidden = await client.send_event(f"{TASK}.create", task(slug="bobs-slug"))
    assert hidden["error"]["fields"] == {"slug": ["This value is not available."]}
    visible = await client.send_event(f"{TASK}.create", task(slug="alices-slug"))
    assert visible["error"]["fields"] == {"slug": ["Task with this Slug already exists."]}


class OpenProjectsTaskBinding(SyncBinding):
    """Chooses otherwise: any project may be named."""

    model = Task
    stream = "testapp.OpenTask"
    fields = ["id", "owner", "project", "slug", "title"]
    read_only_fields = ["owner"]
    permission_classes = [IsAuthenticated]

    def get_related_queryset(self, field, queryset):
        return queryset

    def perform_create(self, write):
        return write.save(owner=self.request.user)


@override_bindings(OpenProjectsTaskBinding)
async def test_the_hook_chooses_otherwise(two_users):
    client, _, _, _, theirs, _, _ = two_users
    reply = await client.send_event("testapp.OpenTask.create", task(project=theirs.pk))
    assert reply["data"]["row"]["project"] == theirs.pk


@override_bindings(DRFTaskBinding)
async def test_drf_serializer_relations_are_scoped_too(two_users, db_call):
    client, _, _, mine, theirs, my_label, their_label = two_users
    hidden = await client.send_event("testapp.DRFTask.create", task(project=theirs.pk))
    missing = await client.send_event("testapp.DRFTask.create", task(project=MISSING))
    assert hidden["error"]["fields"]["project"] == [
        message.replace(str(MISSING), str(theirs.pk))
        for message in missing["error"]["fields"]["project"]
    ]
    labels = await client.send_event("testapp.DRFTask.create", task(labels=[their_label.pk]))
    assert list(labels["error"]["fields"]) == ["labels"]
    ok = await client.send_event(
        "testapp.DRFTask.create", task(project=mine.pk, labels=[my_label.pk])
    )
    assert ok["data"]["row"]["project"] == mine.pk
    assert await db_call(Task.objects.count) == 1


def test_the_built_in_actions_are_the_events_of_a_full_binding():
    # One list (syncbind._bindings.request) serves permissions, the HTTP routes and the names
    # server pushes may not take: it must be what SyncBinding's mixins serve.
    from syncbind._bindings.request import BUILTIN_ACTIONS

    assert frozenset(SyncBinding.events) == BUILTIN_ACTIONS


@pytest.mark.parametrize(
    "hook",
    ["get_queryset", "get_lookup_value", "get_object", "filter_queryset", "get_page"]
    + ["perform_create", "perform_update", "perform_delete"],
)
def test_the_base_hooks_are_called_directly_without_an_adapter(hook):
    # No wrapper translating an old request-first call: one frame per hook call.
    method = getattr(SyncBinding, hook)
    assert not hasattr(method, "__wrapped__")
    assert method.__qualname__.endswith(f".{hook}")


def test_for_action_is_the_binding_of_another_action_with_no_data_on_the_same_user():
    # What describe's permission check, a description's "permitted" and related_rows()
    # decide with: the tag stays on the binding's own stream, no data is carried over.
    from django.contrib.auth.models import AnonymousUser

    from syncbind._bindings.request import Request
    from syncbind._wire.protocol import Message
    from tests.testapp.bindings import ProjectBinding, TaskBinding

    user = AnonymousUser()
    message = Message(
        event="testapp.Task.describe#t1",
        stream=TASK,
        action="describe",
        tag="t1",
        data={"id": 5},
    )
    request = Request(message, user=user)

    retrieve = TaskBinding.for_action(request, "retrieve")
    assert type(retrieve) is TaskBinding
    assert (retrieve.action, retrieve.request.event, retrieve.request.data) == (
        "retrieve",
        "testapp.Task.retrieve#t1",
        {},
    )
    assert retrieve.request.user is user

    related = ProjectBinding.for_action(request, "list")
    assert type(related) is ProjectBinding
    assert (related.request.stream, related.request.event, related.request.tag) == (
        "testapp.Project",
        "testapp.Project.list",
        None,
    )
    assert related.request.user is user
