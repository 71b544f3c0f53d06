"""What one change costs, case by case (the table in docs/subscriptions.md).

Queries are counted where pushes are evaluated (the worker threads running
``syncbind._live.fanout``); the save itself is not counted. Each case has N
distinct users, each connected as themselves, on a binding whose
``get_queryset`` is per user: every user sees their own tasks and public ones
(priority 0).
"""

import contextvars
import logging

import pytest
from django.db.models import Q

from syncbind import SyncBinding
from syncbind import bindings as bindings_module
from syncbind._live import affected, fanout
from syncbind._live.hub import get_hub
from syncbind.permissions import IsAuthenticated
from syncbind.testing import connect, override_bindings
from syncbind.testing import settle as caught_up
from tests import factories
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

STREAM = "testapp.ScopedTask"
USERS = 25
BATCH = 10


class ScopedTaskBinding(SyncBinding):
    model = Task
    stream = STREAM
    fields = ["id", "owner", "title", "priority"]
    filterset_fields = {"priority": ["exact"], "owner": ["exact"]}
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        return super().get_queryset().filter(Q(owner=self.request.user) | Q(priority=0))


class EveryRowBinding(SyncBinding):
    """Overrides get_queryset without depending on the user: still shared."""

    model = Task
    stream = "testapp.EveryTask"
    fields = ["id", "owner", "title", "priority"]
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        return Task.objects.all()


class OwnPageBinding(ScopedTaskBinding):
    """get_page is its own: pushes fall back to one evaluation per user."""

    stream = "testapp.OwnPageTask"
    compiled_reads = False  # get_object/get_page are its own

    def get_page(self):
        return {**super().get_page(), "mine": True}


