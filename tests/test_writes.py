"""[syncbind/writes.py] Concurrent writes of one row lose nothing and bring nothing back (issue 11,
point 8); a write links only related rows the related stream lets the writer read (issue 21, point 4).

Two writes of one row race: each binding below waits in ``perform_update`` /
``perform_delete`` (a ``threading.Barrier`` of two, with a short timeout) so
that, if nothing serialised them, both would have read the row before either
wrote it. DRF-serializer bindings then lost one of two updates of different
fields, and an update racing a delete brought the row back; native bindings
answered ``server_error``. Writes now lock the row they read: the second
waits for the first, reads what it committed, and a deleted row is
``not_found``.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.test import Client
from rest_framework import serializers

from syncbind import SyncBinding
from syncbind._auth.connection import Connection
from syncbind._transport import core
from syncbind._wire.protocol import Message
from syncbind.permissions import AllowAny, IsAuthenticated
from syncbind.testing import override_bindings
from tests import factories
from tests.drf_bindings import DRFTaskBinding
from tests.testapp.bindings import ListScopedLabelBinding, ListScopedProjectBinding
from tests.testapp.models import Product, Task

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 6
# Long enough for both writers to arrive if nothing serialises them; a writer held
# behind the other's row lock never arrives, and its partner goes on after this.
MEETING = 0.4


class Meeting:
    def __init__(self):
        self.barrier = threading.Barrier(2, timeout=MEETING)
        self.met = 0

    def wait(self):
        try:
            self.barrier.wait()
            self.met += 1
        except threading.BrokenBarrierError:
            pass

    def reset(self):
        self.barrier = threading.Barrier(2, timeout=MEETING)


meeting = Meeting()


class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "name", "stock", "price", "category"]


class Racing:
    permission_classes = [AllowAny]

    def perform_update(self, write):
        meeting.wait()
        return super().perform_update(write)

    def perform_delete(self, obj):
        meeting.wait()
        return super().perform_delete(obj)


class DRFRacingBinding(Racing, SyncBinding):
    model = Product
    stream = "testapp.DRFRacing"
    serializer_class = ProductSerializer


class NativeRacingBinding(Racing, SyncBinding):
    model = Product
    stream = "testapp.NativeRacing"
    fields = ["id", "name", "stock", "price", "category"]


def send(stream, action, data, user):
    try:
        message = Message(event=f"{stream}.{action}", stream=stream, action=action, data=data)
        return core.dispatch(message, Connection(user=user, transport="http"))
    finally:
        connections.close_all()


def race(*calls):
    meeting.reset()
    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(send, *call) for call in calls]]


@pytest.mark.parametrize("stream", ["testapp.DRFRacing", "testapp.NativeRacing"])
@override_bindings(DRFRacingBinding, NativeRacingBinding)
def test_concurrent_updates_of_different_fields_both_stay(stream, superuser):
    product = factories.ProductFactory(name="start", stock=0)
    for round_ in range(ROUNDS):
        replies = race(
            (stream, "update", {"id": product.pk, "name": f"name {round_}"}, superuser),
            (stream, "update", {"id": product.pk, "stock": round_ + 1}, superuser),
        )
        assert all("data" in reply for reply in replies), replies
        product.refresh_from_db()
        assert (product.name, product.stock) == (f"name {round_}", round_ + 1)
    assert meeting.met == 0  # never both between reading and writing


@pytest.mark.parametrize("stream", ["testapp.DRFRacing", "testapp.NativeRacing"])
@override_bindings(DRFRacingBinding, NativeRacingBinding)
def test_an_update_racing_a_delete_never_brings_the_row_back(stream, superuser):
    for _round in range(ROUNDS):
        product = factories.ProductFactory(name="doomed")
        update, delete = race(
            (stream, "update", {"id": product.pk, "name": "revived?"}, superuser),
            (stream, "delete", {"id": product.pk}, superuser),
        )
        assert delete["data"]["success"] is True
        assert "data" in update or update["error"]["code"] == "not_found", update
        assert not Product.objects.filter(pk=product.pk).exists()


# -- related rows a write may link (issue 21, point 4) ---------------------------------
#
# The project and label streams below scope in filter_queryset only: bob's project is
# in no list alice can read, though its get_queryset() has every row. Linking alice's
# task to it used to succeed, and to be told apart from linking a missing id.

TASK = "testapp.Task"
MISSING = 987654
NOT_A_CHOICE = "Select a valid choice. That choice is not one of the available choices."


def no_request_id(reply):
    return {name: value for name, value in reply.items() if name != "request_id"}


def new_task(**data):
    return {"slug": "s", "title": "t", **data}


@pytest.fixture
async def alice_and_bobs_rows(make_client, db_call):
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    rows = {
        "mine": await db_call(factories.ProjectFactory, owner=alice),
        "theirs": await db_call(factories.ProjectFactory, owner=bob),
        "my_label": await db_call(factories.LabelFactory, owner=alice),
        "their_label": await db_call(factories.LabelFactory, owner=bob),
    }
    return await make_client(alice), alice, rows


def refused(action, fields):
    return {
        "event": f"{TASK}.{action}",
        "error": {"code": "invalid", "message": "Invalid data.", "fields": fields},
    }


@override_bindings(ListScopedProjectBinding, ListScopedLabelBinding)
async def test_a_foreign_key_to_a_row_listed_only_to_another_user_is_refused_like_a_missing_one(
    alice_and_bobs_rows, db_call
):
    client, alice, rows = alice_and_bobs_rows
    hidden = await client.send_event(f"{TASK}.create", new_task(project=rows["theirs"].pk))
    missing = await client.send_event(f"{TASK}.create", new_task(project=MISSING))
    assert no_request_id(hidden) == no_request_id(missing)
    assert no_request_id(hidden) == refused("create", {"project": [NOT_A_CHOICE]})
    assert await db_call(Task.objects.count) == 0

    task = await db_call(factories.TaskFactory, owner=alice, project=rows["mine"])
    hidden = await client.send_event(
        f"{TASK}.update", {"id": task.pk, "project": rows["theirs"].pk}
    )
    missing = await client.send_event(f"{TASK}.update", {"id": task.pk, "project": MISSING})
    assert no_request_id(hidden) == no_request_id(missing)
    assert no_request_id(hidden) == refused("update", {"project": [NOT_A_CHOICE]})
    assert await db_call(lambda: Task.objects.get(pk=task.pk).project_id) == rows["mine"].pk

    own = await client.send_event(f"{TASK}.create", new_task(project=rows["mine"].pk))
    assert own["data"]["row"]["project"] == rows["mine"].pk


@override_bindings(ListScopedProjectBinding, ListScopedLabelBinding)
async def test_a_many_to_many_value_listed_only_to_another_user_is_refused_like_a_missing_one(
    alice_and_bobs_rows, db_call
):
    client, alice, rows = alice_and_bobs_rows
    mine, theirs = rows["my_label"].pk, rows["their_label"].pk
    hidden = await client.send_event(f"{TASK}.create", new_task(labels=[mine, theirs]))
    missing = await client.send_event(f"{TASK}.create", new_task(labels=[mine, MISSING]))
    # The message names the value sent, whichever it is.
    message = "Select a valid choice. {} is not one of the available choices."
    assert no_request_id(hidden) == refused("create", {"labels": [message.format(theirs)]})
    assert no_request_id(missing) == refused("create", {"labels": [message.format(MISSING)]})
    assert await db_call(Task.objects.count) == 0

    task = await db_call(factories.TaskFactory, owner=alice, labels=[rows["my_label"]])
    hidden = await client.send_event(f"{TASK}.update", {"id": task.pk, "labels": [theirs]})
    assert no_request_id(hidden) == refused("update", {"labels": [message.format(theirs)]})
    labels = await db_call(lambda: list(Task.objects.get(pk=task.pk).labels.values_list("pk")))
    assert labels == [(mine,)]


class NamedTaskBinding(SyncBinding):
    """Every task may be read and retitled by every user; each shows its project's name."""

    model = Task
    stream = "testapp.NamedTask"
    fields = ["id", "title", "slug", "project", "project__name"]
    permission_classes = [IsAuthenticated]

    def perform_create(self, write):
        return write.save(owner=self.request.user)


