"""syncbind/_wire/values.py: the values no database can store, found before they reach one.

Part of the fast unit layer (tests/unit): no database, no server.
"""

import datetime
import decimal
import json
import math

import pytest
from django.db import models
from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQL
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLite
from hypothesis import given, settings
from hypothesis import strategies as st

from syncbind._wire import protocol, values
from tests.testapp.models import Task

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


def test_loads_leaves_ordinary_numbers_alone_and_reads_bytes():
    assert values.loads(b'{"a": [1, 2.5, -0.0]}') == {"a": [1, 2.5, -0.0]}
    assert not any(isinstance(v, values.NonFinite) for v in values.loads("[1, 2.5, 1e308]"))


HUGE = ["1e400", "-1e400", "1.5e99999", "10E+308", "1" + "0" * 309 + ".5"]


@pytest.mark.parametrize("literal", HUGE)
def test_number_literals_that_overflow_a_float_are_refused(literal):
    data = values.loads('{"n": ' + literal + "}")
    assert values.problems(data) == {"n": [NUMBER]}


@pytest.mark.parametrize("literal", HUGE)
def test_a_frame_with_an_overflowing_number_is_invalid(literal):
    # The frame has no escape, constant or deep nesting: only the number makes it checked.
    text = '{"event": "a.b", "data": {"meta": {"n": ' + literal + "}}}"
    with pytest.raises(protocol.InvalidFrame) as info:
        protocol.parse_frame(text, max_bytes=1000)
    assert info.value.error.fields == {"meta": [NUMBER]}


# -- problems ----------------------------------------------------------------------


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


def test_problems_reports_one_message_per_key():
    found = values.problems({"s": ["\x00", NAN, "\ud800"]})
    assert list(found) == ["s"]
    assert len(found["s"]) == 1
    assert found["s"][0] in {TEXT, NUMBER}


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_default_depth_limit_is_32_levels_counting_data_itself(kind):
    assert values.problems({"k": nested(31, kind=kind)}) == {}
    assert values.problems({"k": nested(32, kind=kind)}) == {"k": [nested_message(32)]}
    # An empty container at the last level counts as a level too.
    assert values.problems({"k": nested(31, leaf=[], kind=kind)}) == {"k": [nested_message(32)]}


def test_filter_values_are_one_level_deeper():
    assert values.problems({"filters": {"f": nested(30)}}) == {}
    assert values.problems({"filters": {"f": nested(31)}}) == {"f": [nested_message(32)]}


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


@settings(parent=FAST, max_examples=60)
@given(levels=st.integers(0, 40), kinds=st.lists(st.sampled_from(["list", "dict"]), min_size=40))
def test_depth_is_refused_exactly_past_the_limit(levels, kinds):
    value = "leaf"
    for kind in kinds[:levels]:
        value = [value] if kind == "list" else {"k": value}
    found = values.problems({"v": value})
    assert found == ({} if levels < 32 else {"v": [nested_message(32)]})


# -- worth_checking ----------------------------------------------------------------


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


def test_a_naive_datetime_during_the_last_allowed_day_is_in_range():
    assert values.datetime_in_range(datetime.datetime(9999, 12, 30, 23, 0, tzinfo=UTC))
    assert values.datetime_in_range(datetime.datetime(9999, 12, 30, 12, 0))


# -- decimals ----------------------------------------------------------------------


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


@pytest.mark.parametrize(
    "field", [models.DecimalField(), models.CharField(), models.FloatField(), models.UUIDField()]
)
def test_other_columns_have_no_integer_range(field):
    assert values.column_range(field, POSTGRESQL) is None
    assert values.out_of_range(field, [2**70], POSTGRESQL) is None


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


@given(st.integers())
@FAST
def test_out_of_range_is_exactly_outside_the_column(number):
    inside = I64[0] <= number <= I64[1]
    assert (values.out_of_range(models.BigIntegerField(), [number], SQLITE) is None) == inside


@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_booleans(value):
    assert values.as_boolean(value) is value
    assert values.as_boolean(json.dumps(value), text=True) is value


@pytest.mark.parametrize("value", ["true", "false", "True", "1", "on", "", 1, 0, None, [], {}])
def test_anything_else_is_not_a_boolean(value):
    with pytest.raises(ValueError, match="Must be a valid boolean."):
        values.as_boolean(value)
    if value not in ("true", "false"):
        with pytest.raises(ValueError, match="Must be a valid boolean."):
            values.as_boolean(value, text=True)
