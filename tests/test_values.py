"""[syncbind/_wire/values.py] Values a database cannot store or compare are ``invalid`` before they reach it.

Issue 11, points 3, 9 and 10: each value below once gave ``server_error`` and a
logged traceback (or, for out-of-range datetimes on PostgreSQL, was stored and
then broke every later read). Each case is sent over the WebSocket to an
owner-scoped binding with datetime, decimal and JSON fields; the reply must be
``invalid`` naming the field, nothing may be logged as an error, nothing
written, and the connection must keep working.
"""

import logging

import pytest
from django.db import connection, transaction
from django.test import Client

from syncbind._wire.jsonsafe import to_json_safe
from syncbind.testing import override_bindings
from tests import factories
from tests.testapp.bindings import TaskBinding
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

TASK = "testapp.Task"
SURROGATE = "\ud800"


def nested(levels):
    value = 1
    for _ in range(levels):
        value = [value]
    return value


# (action, data, the field named in the error)
CASES = [
    ("create", {"due": "9999-12-31T23:59:59-01:00"}, "due"),
    ("create", {"due": "0001-01-01T00:00:00+01:00"}, "due"),
    ("create", {"title": f"a{SURROGATE}b"}, "title"),
    ("create", {"title": "a\x00b"}, "title"),
    ("create", {"meta": {"note": "x\x00y"}}, "meta"),
    ("create", {"meta": {"n": float("nan")}}, "meta"),
    ("create", {"meta": {"n": float("inf")}}, "meta"),
    ("create", {"meta": {f"key{SURROGATE}": 1}}, "meta"),
    ("create", {"meta": nested(40)}, "meta"),
    ("create", {"estimate": "1" * 40}, "estimate"),
    ("create", {"priority": 2**70}, "priority"),
    ("list", {"filters": {"title__icontains": SURROGATE}}, "title__icontains"),
    ("list", {"filters": {"title__icontains": "x" * 100_000}}, "title__icontains"),
    ("list", {"filters": {"estimate__lt": "1e-999999999"}}, "estimate__lt"),
    ("list", {"filters": {"estimate__lt": "1e999999999"}}, "estimate__lt"),
    ("list", {"filters": {"priority__in": {"a": 1}}}, "priority__in"),
    ("list", {"filters": {"due__lt": "9999-12-31T23:59:59-01:00"}}, "due__lt"),
    ("list", {"page": "1" * 5000}, "page"),
    ("list", {"limit": "9" * 5000}, "limit"),
    ("list", {"page": 10**15}, "page"),
    ("search", {"query": f"a{SURROGATE}"}, "query"),
    ("search", {"query": "a\x00"}, "query"),
    ("retrieve", {"id": f"1{SURROGATE}"}, "id"),
]


def deep(levels):
    text = "1"
    for _ in range(levels):
        text = f"[{text}]"
    return text


@pytest.fixture
async def task_client(make_client, db_call):
    user = await db_call(factories.UserFactory)
    task = await db_call(factories.TaskFactory, owner=user)
    client = await make_client(user)
    return client, user, task


def rows():
    return sorted(Task.objects.values_list("id", "title", "priority", "meta", "due", "estimate"))


@pytest.mark.parametrize(("action", "data", "field"), CASES, ids=range(len(CASES)))
async def test_values_a_database_cannot_take_are_invalid(
    task_client, db_call, caplog, action, data, field
):
    client, user, task = task_client
    base = {"slug": "new-slug", "title": "t"} if action == "create" else {}
    before = await db_call(rows)
    with caplog.at_level(logging.WARNING, logger="syncbind"):
        reply = await client.send_event(f"{TASK}.{action}", {**base, **data})
    assert reply["error"]["code"] == "invalid", reply
    assert list(reply["error"]["fields"]) == [field], reply
    assert all(isinstance(m, str) for m in reply["error"]["fields"][field])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await db_call(rows) == before
    assert (await client.send_event(f"{TASK}.retrieve", {"id": task.pk}))["data"]["id"] == task.pk


async def test_nesting_deeper_than_the_parser_allows_is_a_bad_request(task_client):
    client, _, _ = task_client
    # Deeper than json's parser goes on every supported Python (3.13 parses 5,000 levels;
    # what it parses is refused as ``invalid`` by MAX_JSON_DEPTH instead).
    levels = 100_000
    frame = '{"event": "testapp.Task.create", "data": {"meta": ' + "[" * levels + "]" * levels
    frame += "}}"
    await client.send_raw(frame)
    reply = await client.receive()
    assert reply["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    "url",
    [
        "/api/testapp.Task/?page=" + "1" * 5000,
        "/api/testapp.Task/?limit=" + "1" * 5000,
        "/api/testapp.Task/?title__icontains=%00",
    ],
)
def test_the_same_values_over_http_are_400(url, transactional_db):
    user = factories.UserFactory()
    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid"


