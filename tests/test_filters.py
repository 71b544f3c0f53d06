"""[syncbind/filters.py] Search and slow statements (issue 11, point 6); filters on relations
(issue 21, point 4).

With a to-many field in ``search_fields`` every word used to add a join:
``search {"query": "a a a a a a a a a"}`` took 5 s on SQLite and 12 s on
PostgreSQL, and eight of them held the whole pool. Words now match to-many
fields through subqueries (linear, no DISTINCT), their number is limited, and
no statement may outlive ``STATEMENT_TIMEOUT``.
"""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from syncbind import SyncBinding, event
from syncbind._workers.executor import shutdown_executor
from syncbind.permissions import IsAuthenticated
from syncbind.testing import override_bindings
from tests import factories
from tests.testapp.bindings import ListScopedProjectBinding, TaskBinding
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

TASK = "testapp.Task"


@pytest.fixture
async def tasks(make_client, db_call):
    user = await db_call(factories.UserFactory)
    red = await db_call(factories.LabelFactory, owner=user, name="red alert")
    blue = await db_call(factories.LabelFactory, owner=user, name="blue")
    first = await db_call(factories.TaskFactory, owner=user, title="paint the fence", labels=[red])
    second = await db_call(factories.TaskFactory, owner=user, title="red door", labels=[blue, red])
    await db_call(factories.TaskFactory, owner=user, title="nothing", labels=[blue])
    client = await make_client(user)
    return client, first, second


async def test_words_match_titles_or_labels(tasks):
    client, first, second = tasks
    page = await client.send_event(f"{TASK}.search", {"query": "red"})
    assert [row["id"] for row in page["data"]["rows"]] == [first.pk, second.pk]
    page = await client.send_event(f"{TASK}.search", {"query": "red door alert"})
    assert [row["id"] for row in page["data"]["rows"]] == [second.pk]
    page = await client.send_event(f"{TASK}.search", {"query": "a " * 8})
    assert page["data"]["count"] == 2  # "paint the fence" and "red alert": not "nothing"/"blue"


async def test_the_number_of_words_is_limited(tasks):
    client, _, _ = tasks
    reply = await client.send_event(f"{TASK}.search", {"query": "a a a a a a a a a"})
    assert reply["error"] == {
        "code": "invalid",
        "message": "Invalid data.",
        "fields": {"query": ["Use at most 8 words."]},
    }


def test_words_add_subqueries_not_joins(transactional_db):
    from tests.testapp.bindings import TaskBinding

    user = factories.UserFactory()
    label = factories.LabelFactory(owner=user, name="efgh")
    factories.TaskFactory(owner=user, title="abcd", labels=[label])
    from syncbind._bindings.request import Request
    from syncbind._wire.protocol import Message

    message = Message(
        event=f"{TASK}.search", stream=TASK, action="search", data={"query": "a b c d e f g h"}
    )
    binding = TaskBinding(request=Request(message=message, user=user), action="search")
    read = binding.get_page_read()
    assert read.unbatchable is None  # no DISTINCT: batched with other pages of its shape
    outer = read.sql.split("(SELECT", 1)[0]
    assert "JOIN" not in outer and "DISTINCT" not in read.sql
    with CaptureQueriesContext(connection) as ctx:
        binding.get_page()
    assert len(ctx.captured_queries) == 2  # the page with its count, then the labels


SLOW = {
    "postgresql": "SELECT pg_sleep(30)",
    "sqlite": (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) "
        "SELECT count(*) FROM c"
    ),
}


class SlowTaskBinding(SyncBinding):
    model = Task
    stream = "testapp.SlowTask"
    fields = ["id"]
    permission_classes = [IsAuthenticated]

    @event(atomic=False)
    def crawl(self, request):
        from django.db import connection as worker_connection

        with worker_connection.cursor() as cursor:
            cursor.execute(SLOW[worker_connection.vendor])
        return {"finished": True}


@override_bindings(SlowTaskBinding)
async def test_no_statement_outlives_the_timeout(make_client, db_call, settings, caplog):
    settings.SYNCBIND = {"STATEMENT_TIMEOUT": 0.5}
    shutdown_executor()  # new worker connections take the new limit
    try:
        user = await db_call(factories.UserFactory)
        client = await make_client(user)
        reply = await client.send_event("testapp.SlowTask.crawl", {}, timeout=20)
        assert reply["error"] == {
            "code": "timeout",
            "message": "The request took longer than this server allows.",
        }
        assert any("STATEMENT_TIMEOUT" in record.getMessage() for record in caplog.records)
        # The connection, and the worker's database connection, go on working.
        assert (await client.send_event(f"{TASK}.list", {}))["data"]["count"] == 0
    finally:
        settings.SYNCBIND = {}
        shutdown_executor()


