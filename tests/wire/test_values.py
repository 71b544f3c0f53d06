"""[syncbind/_wire/values.py] Values a database cannot store or compare are ``invalid`` before
they reach it: found by the checks themselves (marked ``unit``: no database, no server), then
over the WebSocket.

Issue 11, points 3, 9 and 10: each value below once gave ``server_error`` and a
logged traceback (or, for out-of-range datetimes on PostgreSQL, was stored and
then broke every later read). Each case is sent over the WebSocket to an
owner-scoped binding with datetime, decimal and JSON fields; the reply must be
``invalid`` naming the field, nothing may be logged as an error, nothing
written, and the connection must keep working.
"""

import datetime
import decimal
import json
import logging
import math

import pytest
from django.db import connection, models, transaction
from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQL
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLite
from django.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from syncbind._wire import protocol, values
from syncbind._wire.jsonsafe import to_json_safe
from syncbind.testing import override_bindings
from tests import factories
from tests.testapp.bindings import TaskBinding
from tests.testapp.models import Task

# Unit: no database, no server.

# Explicit alphabets: st.text()'s default writes a codec cache to .hypothesis/.
CHARS = st.characters(blacklist_categories=("Cs",))
FAST = settings(database=None, deadline=None, max_examples=150)

TEXT = "Text must be valid Unicode without NUL characters."
NUMBER = "NaN and Infinity are not numbers this API accepts."
NAN = values.loads("NaN")
INF = values.loads("Infinity")
MINUS_INF = values.loads("-Infinity")


def nested(levels, leaf=1, kind="list"):
    value = leaf
    for _ in range(levels):
        value = [value] if kind == "list" else {"k": value}
    return value


def nested_message(limit):
    return f"Values may be nested at most {limit} levels deep."


# -- loads -------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "check"),
    [("NaN", math.isnan), ("Infinity", lambda v: v == math.inf), ("-Infinity", lambda v: v < 0)],
)
def test_loads_keeps_json_constants_recognisable(text, check):
    value = values.loads(text)
    assert isinstance(value, values.NonFinite)
    assert isinstance(value, float)
    assert math.isinf(value) or math.isnan(value)
    assert check(value)


@pytest.mark.unit
def test_loads_leaves_ordinary_numbers_alone_and_reads_bytes():
    assert values.loads(b'{"a": [1, 2.5, -0.0]}') == {"a": [1, 2.5, -0.0]}
    assert not any(isinstance(v, values.NonFinite) for v in values.loads("[1, 2.5, 1e308]"))


HUGE = ["1e400", "-1e400", "1.5e99999", "10E+308", "1" + "0" * 309 + ".5"]


@pytest.mark.unit
@pytest.mark.parametrize("literal", HUGE)
def test_number_literals_that_overflow_a_float_are_refused(literal):
    data = values.loads('{"n": ' + literal + "}")
    assert values.problems(data) == {"n": [NUMBER]}


@pytest.mark.unit
@pytest.mark.parametrize("literal", HUGE)
def test_a_frame_with_an_overflowing_number_is_invalid(literal):
    # The frame has no escape, constant or deep nesting: only the number makes it checked.
    text = '{"event": "a.b", "data": {"meta": {"n": ' + literal + "}}}"
    with pytest.raises(protocol.InvalidFrame) as info:
        protocol.parse_frame(text, max_bytes=1000)
    assert info.value.error.fields == {"meta": [NUMBER]}


# -- problems ----------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("data", "found"),
    [
        ({}, {}),
        ({"s": "ok", "n": 1, "f": -1.5, "b": True, "z": None, "l": [], "d": {}}, {}),
        ({"s": "\U0001f600 caf\u00e9 \t\n\x01\x7f"}, {}),
        ({"s": "a\x00b"}, {"s": [TEXT]}),
        ({"s": "\x00"}, {"s": [TEXT]}),
        ({"s": "\ud800"}, {"s": [TEXT]}),
        ({"s": "x\udfffy"}, {"s": [TEXT]}),
        ({"l": ["ok", ["ok", "\x00"]]}, {"l": [TEXT]}),
        ({"d": {"ok": {"k\x00": 1}}}, {"d": [TEXT]}),
        ({"d": {"\ud800": 1}}, {"d": [TEXT]}),
        ({"n": NAN}, {"n": [NUMBER]}),
        ({"n": INF}, {"n": [NUMBER]}),
        ({"n": {"x": [MINUS_INF]}}, {"n": [NUMBER]}),
        ({"k\x00": 1}, {"__all__": [TEXT]}),
        ({"\ud800": "fine"}, {"__all__": [TEXT]}),
        (
            {"k\x00": NAN, "a": "\x00", "b": NAN, "c": "ok"},
            {"__all__": [TEXT], "a": [TEXT], "b": [NUMBER]},
        ),
        ({"filters": {"a": "\x00", "b": "ok", "c": [NAN]}}, {"a": [TEXT], "c": [NUMBER]}),
        ({"filters": {"bad\x00": "ok"}}, {"bad\x00": [TEXT]}),
        ({"filters": {"\ud800": NAN}}, {"\ud800": [TEXT]}),  # the name's problem wins
        ({"filters": "a\x00"}, {"filters": [TEXT]}),  # not an object: an ordinary value
        ({"filters": ["\x00"]}, {"filters": [TEXT]}),
        ({"filters": {}}, {}),
    ],
)
def test_problems_names_each_bad_value_by_its_top_level_key(data, found):
    assert values.problems(data) == found