@override_bindings(NamedTaskBinding, ListScopedProjectBinding)
async def test_a_write_reply_shows_related_rows_as_a_read_does(alice_and_bobs_rows, db_call):
    client, alice, rows = alice_and_bobs_rows
    theirs = await db_call(factories.TaskFactory, owner=alice, project=rows["theirs"])
    stream = "testapp.NamedTask"
    updated = await client.send_event(f"{stream}.update", {"id": theirs.pk, "title": "new"})
    assert updated["data"]["row"]["project__name"] is None
    read = await client.send_event(f"{stream}.retrieve", {"id": theirs.pk, "subscribe": False})
    assert read["data"] == updated["data"]["row"]
    # Moved into her own project by the same write: its name is shown at once.
    moved = await client.send_event(
        f"{stream}.update", {"id": theirs.pk, "project": rows["mine"].pk}
    )
    assert moved["data"]["row"]["project__name"] == rows["mine"].name
    created = await client.send_event(
        f"{stream}.create", {"title": "t", "slug": "s", "project": rows["mine"].pk}
    )
    assert created["data"]["row"]["project__name"] == rows["mine"].name


@override_bindings(DRFTaskBinding, ListScopedProjectBinding, ListScopedLabelBinding)
async def test_drf_serializer_relations_link_only_rows_the_related_stream_lists(
    alice_and_bobs_rows, db_call
):
    client, _alice, rows = alice_and_bobs_rows
    stream = "testapp.DRFTask"
    hidden = await client.send_event(f"{stream}.create", new_task(project=rows["theirs"].pk))
    missing = await client.send_event(f"{stream}.create", new_task(project=MISSING))
    assert hidden["error"]["fields"] == {
        "project": [f'Invalid pk "{rows["theirs"].pk}" - object does not exist.']
    }
    assert missing["error"]["fields"] == {
        "project": [f'Invalid pk "{MISSING}" - object does not exist.']
    }
    labels = await client.send_event(f"{stream}.create", new_task(labels=[rows["their_label"].pk]))
    assert labels["error"]["fields"] == {
        "labels": [f'Invalid pk "{rows["their_label"].pk}" - object does not exist.']
    }
    assert await db_call(Task.objects.count) == 0


