"""A model-based test of live subscriptions (Hypothesis stateful).

Three users see tasks through three scopes at once: their own (``owner``),
their team's (tasks in a project they own, through a join the push matching
cannot read) and the public ones (``priority = 0``). Connections subscribe to
random pages (filters, orderings, page numbers, sizes, tags) and rows; then
rows are created, updated, deleted, moved between owners, projects and
scopes, across page boundaries, or changed in bulk with ``notify()``.

After each change has settled, for every subscription:

- its latest state (last push, or the reply that made it) equals a fresh read
  by its own user;
- no frame pushed to it carries a row, or an id, its user cannot read now
  (a row subscription may be told that the id it subscribed to is gone);
- nothing was pushed unless its state changed.
"""

import asyncio
import json

import pytest
from django.db.models import Q
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from syncbind import AsyncBindingConsumer, BindingConsumer, SyncBinding, notify
from syncbind._auth.connection import Connection
from syncbind._transport import core
from syncbind._wire.protocol import Message, encode
from syncbind.permissions import IsAuthenticated
from syncbind.testing import connect, override_bindings, settle
from tests import factories
from tests.testapp.models import Project, Task

pytestmark = pytest.mark.django_db(transaction=True)

STREAM = "testapp.ModelTask"
CHECKS = []  # subscriptions compared at each check
USERS = 3
TITLES = "abcde"


class ModelTaskBinding(SyncBinding):
    model = Task
    stream = STREAM
    fields = ["id", "owner", "project", "title", "priority", "done"]
    filterset_fields = {"priority": ["exact", "lt"], "done": ["exact"], "project": ["exact"]}
    ordering_fields = ["title", "priority"]
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        user = self.request.user
        return super().get_queryset().filter(Q(owner=user) | Q(project__owner=user) | Q(priority=0))


FILTERS = st.sampled_from(
    [
        {},
        {"priority": 0},
        {"priority__lt": 2},
        {"done": True},
        {"done": False, "priority__lt": 3},
        {"project": "own"},
    ]
)
ORDERINGS = st.sampled_from([None, "title", "-priority", ["priority", "-title"]])