# -- values that are fine, and must work -----------------------------------------------


async def test_datetimes_within_range_with_offsets_round_trip(task_client):
    client, _, _ = task_client
    reply = await client.send_event(
        f"{TASK}.create", {"slug": "s1", "title": "t", "due": "9999-12-29T23:59:59-01:00"}
    )
    assert reply["data"]["row"]["due"] == "9999-12-30T00:59:59Z"


async def test_a_decimal_with_every_digit_its_field_allows(task_client, db_call):
    client, _, _ = task_client
    value = "123456789012345678.123456789012345678"  # DecimalField(36, 18): all 36 digits
    reply = await client.send_event(
        f"{TASK}.create", {"slug": "s2", "title": "t", "estimate": value}
    )
    if "error" in reply:
        # SQLite keeps 15 significant digits of a decimal: refused rather than rounded.
        assert reply["error"]["fields"] == {
            "estimate": ["This database keeps at most 15 significant digits of a decimal."]
        }
        return
    assert reply["data"]["row"]["estimate"] == value
    assert str(await db_call(lambda: Task.objects.get(slug="s2").estimate)) == value


async def test_decimal_zero_is_written_without_an_exponent(task_client):
    client, _, task = task_client
    row = (await client.send_event(f"{TASK}.retrieve", {"id": task.pk}))["data"]
    assert row["estimate"] == "0.000000000000000000"


async def test_a_json_field_with_a_default_may_be_omitted_or_empty(task_client, db_call):
    client, _, _ = task_client
    omitted = await client.send_event(f"{TASK}.create", {"slug": "j1", "title": "t"})
    assert omitted["data"]["row"]["meta"] == {}
    empty = await client.send_event(f"{TASK}.create", {"slug": "j2", "title": "t", "meta": {}})
    assert empty["data"]["row"]["meta"] == {}
    listed = await client.send_event(f"{TASK}.create", {"slug": "j3", "title": "t", "meta": []})
    assert listed["data"]["row"]["meta"] == []
    null = await client.send_event(f"{TASK}.create", {"slug": "j4", "title": "t", "meta": None})
    assert null["error"]["fields"] == {"meta": ["This field cannot be null."]}
    assert await db_call(
        lambda: sorted(Task.objects.filter(slug__startswith="j").values_list("slug", flat=True))
    ) == [
        "j1",
        "j2",
        "j3",
    ]


async def test_update_touches_auto_now_fields(task_client, db_call):
    client, _, task = task_client
    before = (await client.send_event(f"{TASK}.retrieve", {"id": task.pk}))["data"]["updated"]
    reply = await client.send_event(f"{TASK}.update", {"id": task.pk, "title": "changed"})
    assert reply["data"]["row"]["updated"] > before
    stored = await db_call(lambda: Task.objects.get(pk=task.pk).updated)
    assert to_json_safe(stored) == reply["data"]["row"]["updated"]


# -- integers beyond their column (issue 21, point 9) -------------------------------------

HUGE = 2**70


class RangeTaskBinding(TaskBinding):
    stream = "testapp.RangeTask"
    filterset_fields = {
        "id": ["exact", "in"],
        "priority": ["exact", "in", "lt", "range"],
        "labels": ["exact"],
        "project": ["exact"],
    }


def largest():
    """What SQLite stores in any integer column; PostgreSQL's integer (IntegerField, AutoField)."""
    return {"sqlite": 2**63 - 1, "postgresql": 2**31 - 1}[connection.vendor]


# (action, data, the field named in the error); each reached SQL with the number.
RANGE_CASES = [
    ("create", {"labels": [HUGE]}, "labels"),
    ("create", {"labels": [1, str(HUGE)]}, "labels"),
    ("create", {"project": HUGE}, "project"),
    ("create", {"priority": HUGE}, "priority"),
    ("list", {"filters": {"priority__in": [HUGE]}}, "priority__in"),
    ("list", {"filters": {"priority__in": f"1,{HUGE}"}}, "priority__in"),
    ("list", {"filters": {"priority": HUGE}}, "priority"),
    ("list", {"filters": {"priority__lt": float(HUGE)}}, "priority__lt"),
    ("list", {"filters": {"priority__range": [0, HUGE]}}, "priority__range"),
    ("list", {"filters": {"id__in": [HUGE]}}, "id__in"),
    ("list", {"filters": {"id": str(HUGE)}}, "id"),
    ("list", {"filters": {"labels": [HUGE]}}, "labels"),
    ("list", {"filters": {"project": HUGE}}, "project"),
    ("retrieve", {"id": HUGE}, "id"),
    ("retrieve", {"id": str(HUGE)}, "id"),
    ("update", {"id": HUGE, "title": "x"}, "id"),
    ("delete", {"id": HUGE}, "id"),
    ("subscribe", {"id": HUGE}, "id"),
]