# -- booleans (issue 21, point 9) ---------------------------------------------------------

BOOLEAN = "Must be a valid boolean."


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("maybe", BOOLEAN),
        ("true", BOOLEAN),
        ("on", BOOLEAN),
        (1, BOOLEAN),
        (0, BOOLEAN),
        ([], BOOLEAN),
        ({}, BOOLEAN),
        (None, "This field cannot be null."),
    ],
)
async def test_a_boolean_field_takes_only_json_booleans(make_client, db_call, value, message):
    user = await db_call(factories.UserFactory)
    task = await db_call(factories.TaskFactory, owner=user, done=True)
    client = await make_client(user)
    created = await client.send_event(
        "testapp.Task.create", {"slug": "s", "title": "t", "done": value}
    )
    updated = await client.send_event("testapp.Task.update", {"id": task.pk, "done": value})
    for reply in (created, updated):
        assert reply["error"] == {
            "code": "invalid",
            "message": "Invalid data.",
            "fields": {"done": [message]},
        }
    assert await db_call(lambda: list(Task.objects.values_list("pk", "done"))) == [(task.pk, True)]


async def test_json_booleans_are_stored(make_client, db_call):
    user = await db_call(factories.UserFactory)
    client = await make_client(user)
    done = await client.send_event("testapp.Task.create", {"slug": "a", "title": "t", "done": True})
    undone = await client.send_event(
        "testapp.Task.update", {"id": done["data"]["id"], "done": False}
    )
    omitted = await client.send_event("testapp.Task.create", {"slug": "b", "title": "t"})
    assert (done["data"]["row"]["done"], undone["data"]["row"]["done"]) == (True, False)
    assert omitted["data"]["row"]["done"] is False  # the model's default
    stored = await db_call(lambda: list(Task.objects.order_by("slug").values_list("slug", "done")))
    assert stored == [("a", False), ("b", False)]


def test_a_boolean_over_http_is_a_json_boolean(transactional_db):
    user = factories.UserFactory()
    client = Client()
    client.force_login(user)
    refused = client.post(
        "/api/testapp.Task/",
        data={"slug": "s", "title": "t", "done": "yes"},
        content_type="application/json",
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"] == {"done": [BOOLEAN]}
    created = client.post(
        "/api/testapp.Task/",
        data={"slug": "s", "title": "t", "done": True},
        content_type="application/json",
    )
    assert created.status_code == 201 and created.json()["row"]["done"] is True