@pytest.mark.unit
def test_problems_reports_one_message_per_key():
    found = values.problems({"s": ["\x00", NAN, "\ud800"]})
    assert list(found) == ["s"]
    assert len(found["s"]) == 1
    assert found["s"][0] in {TEXT, NUMBER}


@pytest.mark.unit
@pytest.mark.parametrize("kind", ["list", "dict"])
def test_default_depth_limit_is_32_levels_counting_data_itself(kind):
    assert values.problems({"k": nested(31, kind=kind)}) == {}
    assert values.problems({"k": nested(32, kind=kind)}) == {"k": [nested_message(32)]}
    # An empty container at the last level counts as a level too.
    assert values.problems({"k": nested(31, leaf=[], kind=kind)}) == {"k": [nested_message(32)]}


@pytest.mark.unit
def test_filter_values_are_one_level_deeper():
    assert values.problems({"filters": {"f": nested(30)}}) == {}
    assert values.problems({"filters": {"f": nested(31)}}) == {"f": [nested_message(32)]}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("data", "found"),
    [
        ({"k": [[1]]}, {}),
        ({"k": [[[1]]]}, {"k": [nested_message(3)]}),
        ({"k": {"a": {"b": 1}}}, {}),
        ({"k": {"a": {"b": {}}}}, {"k": [nested_message(3)]}),
        ({"k": [1, [2, [3]]]}, {"k": [nested_message(3)]}),
        ({"filters": {"f": [1]}}, {}),
        ({"filters": {"f": [[1]]}}, {"f": [nested_message(3)]}),
    ],
)
def test_max_json_depth_comes_from_the_settings(settings, data, found):
    settings.SYNCBIND = {"MAX_JSON_DEPTH": 3}
    assert values.problems(data) == found


@pytest.mark.unit
@settings(parent=FAST, max_examples=60)
@given(levels=st.integers(0, 40), kinds=st.lists(st.sampled_from(["list", "dict"]), min_size=40))
def test_depth_is_refused_exactly_past_the_limit(levels, kinds):
    value = "leaf"
    for kind in kinds[:levels]:
        value = [value] if kind == "list" else {"k": value}
    found = values.problems({"v": value})
    assert found == ({} if levels < 32 else {"v": [nested_message(32)]})


# -- worth_checking ----------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "worth"),
    [
        ('{"event": "a.b", "data": {"s": "plain"}}', False),
        ('{"event": "a.b", "data": {"s": "caf\u00e9"}}', False),  # raw UTF-8, no escape
        ('{"event": "a.b", "data": {"s": "\\u0041"}}', True),
        ('{"event": "a.b", "data": {"n": NaN}}', True),
        ('{"event": "a.b", "data": {"n": -Infinity}}', True),
        ('{"event": "a.b", "data": {"s": "NaN"}}', True),  # inside a string: harmless extra work
        ("[" * 32, False),
        ("[" * 33, True),
        ("{" * 16 + "[" * 17, True),
        ("{" * 16 + "[" * 16, False),
    ],
)
def test_worth_checking(text, worth):
    assert values.worth_checking(text) is worth


@pytest.mark.unit
def test_worth_checking_follows_max_json_depth(settings):
    settings.SYNCBIND = {"MAX_JSON_DEPTH": 2}
    assert values.worth_checking("[[") is False
    assert values.worth_checking("[[{") is True


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(CHARS | st.sampled_from(["\x00", "\ud800", "\udc00"]))
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(CHARS, max_size=3) | st.just("\x00"), children, max_size=3)
    ),
    max_leaves=40,
)


@pytest.mark.unit
@FAST
@given(
    data=st.dictionaries(st.text(CHARS, max_size=5) | st.just("filters"), JSON_VALUES, max_size=4),
    raw=st.booleans(),
)
def test_frames_not_worth_checking_have_no_problems(data, raw):
    # A WebSocket text frame is UTF-8: a lone surrogate can only come escaped.
    text = json.dumps({"event": "a.b", "data": data}, ensure_ascii=not raw)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps({"event": "a.b", "data": data})
    if not values.worth_checking(text):
        assert values.problems(values.loads(text)["data"]) == {}