@pytest.fixture
def count_queries(monkeypatch):
    """Queries run by the push evaluations of changes, in whichever worker thread runs
    them.

    ``evaluations`` counts batches of keys evaluated by their reads; keys whose new
    state follows from the fetched rows need none. Tests read the rows they made
    from the change table (``caught_up()``) before subscribing, so that only the
    change they measure is counted. The one-off evaluation of the keys
    subscribed while their stream's group was being joined (the hub catching up) is
    the subscriptions' cost, not a change's: it is not counted here.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counted = {"queries": 0, "evaluations": 0}
    of_a_change = contextvars.ContextVar("of_a_change", default=False)
    process = fanout.process

    async def processing(*args, **kwargs):
        # The worker threads run in a copy of this context.
        token = of_a_change.set(True)
        try:
            return await process(*args, **kwargs)
        finally:
            of_a_change.reset(token)

    def counting(function, is_evaluation):
        def run(*args, **kwargs):
            if not of_a_change.get():
                return function(*args, **kwargs)
            with CaptureQueriesContext(connection) as ctx:
                result = function(*args, **kwargs)
            counted["queries"] += len(ctx.captured_queries)
            counted["evaluations"] += is_evaluation
            return result

        return run

    monkeypatch.setattr(fanout, "process", processing)
    monkeypatch.setattr(fanout, "evaluate", counting(fanout.evaluate, True))
    monkeypatch.setattr(affected, "fetch", counting(affected.fetch, False))
    return counted


@pytest.fixture
async def users_connected(consumer_app, db_call, settings):
    settings.SYNCBIND = {"LIVE_BATCH_SIZE": BATCH}
    users = await db_call(lambda: [factories.UserFactory() for _ in range(USERS)])
    clients = []
    for user in users:
        clients.append(await connect(user, application=consumer_app))
    yield users, clients
    for client in clients:
        await client.close()


async def settle(clients, pushed, event):
    """Every client in ``pushed`` receives ``event`` once; nobody receives anything else."""
    frames = {}
    for index in sorted(pushed):
        frames[index] = await clients[index].receive_push(event)
    for client in clients:
        await client.assert_nothing_more()
    return frames


@override_bindings(ScopedTaskBinding)
async def test_a_same_row_costs_one_fetch(users_connected, db_call, count_queries):
    users, clients = users_connected
    task = await db_call(factories.TaskFactory, owner=users[0], priority=0, title="public")
    await caught_up()
    for client in clients:
        assert (await client.send_event(f"{STREAM}.retrieve", {"id": task.pk}))["data"]
    assert get_hub().key_count(STREAM) == USERS  # each user's read has its own owner_id

    task.title = "renamed"
    await db_call(task.save)
    frames = await settle(clients, range(USERS), f"{STREAM}.retrieve")
    assert {frame["data"]["title"] for frame in frames.values()} == {"renamed"}
    # The row is fetched once; each user's queryset (owner_id = <them> OR priority = 0)
    # decides from its values that it is still theirs to see: no query per user.
    assert count_queries == {"queries": 1, "evaluations": 0}


@override_bindings(ScopedTaskBinding)
async def test_a_same_row_leaving_their_querysets_costs_one_fetch(
    users_connected, db_call, count_queries
):
    users, clients = users_connected
    task = await db_call(factories.TaskFactory, owner=users[0], priority=0, title="public")
    await caught_up()
    for client in clients:
        await client.send_event(f"{STREAM}.retrieve", {"id": task.pk})
    task.priority = 3  # now only its owner's
    await db_call(task.save)
    assert (await clients[0].receive_push(f"{STREAM}.retrieve"))["data"]["priority"] == 3
    for client in clients[1:]:
        assert (await client.receive_push(f"{STREAM}.delete"))["data"] == {"id": task.pk}
    await settle(clients, [], f"{STREAM}.retrieve")
    assert count_queries == {"queries": 1, "evaluations": 0}


@override_bindings(ScopedTaskBinding)
async def test_b_same_page_costs_one_fetch(users_connected, db_call, count_queries):
    users, clients = users_connected
    tasks = await db_call(
        lambda: [factories.TaskFactory(owner=users[0], priority=0) for _ in range(3)]
    )
    await caught_up()
    for client in clients:
        page = await client.send_event(f"{STREAM}.list", {"filters": {"priority": 0}})
        assert page["data"]["count"] == 3

    tasks[1].title = "renamed on the page"
    await db_call(tasks[1].save)
    frames = await settle(clients, range(USERS), f"{STREAM}.list")
    assert {frame["data"]["rows"][1]["title"] for frame in frames.values()} == {
        "renamed on the page"
    }
    # The row stays in every page's queryset and, pages being ordered by primary key,
    # in its place: each page is its last one with the row replaced.
    assert count_queries == {"queries": 1, "evaluations": 0}
    for client in clients:
        fresh = await client.send_event(
            f"{STREAM}.list", {"filters": {"priority": 0}, "subscribe": False}
        )
        assert fresh["data"] == frames[clients.index(client)]["data"]


@override_bindings(ScopedTaskBinding)
async def test_b_same_page_losing_a_row_costs_one_statement_per_batch(
    users_connected, db_call, count_queries
):
    users, clients = users_connected
    tasks = await db_call(
        lambda: [factories.TaskFactory(owner=users[0], priority=0) for _ in range(3)]
    )
    await caught_up()
    for client in clients:
        await client.send_event(f"{STREAM}.list", {"filters": {"priority": 0}})
    await db_call(tasks[1].delete)
    frames = await settle(clients, range(USERS), f"{STREAM}.list")
    assert {frame["data"]["count"] for frame in frames.values()} == {2}
    # Counts move: every page is read again, BATCH of one shape per statement.
    assert count_queries == {"queries": -(-USERS // BATCH), "evaluations": -(-USERS // BATCH)}


@override_bindings(ScopedTaskBinding)
async def test_c_own_rows_cost_one_evaluation(users_connected, db_call, count_queries):
    users, clients = users_connected
    tasks = await db_call(lambda: [factories.TaskFactory(owner=user, priority=3) for user in users])
    for client, task in zip(clients, tasks, strict=True):
        await client.send_event(f"{STREAM}.retrieve", {"id": task.pk})

    tasks[7].title = "only user 7 hears of this"
    await db_call(tasks[7].save)
    frames = await settle(clients, [7], f"{STREAM}.retrieve")
    assert frames[7]["data"]["title"] == "only user 7 hears of this"
    assert count_queries == {"queries": 1, "evaluations": 0}


@override_bindings(ScopedTaskBinding)
async def test_d_own_pages_cost_one_evaluation(users_connected, db_call, count_queries):
    users, clients = users_connected
    tasks = await db_call(
        lambda: [factories.TaskFactory(owner=user, priority=3) for user in users for _ in "ab"]
    )
    await caught_up()
    for client in clients:
        page = await client.send_event(f"{STREAM}.list", {"filters": {"priority": 3}})
        assert page["data"]["count"] == 2

    tasks[15].title = "user 7's second task"
    await db_call(tasks[15].save)
    frames = await settle(clients, [7], f"{STREAM}.list")
    assert frames[7]["data"]["rows"][1]["title"] == "user 7's second task"
    # The other users' pages cannot contain the row (owner_id differs): not evaluated;
    # user 7's page is its last one with the row replaced.
    assert count_queries == {"queries": 1, "evaluations": 0}


@override_bindings(ScopedTaskBinding)
async def test_rows_moving_between_owners_reach_both_pages_and_no_other(
    users_connected, db_call, count_queries
):
    users, clients = users_connected
    tasks = await db_call(lambda: [factories.TaskFactory(owner=user, priority=3) for user in users])
    await caught_up()
    for client in clients:
        await client.send_event(f"{STREAM}.list", {"filters": {"priority": 3}})

    tasks[3].owner = users[4]
    await db_call(tasks[3].save)
    frames = await settle(clients, [3, 4], f"{STREAM}.list")
    assert frames[3]["data"]["count"] == 0
    assert [row["id"] for row in frames[4]["data"]["rows"]] == [tasks[3].pk, tasks[4].pk]
    # The row fetched, then two keys read: the page it left and the page it joined,
    # in one statement.
    assert count_queries == {"queries": 2, "evaluations": 1}


@override_bindings(ScopedTaskBinding)
async def test_a_change_from_code_that_did_not_load_the_row_still_reaches_the_old_owner(
    users_connected, db_call
):
    """Without the row's values before the change, every page that may hold it is evaluated."""
    users, clients = users_connected
    tasks = await db_call(lambda: [factories.TaskFactory(owner=user, priority=3) for user in users])
    for client in clients[:3]:
        await client.send_event(f"{STREAM}.list", {"filters": {"priority": 3}})

    def move_without_loading():
        Task.objects.filter(pk=tasks[0].pk).update(owner=users[1])
        from syncbind import notify

        notify(Task, pks=[tasks[0].pk])

    await db_call(move_without_loading)
    frames = await settle(clients, [0, 1], f"{STREAM}.list")
    assert frames[0]["data"]["count"] == 0
    assert frames[1]["data"]["count"] == 2