# -- filters on relations (issue 21, point 4) -------------------------------------------

MISSING = 987654


def no_request_id(reply):
    return {name: value for name, value in reply.items() if name != "request_id"}


class PublicTaskBinding(SyncBinding):
    """Every task is listed to every user; projects are listed to their owner only."""

    model = Task
    stream = "testapp.PublicTask"
    fields = ["id", "title", "project"]
    filterset_fields = ["project"]
    permission_classes = [IsAuthenticated]


@override_bindings(PublicTaskBinding, ListScopedProjectBinding)
async def test_a_filter_on_a_row_listed_only_to_another_user_answers_as_for_a_missing_one(
    make_client, db_call
):
    """The oracle: bob's project (in no list of alice's) was accepted as a filter value,
    where a missing id was refused, so alice could tell which project ids exist."""
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    mine = await db_call(factories.ProjectFactory, owner=alice)
    theirs = await db_call(factories.ProjectFactory, owner=bob)
    await db_call(factories.TaskFactory, owner=bob, project=theirs, title="bob's")
    await db_call(factories.TaskFactory, owner=alice, project=mine, title="alice's")
    client = await make_client(alice)
    stream = "testapp.PublicTask"
    hidden = await client.send_event(f"{stream}.list", {"filters": {"project": theirs.pk}})
    missing = await client.send_event(f"{stream}.list", {"filters": {"project": MISSING}})
    assert no_request_id(hidden) == no_request_id(missing)
    assert no_request_id(hidden) == {
        "event": f"{stream}.list",
        "error": {
            "code": "invalid",
            "message": "Invalid data.",
            "fields": {
                "project": [
                    "Select a valid choice. That choice is not one of the available choices."
                ]
            },
        },
    }
    own = await client.send_event(f"{stream}.list", {"filters": {"project": mine.pk}})
    assert [row["title"] for row in own["data"]["rows"]] == ["alice's"]


# -- boolean filters (issue 21, point 9) ------------------------------------------------------


class DoneTaskBinding(TaskBinding):
    stream = "testapp.DoneTask"
    filterset_fields = {"done": ["exact"], "due": ["isnull"]}


@pytest.fixture
async def done_tasks(make_client, db_call):
    user = await db_call(factories.UserFactory)
    done = await db_call(factories.TaskFactory, owner=user, done=True)
    open_ = await db_call(factories.TaskFactory, owner=user, done=False)
    return await make_client(user), done, open_


@pytest.mark.parametrize(
    ("value", "expected"), [(True, "done"), ("true", "done"), (False, "open"), ("false", "open")]
)
@override_bindings(DoneTaskBinding)
async def test_a_boolean_filter_takes_booleans_and_their_text(done_tasks, value, expected):
    client, done, open_ = done_tasks
    page = await client.send_event("testapp.DoneTask.list", {"filters": {"done": value}})
    assert [row["id"] for row in page["data"]["rows"]] == [
        {"done": done, "open": open_}[expected].pk
    ]


@pytest.mark.parametrize("value", ["maybe", "True", "1", 1, 0, [], None, ""])
@override_bindings(DoneTaskBinding)
async def test_a_boolean_filter_refuses_anything_else(done_tasks, value):
    client, _, _ = done_tasks
    for name in ("done", "due__isnull"):
        page = await client.send_event("testapp.DoneTask.list", {"filters": {name: value}})
        assert page["error"] == {
            "code": "invalid",
            "message": "Invalid data.",
            "fields": {name: ["Must be a valid boolean."]},
        }


@override_bindings(DoneTaskBinding)
def test_boolean_filters_over_http_are_true_or_false(transactional_db):
    user = factories.UserFactory()
    done = factories.TaskFactory(owner=user, done=True)
    factories.TaskFactory(owner=user, done=False)
    client = Client()
    client.force_login(user)
    page = client.get("/api/testapp.DoneTask/?done=true")
    assert [row["id"] for row in page.json()["rows"]] == [done.pk]
    refused = client.get("/api/testapp.DoneTask/?done=yes")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"] == {"done": ["Must be a valid boolean."]}