# -- datetimes ---------------------------------------------------------------------

UTC = datetime.UTC


def zone(hours):
    return datetime.timezone(datetime.timedelta(hours=hours))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (values.EARLIEST, True),
        (values.LATEST, True),
        (values.EARLIEST - datetime.timedelta(microseconds=1), False),
        (values.LATEST + datetime.timedelta(microseconds=1), False),
        (datetime.datetime(2024, 2, 29, 12, tzinfo=UTC), True),
        (datetime.datetime(1, 1, 1, tzinfo=UTC), False),
        (datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), False),
        (datetime.datetime(1, 1, 2, 5, tzinfo=zone(5)), True),  # 0001-01-02 00:00 UTC
        (datetime.datetime(1, 1, 2, 4, 59, tzinfo=zone(5)), False),
        (datetime.datetime(9999, 12, 30, 22, 59, tzinfo=zone(-1)), True),  # 23:59 UTC
        (datetime.datetime(9999, 12, 30, 23, 0, tzinfo=zone(-1)), False),
        # Converting these to UTC overflows datetime: refused, not raised.
        (datetime.datetime(1, 1, 1, tzinfo=zone(5)), False),
        (datetime.datetime(9999, 12, 31, 23, 59, tzinfo=zone(-1)), False),
        (datetime.datetime(1, 1, 2), True),
        (datetime.datetime(1, 1, 1, 23, 59, 59), False),
        (datetime.datetime(9999, 12, 30), True),
        (datetime.datetime(9999, 12, 31), False),
        (datetime.datetime.max, False),
        (datetime.datetime.min, False),
    ],
)
def test_datetime_in_range(value, ok):
    assert values.datetime_in_range(value) is ok


@pytest.mark.unit
def test_a_naive_datetime_during_the_last_allowed_day_is_in_range():
    assert values.datetime_in_range(datetime.datetime(9999, 12, 30, 23, 0, tzinfo=UTC))
    assert values.datetime_in_range(datetime.datetime(9999, 12, 30, 12, 0))


# -- decimals ----------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("0", True),
        ("-0", True),
        ("0E-5000", True),
        ("0E+5000", True),
        ("1.5", True),
        ("9.99E+999", True),  # 1e-1000 <= |value| < 1e1000
        ("-9.99E+999", True),
        ("1E+1000", False),
        ("5E+1000", False),
        ("1E-1000", True),
        ("1E-1001", False),
        ("123456E+994", True),  # adjusted exponent 999
        ("123456E+995", False),
        ("NaN", False),
        ("sNaN", False),
        ("Infinity", False),
        ("-Infinity", False),
    ],
)
def test_decimal_in_range_limits_the_adjusted_exponent(text, ok):
    assert values.decimal_in_range(decimal.Decimal(text)) is ok


@pytest.mark.unit
@pytest.mark.parametrize(
    ("value", "places", "digits", "text"),
    [
        ("0E-18", 18, 36, "0.000000000000000000"),
        ("0E-18", None, None, "0.000000000000000000"),
        ("1E+3", None, None, "1000"),
        ("1E+3", 2, 8, "1000.00"),
        ("1.5", 2, 8, "1.50"),
        ("2.346", 2, 8, "2.35"),
        ("-7", 3, None, "-7.000"),
        ("123.456", 0, 5, "123"),
        ("1E-50", 2, 8, "0.00"),
        # More digits than decimal's default 28-digit context could quantize.
        ("1E+30", 2, 8, "1" + "0" * 30 + ".00"),
        ("9" * 40, 0, 40, "9" * 40),
        ("9.999", 2, 4, "10.00"),
    ],
)
def test_format_decimal(value, places, digits, text):
    assert values.format_decimal(decimal.Decimal(value), places, digits) == text


@pytest.mark.unit
@FAST
@given(
    coefficient=st.integers(-(10**40), 10**40),
    exponent=st.integers(-60, 30),
    places=st.none() | st.integers(0, 30),
    digits=st.none() | st.integers(1, 60),
)
def test_format_decimal_has_exactly_the_places_and_no_exponent(
    coefficient, exponent, places, digits
):
    value = decimal.Decimal(f"{coefficient}E{exponent}")
    text = values.format_decimal(value, places, digits)
    assert "E" not in text and "e" not in text
    with decimal.localcontext(prec=500):
        if places is None:
            assert decimal.Decimal(text) == value
            return
        fraction = text.partition(".")[2]
        assert len(fraction) == places
        assert ("." in text) is (places > 0)
        assert abs(decimal.Decimal(text) - value) <= decimal.Decimal(5).scaleb(-places - 1)


# -- integer columns and booleans (issue 21, point 9) ----------------------------------