@pytest.mark.parametrize(("action", "data", "field"), RANGE_CASES, ids=range(len(RANGE_CASES)))
@override_bindings(RangeTaskBinding)
async def test_integers_beyond_their_column_are_invalid(
    task_client, db_call, caplog, action, data, field
):
    client, user, task = task_client
    base = {"slug": "new-slug", "title": "t"} if action == "create" else {}
    before = await db_call(rows)
    with caplog.at_level(logging.WARNING, logger="syncbind"):
        reply = await client.send_event(f"testapp.RangeTask.{action}", {**base, **data})
    assert reply["error"] == {
        "code": "invalid",
        "message": "Invalid data.",
        "fields": {field: [f"Ensure this value is less than or equal to {largest()}."]},
    }
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await db_call(rows) == before
    assert (await client.send_event(f"{TASK}.retrieve", {"id": task.pk}))["data"]["id"] == task.pk


@override_bindings(RangeTaskBinding)
async def test_negative_integers_beyond_their_column_are_invalid(task_client):
    client, _, _ = task_client
    reply = await client.send_event("testapp.RangeTask.list", {"filters": {"id__in": [-HUGE]}})
    assert reply["error"]["fields"] == {
        "id__in": [f"Ensure this value is greater than or equal to {-largest() - 1}."]
    }


@override_bindings(RangeTaskBinding)
async def test_each_column_has_its_own_range(task_client, db_call):
    """2**40 fits SQLite's integers but not PostgreSQL's ``integer`` (IntegerField, AutoField)."""
    client, user, task = task_client
    label = await db_call(factories.LabelFactory, owner=user)
    big = 2**40
    replies = [
        await client.send_event("testapp.RangeTask.list", {"filters": {"priority": big}}),
        await client.send_event("testapp.RangeTask.list", {"filters": {"id__in": [task.pk, big]}}),
        await client.send_event("testapp.RangeTask.retrieve", {"id": big}),
        await client.send_event(
            "testapp.RangeTask.create", {"slug": "s", "title": "t", "labels": [label.pk, big]}
        ),
    ]
    if connection.vendor == "postgresql":
        assert [reply["error"]["fields"] for reply in replies] == [
            {"priority": ["Ensure this value is less than or equal to 2147483647."]},
            {"id__in": ["Ensure this value is less than or equal to 2147483647."]},
            {"id": ["Ensure this value is less than or equal to 2147483647."]},
            {"labels": ["Ensure this value is less than or equal to 2147483647."]},
        ]
        return
    assert replies[0]["data"]["count"] == 0
    assert [row["id"] for row in replies[1]["data"]["rows"]] == [task.pk]
    assert replies[2]["error"]["code"] == "not_found"
    assert replies[3]["error"]["fields"] == {
        "labels": [f"Select a valid choice. {big} is not one of the available choices."]
    }


def test_an_id_beyond_its_column_over_http_is_400(transactional_db):
    user = factories.UserFactory()
    client = Client()
    client.force_login(user)
    response = client.get(f"/api/testapp.Task/{HUGE}/")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "id": [f"Ensure this value is less than or equal to {largest()}."]
    }


async def test_numbers_and_lists_are_accepted_by_in_filters(task_client):
    client, _, task = task_client
    for value in (task.priority, [task.priority, 7], f"{task.priority},7"):
        page = await client.send_event(f"{TASK}.list", {"filters": {"priority__in": value}})
        assert [row["id"] for row in page["data"]["rows"]] == [task.pk], value


async def test_a_delete_in_a_rolled_back_savepoint_pushes_nothing(task_client, db_call):
    client, _, task = task_client
    await client.send_event(f"{TASK}.retrieve", {"id": task.pk})

    def delete_then_roll_back():
        with transaction.atomic():
            try:
                with transaction.atomic():
                    Task.objects.get(pk=task.pk).delete()
                    raise ValueError
            except ValueError:
                pass

    await db_call(delete_then_roll_back)
    await client.assert_nothing_more()
    assert await db_call(Task.objects.filter(pk=task.pk).exists)