class LiveSubscriptions(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clients = []
        self.subscriptions = []  # dicts: client, user, event, request, state, kind
        self.serial = 0

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    @initialize()
    def setup(self):
        Task.objects.all().delete()
        Project.objects.all().delete()
        self.users = [factories.UserFactory() for _ in range(USERS)]
        self.projects = [factories.ProjectFactory(owner=user) for user in self.users]
        for index in range(USERS):
            consumer = AsyncBindingConsumer if index % 2 else BindingConsumer
            self.clients.append(
                self.run(connect(self.users[index], application=consumer.as_asgi()))
            )

    def teardown(self):
        for client in self.clients:
            self.run(client.close())
        # As asyncio.run() ends: let the hub leave its groups, then cancel what is left
        # (a channels-redis receive must not be left holding its lock in a closed loop).
        self.run(asyncio.sleep(0.05))
        self.run(_cancel_the_rest())
        self.loop.close()

    # -- helpers -----------------------------------------------------------------
    def rows(self):
        return list(Task.objects.order_by("pk").values_list("pk", flat=True))

    def fresh(self, user, event, data):
        action = event.split("#")[0].rsplit(".", 1)[1]
        message = Message(
            event=event, stream=STREAM, action=action, data={**data, "subscribe": False}
        )
        reply = core.dispatch(message, Connection(user=user, transport="http"))
        return reply.get("data"), reply.get("error")

    def visible(self, user):
        return set(
            ModelTaskBinding(request=_request(user), action="list")
            .get_queryset()
            .values_list("pk", flat=True)
        )

    def drain(self, client):
        frames = []
        while True:
            try:
                message = client.communicator.output_queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if message["type"] == "websocket.send":
                frame = json.loads(message["text"])
                # One transaction's pushes come in one frame (docs/protocol.md).
                together = frame["data"] if frame.get("event") == "syncbind.batch" else [frame]
                frames.extend(together)
        return [*client.pending, *frames]

    # -- subscribing --------------------------------------------------------------
    @rule(
        user=st.integers(0, USERS - 1),
        filters=FILTERS,
        ordering=ORDERINGS,
        page=st.integers(1, 2),
        limit=st.integers(1, 3),
    )
    def subscribe_page(self, user, filters, ordering, page, limit):
        self.serial += 1
        if filters.get("project") == "own":
            filters = {"project": self.projects[user].pk}
        data = {"filters": filters, "page": page, "limit": limit}
        if ordering is not None:
            data["ordering"] = ordering
        event = f"{STREAM}.list#s{self.serial}"
        reply = self.run(self.clients[user].send_event(event, data))
        assert "data" in reply, reply
        self.subscriptions.append(
            {"client": user, "event": event, "data": data, "state": reply["data"], "kind": "page"}
        )

    @rule(user=st.integers(0, USERS - 1), pick=st.integers(0, 20))
    def subscribe_row(self, user, pick):
        rows = self.rows()
        if not rows:
            return
        self.serial += 1
        pk = rows[pick % len(rows)]
        event = f"{STREAM}.retrieve#r{self.serial}"
        reply = self.run(self.clients[user].send_event(event, {"id": pk}))
        if "error" in reply:
            assert reply["error"]["code"] == "not_found"
            return
        self.subscriptions.append(
            {
                "client": user,
                "event": event,
                "data": {"id": pk},
                "state": reply["data"],
                "kind": "row",
                "pk": pk,
            }
        )

    # -- changing ------------------------------------------------------------------
    @rule(
        owner=st.integers(0, USERS - 1),
        project=st.one_of(st.none(), st.integers(0, USERS - 1)),
        priority=st.integers(0, 3),
        done=st.booleans(),
        title=st.sampled_from(TITLES),
    )
    def create(self, owner, project, priority, done, title):
        self.serial += 1
        Task.objects.create(
            owner=self.users[owner],
            project=self.projects[project] if project is not None else None,
            priority=priority,
            done=done,
            title=title,
            slug=f"t{self.serial}",
        )
        self.check()

    @rule(
        pick=st.integers(0, 20),
        owner=st.one_of(st.none(), st.integers(0, USERS - 1)),
        project=st.one_of(st.none(), st.integers(-1, USERS - 1)),
        priority=st.one_of(st.none(), st.integers(0, 3)),
        done=st.one_of(st.none(), st.booleans()),
        title=st.one_of(st.none(), st.sampled_from(TITLES)),
    )
    def update(self, pick, owner, project, priority, done, title):
        rows = self.rows()
        if not rows:
            return
        task = Task.objects.get(pk=rows[pick % len(rows)])
        if owner is not None:
            task.owner = self.users[owner]
        if project is not None:
            task.project = self.projects[project] if project >= 0 else None
        if priority is not None:
            task.priority = priority
        if done is not None:
            task.done = done
        if title is not None:
            task.title = title
        task.save()
        self.check()

    @rule(pick=st.integers(0, 20))
    def delete(self, pick):
        rows = self.rows()
        if rows:
            Task.objects.get(pk=rows[pick % len(rows)]).delete()
            self.check()

    @rule(picks=st.lists(st.integers(0, 20), min_size=1, max_size=4), priority=st.integers(0, 3))
    def bulk(self, picks, priority):
        """A QuerySet.update() that nothing hears of, then notify()."""
        rows = self.rows()
        if not rows:
            return
        pks = sorted({rows[pick % len(rows)] for pick in picks})
        Task.objects.filter(pk__in=pks).update(priority=priority)
        notify(Task, pks=pks)
        self.check()

    # -- the invariants ------------------------------------------------------------------
    def check(self):
        CHECKS.append(len(self.subscriptions))
        self.run(settle())
        received = {index: self.drain(client) for index, client in enumerate(self.clients)}
        for client in self.clients:
            client.pending.clear()
        for sub in self.subscriptions:
            user = self.users[sub["client"]]
            visible = self.visible(user)
            base = sub["event"].split("#")[0].rsplit(".", 1)[0]
            tag = sub["event"].split("#")[1]
            pushes = [
                frame
                for frame in received[sub["client"]]
                if "request_id" not in frame and frame["event"].endswith(f"#{tag}")
            ]
            for frame in pushes:
                data = frame["data"]
                if frame["event"] == f"{base}.delete#{tag}":
                    assert data == {"id": sub["pk"]}, frame
                elif sub["kind"] == "row":
                    assert data["id"] in visible, (frame, visible)
                else:
                    assert {row["id"] for row in data["rows"]} <= visible, (frame, visible)
                assert encode(data) != encode(sub["state"]), ("pushed without a change", frame)
                sub["state"] = data if "delete" not in frame["event"] else None
            expected, error = self.fresh(user, sub["event"], sub["data"])
            if sub["kind"] == "row" and error is not None:
                assert error["code"] == "not_found"
                assert sub["state"] is None, (sub, "should have been told of the delete")
            else:
                assert sub["state"] == expected, (sub["event"], sub["data"], sub["state"], expected)


async def _cancel_the_rest():
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _request(user):
    from syncbind._bindings.request import Request

    message = Message(event=f"{STREAM}.list", stream=STREAM, action="list", data={})
    return Request(message=message, user=user)


@override_bindings(ModelTaskBinding)
def test_every_subscriber_sees_what_a_fresh_read_shows(transactional_db):
    CHECKS.clear()  # this run's checks alone, should the process run the test again
    LiveSubscriptions.TestCase.settings = settings(
        max_examples=30,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    LiveSubscriptions.TestCase().runTest()
    # The runs did compare subscriptions with fresh reads, and not just a few.
    assert sum(CHECKS) > 200, f"{len(CHECKS)} checks, of these many subscriptions: {CHECKS}"