# Each backend's operations, whichever database the tests run on.
POSTGRESQL = PostgreSQL.ops_class(connection=None)
SQLITE = SQLite.ops_class(connection=None)
I16, I32, I64 = (-(2**15), 2**15 - 1), (-(2**31), 2**31 - 1), (-(2**63), 2**63 - 1)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("field", "postgresql"),
    [
        (models.SmallIntegerField(), I16),
        (models.IntegerField(), I32),
        (models.BigIntegerField(), I64),
        (models.PositiveSmallIntegerField(), I16),  # the column's type, not its check
        (models.PositiveIntegerField(), I32),
        (models.AutoField(primary_key=True), I32),
        (models.BigAutoField(primary_key=True), I64),
        (Task._meta.get_field("project"), I32),  # the related row's AutoField
        (Task._meta.get_field("labels"), I32),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, models.Field) else None,
)
def test_each_integer_column_has_its_range(field, postgresql):
    assert values.column_range(field, POSTGRESQL) == postgresql
    assert values.column_range(field, SQLITE) == I64


@pytest.mark.unit
@pytest.mark.parametrize(
    "field", [models.DecimalField(), models.CharField(), models.FloatField(), models.UUIDField()]
)
def test_other_columns_have_no_integer_range(field):
    assert values.column_range(field, POSTGRESQL) is None
    assert values.out_of_range(field, [2**70], POSTGRESQL) is None


@pytest.mark.unit
@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (32767, None),
        (32768, "Ensure this value is less than or equal to 32767."),
        (-32769, "Ensure this value is greater than or equal to -32768."),
        ("32768", "Ensure this value is less than or equal to 32767."),
        (" 4e4 ", "Ensure this value is less than or equal to 32767."),
        (4e4, "Ensure this value is less than or equal to 32767."),
        ("1e999999999", "Ensure this value is less than or equal to 32767."),
        ("not a number", None),  # the field's own validation answers
        ("NaN", None),
        (True, None),
        (None, None),
        ([40000], None),
    ],
)
def test_out_of_range_reads_numbers_as_a_form_would(item, problem):
    assert values.out_of_range(models.SmallIntegerField(), [1, item], POSTGRESQL) == problem


@pytest.mark.unit
@given(st.integers())
@FAST
def test_out_of_range_is_exactly_outside_the_column(number):
    inside = I64[0] <= number <= I64[1]
    assert (values.out_of_range(models.BigIntegerField(), [number], SQLITE) is None) == inside


@pytest.mark.unit
@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_booleans(value):
    assert values.as_boolean(value) is value
    assert values.as_boolean(json.dumps(value), text=True) is value


@pytest.mark.unit
@pytest.mark.parametrize("value", ["true", "false", "True", "1", "on", "", 1, 0, None, [], {}])
def test_anything_else_is_not_a_boolean(value):
    with pytest.raises(ValueError, match="Must be a valid boolean."):
        values.as_boolean(value)
    if value not in ("true", "false"):
        with pytest.raises(ValueError, match="Must be a valid boolean."):
            values.as_boolean(value, text=True)


# Through a consumer, on the test database.


TASK = "testapp.Task"
SURROGATE = "\ud800"


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


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
async def test_datetimes_within_range_with_offsets_round_trip(task_client):
    client, _, _ = task_client
    reply = await client.send_event(
        f"{TASK}.create", {"slug": "s1", "title": "t", "due": "9999-12-29T23:59:59-01:00"}
    )
    assert reply["data"]["row"]["due"] == "9999-12-30T00:59:59Z"


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
async def test_decimal_zero_is_written_without_an_exponent(task_client):
    client, _, task = task_client
    row = (await client.send_event(f"{TASK}.retrieve", {"id": task.pk}))["data"]
    assert row["estimate"] == "0.000000000000000000"


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
@override_bindings(RangeTaskBinding)
async def test_negative_integers_beyond_their_column_are_invalid(task_client):
    client, _, _ = task_client
    reply = await client.send_event("testapp.RangeTask.list", {"filters": {"id__in": [-HUGE]}})
    assert reply["error"]["fields"] == {
        "id__in": [f"Ensure this value is greater than or equal to {-largest() - 1}."]
    }


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
def test_an_id_beyond_its_column_over_http_is_400(transactional_db):
    user = factories.UserFactory()
    client = Client()
    client.force_login(user)
    response = client.get(f"/api/testapp.Task/{HUGE}/")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "id": [f"Ensure this value is less than or equal to {largest()}."]
    }


@pytest.mark.django_db(transaction=True)
async def test_numbers_and_lists_are_accepted_by_in_filters(task_client):
    client, _, task = task_client
    for value in (task.priority, [task.priority, 7], f"{task.priority},7"):
        page = await client.send_event(f"{TASK}.list", {"filters": {"priority__in": value}})
        assert [row["id"] for row in page["data"]["rows"]] == [task.pk], value


@pytest.mark.django_db(transaction=True)
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