@override_bindings(EveryRowBinding)
async def test_a_user_independent_get_queryset_shares_one_evaluation(
    users_connected, db_call, count_queries
):
    users, clients = users_connected
    task = await db_call(factories.TaskFactory, owner=users[0])
    await caught_up()
    for client in clients:
        await client.send_event("testapp.EveryTask.retrieve", {"id": task.pk})
        await client.send_event("testapp.EveryTask.list", {})
    assert get_hub().key_count("testapp.EveryTask") == 2

    task.title = "for everyone"
    await db_call(task.save)
    for client in clients:
        assert (await client.receive_push("testapp.EveryTask.retrieve"))["data"]["title"] == (
            "for everyone"
        )
        assert (await client.receive_push("testapp.EveryTask.list"))["data"]["rows"][0][
            "title"
        ] == "for everyone"
    assert count_queries == {"queries": 1, "evaluations": 0}


@override_bindings(OwnPageBinding)
async def test_a_binding_with_its_own_get_page_and_compiled_reads_off_is_evaluated_per_user_and_says_so(
    users_connected, db_call, caplog, monkeypatch
):
    users, clients = users_connected
    monkeypatch.setattr(bindings_module, "_logged", set())
    caplog.set_level(logging.DEBUG, logger="syncbind.live")
    task = await db_call(factories.TaskFactory, owner=users[0], priority=0)
    for client in clients[:3]:
        page = await client.send_event("testapp.OwnPageTask.list", {})
        assert page["data"]["mine"] is True
    assert get_hub().key_count("testapp.OwnPageTask") == 3
    assert any(
        "testapp.OwnPageTask are evaluated per user: compiled_reads is False" in record.getMessage()
        for record in caplog.records
    )
    task.title = "pushed through get_page"
    await db_call(task.save)
    frames = await settle(clients, [0, 1, 2], "testapp.OwnPageTask.list")
    assert all(frame["data"]["mine"] is True for frame in frames.values())
    assert {frame["data"]["rows"][0]["title"] for frame in frames.values()} == {
        "pushed through get_page"
    }
