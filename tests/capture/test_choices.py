"""[syncbind/capture/choices.py] A filter on a relation costs no statement on a resume whose rows are unwritten (issue 23, point 2).

A foreign-key filter validates its value by looking the row up among the rows
the user may name. With capture, the row found is kept per process and used
again while no table the lookup reads was written: a crowd resuming the same
filtered page runs no statement beyond the change log's one question, and a
process that restarted looks each distinct value up once. A row made
unreadable or deleted is refused on the next request, as without capture.
"""

import asyncio

import pytest

from syncbind._capture.follower import stop_all
from syncbind.testing import connect, settle
from tests import factories
from tests.testapp.models import Project

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "testapp.Task.list"
REFUSED = {
    "code": "invalid",
    "message": "Invalid data.",
    "fields": {
        "project": ["Select a valid choice. That choice is not one of the available choices."]
    },
}


@pytest.fixture
def statements(worker_statements):
    """Every statement the requests ran, in whichever worker thread."""
    return worker_statements


def lookups(ran):
    """The statements that read the projects (the filter's lookup)."""
    return [sql for sql in ran if "testapp_project" in sql]


def outside_the_log(ran):
    """The statements that are not the change log's question (and its transaction)."""
    log = ("syncbind_", "pg_")
    return [
        sql
        for sql in ran
        if not any(name in sql for name in log) and sql not in ("BEGIN", "COMMIT")
    ]


async def subscribed(user, project):
    """A client's versions after reading the page of ``project``'s tasks."""
    client = await connect(user)
    page = await client.send_event(LIST, {"filters": {"project": project.pk}})
    assert [row["title"] for row in page["data"]["rows"]] == ["mine"]
    versions = dict(client.versions)
    await client.close()
    await settle()
    return versions


async def resume(user, project, versions):
    client = await connect(user)
    try:
        return await client.resume(LIST, {"filters": {"project": project.pk}}, versions)
    finally:
        await client.close()


@pytest.fixture
async def alice(db_call):
    user = await db_call(factories.UserFactory)
    project = await db_call(factories.ProjectFactory, owner=user)
    await db_call(factories.TaskFactory, owner=user, project=project, title="mine")
    return user, project


async def test_a_crowd_resuming_a_filter_on_a_relation_runs_no_lookup(alice, statements):
    user, project = alice
    versions = await subscribed(user, project)
    assert len(lookups(statements)) == 1  # the first read looked the project up
    statements.clear()
    for _ in range(20):
        assert (await resume(user, project, versions))["resume"] == "unchanged"
    # Only the change log was asked (once, shared): no project lookup, no row read.
    assert lookups(statements) == [] and outside_the_log(statements) == []


async def test_after_a_restart_a_crowd_looks_each_value_up_once(alice, db_call, statements):
    user, project = alice
    other = await db_call(factories.ProjectFactory, owner=user)
    versions = await subscribed(user, project)
    stop_all()  # a new reader, as in a new process: nothing kept
    statements.clear()

    async def resuming(target):
        client = await connect(user)
        reply = await client.resume(LIST, {"filters": {"project": target.pk}}, versions)
        await client.close()
        return reply

    replies = await asyncio.gather(*(resuming(project) for _ in range(10)), resuming(other))
    assert [reply.get("resume") for reply in replies] == ["unchanged"] * 10 + ["expired"]
    assert len(lookups(statements)) == 2  # one per distinct project, not per client


async def test_a_project_given_to_someone_else_between_two_resumes_is_refused(
    alice, db_call, statements
):
    user, project = alice
    versions = await subscribed(user, project)
    assert (await resume(user, project, versions))["resume"] == "unchanged"
    bob = await db_call(factories.UserFactory)
    await db_call(Project.objects.filter(pk=project.pk).update, owner=bob)
    await settle()
    statements.clear()
    assert (await resume(user, project, versions))["error"] == REFUSED
    assert len(lookups(statements)) == 1  # looked up again, and not found


async def test_a_project_deleted_between_two_resumes_is_refused(alice, db_call):
    user, project = alice
    versions = await subscribed(user, project)
    assert (await resume(user, project, versions))["resume"] == "unchanged"
    await db_call(Project.objects.filter(pk=project.pk).delete)
    await settle()
    assert (await resume(user, project, versions))["error"] == REFUSED


async def test_a_choice_kept_for_one_user_is_not_another_users(alice, db_call, statements):
    user, project = alice
    await subscribed(user, project)
    bob = await db_call(factories.UserFactory)
    statements.clear()
    client = await connect(bob)
    reply = await client.send_event(LIST, {"filters": {"project": project.pk}})
    await client.close()
    assert reply["error"] == REFUSED
    assert len(lookups(statements)) == 1  # bob's own lookup (his projects), not alice's row


async def test_without_capture_every_request_looks_the_value_up(alice, settings, statements):
    settings.SYNCBIND = {**settings.SYNCBIND, "CAPTURE": False}
    user, project = alice
    client = await connect(user)
    for _ in range(3):
        page = await client.send_event(LIST, {"filters": {"project": project.pk}})
        assert [row["title"] for row in page["data"]["rows"]] == ["mine"]
    await client.close()
    assert len(lookups(statements)) == 3
