"""[syncbind/_wire/protocol.py] Event names, envelopes, size limits, replies and encoding
(marked ``unit``: no database, no server); then hostile input beyond the error table: floods,
the HTTP transport, and generated envelopes.

The invariants for every hostile case: the documented error (or a normal reply), no
traceback or internal detail in what is sent back, the connection keeps working,
and the database is unchanged unless the request was a legitimate write.
"""

import asyncio
import datetime
import decimal
import json
import logging
import string
import uuid
import warnings
from decimal import Decimal

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.test import Client
from django.utils.translation import gettext_lazy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NonInteractiveExampleWarning

from syncbind._transport import core
from syncbind._wire import protocol
from syncbind.exceptions import STATUS_BY_CODE, BadRequest, TooLarge, ValidationError
from tests import factories
from tests.testapp.models import Category, Note, Product

# Unit: no database, no server.

FAST = settings(database=None, deadline=None, max_examples=150)

TEXT = "Text must be valid Unicode without NUL characters."
NUMBER = "NaN and Infinity are not numbers this API accepts."

LETTERS = string.ascii_letters + "_"
NAME = st.builds(
    str.__add__,
    st.sampled_from(LETTERS),
    st.text(st.sampled_from(LETTERS + string.digits), max_size=8),
)
TAG = st.text(st.sampled_from(LETTERS + "0123456789-"), min_size=1, max_size=64)


def frame(**content):
    return json.dumps(content)


def parse(text, max_bytes=10_000):
    return protocol.parse_frame(text, max_bytes=max_bytes)


def invalid(text, max_bytes=10_000, binary=False):
    with pytest.raises(protocol.InvalidFrame) as info:
        protocol.parse_frame(text, max_bytes=max_bytes, binary=binary)
    return info.value


def error_of(exc):
    """The reply a transport makes of an InvalidFrame (as syncbind/http/views.py does)."""
    return protocol.error_reply(exc.error.as_error(), exc.event, exc.request_id)


# -- event names -------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("event", "parts"),
    [
        ("a.b", ("a", "b", None)),
        ("shop.Product.list", ("shop.Product", "list", None)),
        ("shop.Product.list#cheap", ("shop.Product", "list", "cheap")),
        ("a.b.c.d", ("a.b.c", "d", None)),
        ("_x._y", ("_x", "_y", None)),
        ("A1.b_2#Z-9_z", ("A1", "b_2", "Z-9_z")),
        ("testapp.Task.create#1", ("testapp.Task", "create", "1")),
        ("a.b#-", ("a", "b", "-")),
        ("a.b#" + "t" * 64, ("a", "b", "t" * 64)),
    ],
)
def test_parse_event_splits_stream_action_and_tag(event, parts):
    assert protocol.parse_event(event) == parts


@pytest.mark.unit
@pytest.mark.parametrize(
    "event",
    [
        "",
        "a",
        "list",
        ".a",
        "a.",
        "a..b",
        ".a.b",
        "1a.b",
        "a.1b",
        "a-b.c",
        "a.b-c",
        "a b.c",
        " a.b",
        "a.b ",
        "a.b\n",
        "\na.b",
        "a.b\t",
        "a.b#",
        "a.b##t",
        "a.b#t#u",
        "a.b#t.u",
        "a.b#t u",
        "a.b#t/u",
        "a.b#" + "t" * 65,
        "a.b#t\n",
        "#t",
        "a#t.b",
    ],
)
def test_malformed_event_names_are_bad_requests(event):
    with pytest.raises(BadRequest) as info:
        protocol.parse_event(event)
    assert info.value.message == "Malformed event name."
    assert info.value.code == "bad_request"


@pytest.mark.unit
@pytest.mark.parametrize(
    "event",
    [
        "shop.Pr\u043educt.list",  # Cyrillic o
        "\u0455hop.Product.list",  # Cyrillic dze, looks like s
        "shop.Product.l\u0456st",  # Cyrillic i
        "shop.Product.list#t\u0430g",  # Cyrillic a in the tag
        "\u212aey.list",  # KELVIN SIGN, which case-folds to k
        "\uff41.b",  # fullwidth a
        "a\uff0eb",  # fullwidth full stop
        "a\u2024b",  # one dot leader
        "a.\u200bb",  # zero-width space
        "a.b\u00a0",  # no-break space
        "caf\u00e9.list",  # a letter, but not an ASCII one
        "a.b#\u0661",  # ARABIC-INDIC DIGIT ONE
        "a.b#\u00b2",  # superscript two
        "a.b#\uff11",  # fullwidth digit one
        "a\u0307.b",  # combining dot above
    ],
)
def test_look_alike_unicode_is_not_an_event_name(event):
    with pytest.raises(BadRequest):
        protocol.parse_event(event)


@pytest.mark.unit
@FAST
@given(
    stream=st.lists(NAME, min_size=1, max_size=4).map(".".join),
    action=NAME,
    tag=st.none() | TAG,
)
def test_join_event_and_parse_event_round_trip(stream, action, tag):
    event = protocol.join_event(stream, action, tag)
    assert protocol.parse_event(event) == (stream, action, tag)


@pytest.mark.unit
def test_join_event_without_a_tag_has_no_hash():
    assert protocol.join_event("s.M", "list") == "s.M.list"
    assert protocol.join_event("s.M", "list", None) == "s.M.list"
    assert protocol.join_event("s.M", "list", "") == "s.M.list"
    assert protocol.join_event("s.M", "list", "x") == "s.M.list#x"


@pytest.mark.unit
def test_event_for_keeps_stream_and_tag():
    message = parse(frame(event="shop.Product.list#cheap"))
    assert message.event_for("subscribe") == "shop.Product.subscribe#cheap"
    assert parse(frame(event="shop.Product.list")).event_for("search") == "shop.Product.search"


# -- envelopes ---------------------------------------------------------------------


@pytest.mark.unit
def test_a_full_envelope_becomes_a_message():
    text = frame(event="shop.Product.list#t", data={"page": 2}, request_id="r-1")
    message = parse(text)
    assert message == protocol.Message(
        event="shop.Product.list#t",
        stream="shop.Product",
        action="list",
        tag="t",
        data={"page": 2},
        request_id="r-1",
        size=len(text.encode()),
    )
    assert message.has_request_id


@pytest.mark.unit
def test_data_defaults_to_an_empty_object_and_request_id_to_absent():
    message = parse('{"event": "a.b"}')
    assert message.data == {}
    assert not message.has_request_id
    assert "request_id" not in protocol.reply(message, 1)


@pytest.mark.unit
def test_surrounding_whitespace_is_json_and_accepted():
    assert parse(' \n {"event": "a.b"} \n ').action == "b"


@pytest.mark.unit
@pytest.mark.parametrize("request_id", [None, 0, "", False, [], {}, 1.5, "x" * 100, [1, {"a": 2}]])
def test_any_json_request_id_is_kept_and_echoed_even_falsy_ones(request_id):
    message = parse(frame(event="a.b", request_id=request_id))
    assert message.has_request_id
    assert message.request_id == request_id
    assert protocol.reply(message, {"ok": 1}) == {
        "event": "a.b",
        "data": {"ok": 1},
        "request_id": request_id,
    }


@pytest.mark.unit
@pytest.mark.parametrize("content", ["[]", '"a.b"', "1", "null", "true", '[{"event": "a.b"}]'])
def test_the_message_must_be_an_object(content):
    exc = invalid(content)
    assert isinstance(exc.error, BadRequest)
    assert exc.error.message == "The message must be a JSON object."
    assert error_of(exc) == {
        "event": None,
        "error": {"code": "bad_request", "message": "The message must be a JSON object."},
    }


@pytest.mark.unit
def test_an_unknown_key_is_named_with_the_event_and_request_id():
    exc = invalid(frame(event="a.b", order="-id", request_id=7))
    assert exc.error.message == (
        "Unknown key 'order': a message has 'event', 'data', 'request_id' "
        "and 'version' "
        "(list parameters such as 'ordering' go in 'data')."
    )
    assert (exc.event, exc.request_id) == ("a.b", 7)
    assert error_of(exc)["request_id"] == 7


@pytest.mark.unit
def test_the_first_unknown_key_in_sorted_order_is_named():
    exc = invalid(frame(zeta=1, event="a.b", alpha=2, beta=3))
    assert exc.error.message.startswith("Unknown key 'alpha':")


@pytest.mark.unit
def test_unknown_keys_are_reported_before_a_missing_or_bad_event():
    exc = invalid(frame(order=1))
    assert exc.error.message.startswith("Unknown key 'order':")
    assert exc.event is None
    exc = invalid(frame(event=5, order=1))
    assert exc.event is None  # not a string: not echoed
    exc = invalid(frame(event="not an event", order=1))
    assert exc.event == "not an event"


@pytest.mark.unit
@pytest.mark.parametrize("event", [None, 1, ["a.b"], {"a": "b"}, True])
def test_the_event_must_be_a_string(event):
    exc = invalid(frame(event=event, request_id="r"))
    assert exc.error.message == "The message needs an 'event' string."
    assert exc.event is None
    assert exc.request_id == "r"


@pytest.mark.unit
def test_a_missing_event_is_refused_without_a_request_id_to_echo():
    exc = invalid(frame(data={}))
    assert exc.error.message == "The message needs an 'event' string."
    assert "request_id" not in error_of(exc)


@pytest.mark.unit
def test_a_malformed_event_is_refused_with_the_event_and_request_id():
    exc = invalid(frame(event="a.b#", request_id=[1]))
    assert exc.error.message == "Malformed event name."
    assert error_of(exc) == {
        "event": "a.b#",
        "error": {"code": "bad_request", "message": "Malformed event name."},
        "request_id": [1],
    }


@pytest.mark.unit
@pytest.mark.parametrize("data", [None, [], [1], "x", 0, True])
def test_data_must_be_an_object(data):
    exc = invalid(frame(event="a.b", data=data, request_id=3))
    assert exc.error.message == "'data' must be a JSON object."
    assert (exc.event, exc.request_id) == ("a.b", 3)


@pytest.mark.unit
def test_parse_envelope_reads_decoded_content_and_defaults_size_to_zero():
    message = protocol.parse_envelope({"event": "a.b", "data": {"x": 1}})
    assert (message.stream, message.action, message.data, message.size) == ("a", "b", {"x": 1}, 0)


@pytest.mark.unit
def test_invalid_frame_carries_the_error_message_as_its_text():
    exc = invalid("[]")
    assert str(exc) == "The message must be a JSON object."


# -- JSON and binary frames --------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "{",
        '{"event": "a.b",}',
        "{'event': 'a.b'}",
        '{"event": "a.b"} {}',
        '{"event": "a\x00.b"}',  # a raw control character inside a string
        '{"event": "a.b", "data": {"n": 01}}',
        '{"event": "a.b", "data": {"n": "\\x41"}}',
        '{"event": "a.b", "data": {"n": ' + "1" * 5000 + "}}",  # past int's digit limit
    ],
)
def test_text_that_is_not_json_is_a_bad_request(text):
    exc = invalid(text)
    assert isinstance(exc.error, BadRequest)
    assert exc.error.message == "The message is not valid JSON."
    assert (exc.event, error_of(exc).get("request_id", "absent")) == (None, "absent")


@pytest.mark.unit
def test_nesting_deeper_than_the_parser_goes_is_a_bad_request_not_a_crash():
    levels = 100_000
    text = '{"event": "a.b", "data": {"k": ' + "[" * levels + "]" * levels + "}}"
    exc = invalid(text, max_bytes=len(text))
    assert exc.error.message == "The message is not valid JSON."


@pytest.mark.unit
@pytest.mark.parametrize("text", [None, '{"event": "a.b"}', "x" * 100])
def test_binary_frames_are_refused(text):
    exc = invalid(text, max_bytes=10, binary=True)
    assert isinstance(exc.error, BadRequest)
    assert exc.error.message == "Binary frames are not supported; send JSON text."


@pytest.mark.unit
def test_a_frame_without_text_is_refused_as_binary():
    exc = invalid(None)
    assert exc.error.message == "Binary frames are not supported; send JSON text."


# -- size limits -------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "max_bytes", "too_large"),
    [
        ("x" * 10, 10, False),
        ("x" * 11, 10, True),
        ("", 0, False),
        ("x", 0, True),
        ("\u00e9" * 5, 10, False),  # 2 bytes each: 10 bytes
        ("\u00e9" * 5, 9, True),
        ("\u20ac" * 21, 63, False),  # 3 bytes each: 63 bytes in 21 characters
        ("\u20ac" * 21, 62, True),
        ("\U0001f600" * 10, 40, False),  # 4 bytes each
        ("\U0001f600" * 10, 39, True),
        ("a" * 9 + "\U0001f600", 13, False),
        ("a" * 9 + "\U0001f600", 12, True),
        (b"x" * 10, 10, False),
        (b"x" * 11, 10, True),
        ("\u00e9".encode() * 5, 10, False),  # bytes are counted as they are
    ],
)
def test_check_size_counts_utf8_bytes(text, max_bytes, too_large):
    if not too_large:
        protocol.check_size(text, max_bytes)
        return
    with pytest.raises(protocol.InvalidFrame) as info:
        protocol.check_size(text, max_bytes)
    error = info.value.error
    assert isinstance(error, TooLarge)
    assert error.as_error() == {
        "code": "too_large",
        "message": f"Message larger than {max_bytes} bytes.",
    }
    assert error_of(info.value) == {"event": None, "error": error.as_error()}


@pytest.mark.unit
@FAST
@given(
    text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    max_bytes=st.integers(0, 170),
)
def test_check_size_refuses_exactly_the_frames_over_the_limit(text, max_bytes):
    try:
        protocol.check_size(text, max_bytes)
    except protocol.InvalidFrame as exc:
        assert isinstance(exc.error, TooLarge)
        assert len(text.encode()) > max_bytes
    else:
        assert len(text.encode()) <= max_bytes


@pytest.mark.unit
def test_parse_frame_checks_the_size_before_the_json():
    text = '{"event": "a.b", "data": {"s": "' + "\u20ac" * 10 + '"}}'
    size = len(text.encode())
    assert len(text) < size
    assert parse(text, max_bytes=size).data == {"s": "\u20ac" * 10}
    assert isinstance(invalid(text, max_bytes=size - 1).error, TooLarge)
    assert isinstance(invalid("{" * 20, max_bytes=10).error, TooLarge)  # not JSON, but too big


@pytest.mark.unit
def test_message_size_is_the_length_of_its_frame():
    text = frame(event="a.b", data={"s": "abc"})
    assert parse(text).size == len(text)


# -- values no database could take -------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("data_text", "field", "message"),
    [
        ('{"s": "a\\u0000b"}', "s", TEXT),
        ('{"s": "\\ud800"}', "s", TEXT),
        (
            '{"s": ["ok", {"x": "\\udfff"}]}',
            "s",
            TEXT,
        ),
        ('{"n": NaN}', "n", NUMBER),
        ('{"n": [1, -Infinity]}', "n", NUMBER),
        ('{"filters": {"f": Infinity}}', "f", NUMBER),
        ('{"k\\u0000": 1}', "__all__", TEXT),
    ],
)
def test_values_no_database_can_take_are_invalid(data_text, field, message):
    text = '{"event": "a.b", "request_id": 9, "data": ' + data_text + "}"
    exc = invalid(text)
    assert isinstance(exc.error, ValidationError)
    assert (exc.event, exc.request_id) == ("a.b", 9)
    assert error_of(exc) == {
        "event": "a.b",
        "error": {"code": "invalid", "message": "Invalid data.", "fields": {field: [message]}},
        "request_id": 9,
    }


@pytest.mark.unit
def test_escaped_surrogate_pairs_and_other_escapes_are_fine():
    message = parse('{"event": "a.b", "data": {"s": "\\ud83d\\ude00 \\u00e9 \\n"}}')
    assert message.data == {"s": "\U0001f600 \u00e9 \n"}


@pytest.mark.unit
def test_values_outside_data_are_not_checked():
    message = parse('{"event": "a.b", "request_id": "\\u0000\\ud800", "data": {}}')
    assert message.request_id == "\x00\ud800"


@pytest.mark.unit
def test_data_nested_as_deep_as_allowed_passes_and_deeper_is_invalid():
    # data is the first level: it may hold 31 more (MAX_JSON_DEPTH defaults to 32).
    def text(levels):
        return '{"event": "a.b", "data": {"k": ' + "[" * levels + "]" * levels + "}}"

    assert parse(text(31)).data["k"] is not None
    exc = invalid(text(32))
    assert exc.error.fields == {"k": ["Values may be nested at most 32 levels deep."]}


@pytest.mark.unit
def test_the_depth_limit_follows_the_settings(settings):
    settings.SYNCBIND = {"MAX_JSON_DEPTH": 3}
    assert parse('{"event": "a.b", "data": {"k": [[1]]}}').data == {"k": [[1]]}
    exc = invalid('{"event": "a.b", "data": {"k": [[[1]]]}}')
    assert exc.error.fields == {"k": ["Values may be nested at most 3 levels deep."]}


# -- replies -----------------------------------------------------------------------


@pytest.mark.unit
def test_reply_without_request_id():
    message = protocol.parse_envelope({"event": "a.b#t"})
    assert protocol.reply(message, [1, 2]) == {"event": "a.b#t", "data": [1, 2]}


@pytest.mark.unit
def test_error_reply_shapes():
    error = {"code": "not_found", "message": "Not found."}
    assert protocol.error_reply(error) == {"event": None, "error": error}
    assert protocol.error_reply(error, "a.b") == {"event": "a.b", "error": error}
    assert protocol.error_reply(error, "a.b", None) == {
        "event": "a.b",
        "error": error,
        "request_id": None,
    }


@pytest.mark.unit
def test_push_has_event_and_data_only():
    assert protocol.push("a.b.update", {"id": 1}) == {"event": "a.b.update", "data": {"id": 1}}


@pytest.mark.unit
def test_an_ended_frame_names_the_event_the_reason_and_the_row():
    reason = {"code": "permission_denied", "message": "No."}
    row = protocol.ended("shop.Product.retrieve#detail", reason, 7)
    assert protocol.encode(row) == (
        '{"event":"shop.Product.retrieve#detail",'
        '"ended":{"code":"permission_denied","message":"No."},"data":{"id":7}}'
    )
    page = protocol.ended("shop.Product.list", {"code": "limit_exceeded", "message": "Too many."})
    assert protocol.encode(page) == (
        '{"event":"shop.Product.list","ended":{"code":"limit_exceeded","message":"Too many."}}'
    )
    # A row whose primary key is null or a UUID keeps it as the row's id.
    key = uuid.UUID(int=1)
    assert protocol.ended("a.B.retrieve", reason, key)["data"] == {"id": key}
    assert protocol.ended("a.B.retrieve", reason, None)["data"] == {"id": None}


@pytest.mark.unit
def test_encode_is_compact_and_handles_django_types():
    content = {
        "d": decimal.Decimal("1.10"),
        "u": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "t": datetime.datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC),
        "day": datetime.date(2020, 1, 2),
        "lazy": gettext_lazy("Not found."),
        "list": [1, None, True],
    }
    assert protocol.encode(content) == (
        '{"d":"1.10","u":"12345678-1234-5678-1234-567812345678",'
        '"t":"2020-01-02T03:04:05.678Z","day":"2020-01-02","lazy":"Not found.",'
        '"list":[1,null,true]}'
    )


@pytest.mark.unit
def test_encode_escapes_non_ascii_so_characters_are_bytes():
    # syncbind/_transport/outbox.py counts a frame's characters as its bytes.
    text = protocol.encode({"s": "\u00e9\U0001f600", "k\u20ac": 1})
    assert text == '{"s":"\\u00e9\\ud83d\\ude00","k\\u20ac":1}'
    assert text.isascii()


@pytest.mark.unit
def test_encode_refuses_what_json_cannot_carry():
    with pytest.raises(TypeError):
        protocol.encode({"x": object()})


@pytest.mark.unit
@pytest.mark.parametrize("pad", ["abc", "é" * 10, "€" * 10, "\U0001f600" * 10])
def test_a_message_records_its_frame_size_in_utf8_bytes(pad):
    # MAX_SUBSCRIPTION_REQUEST_BYTES compares this size: bytes, not characters.
    text = '{"event": "a.b", "data": {"pad": "' + pad + '"}}'
    assert protocol.parse_frame(text, max_bytes=10_000).size == len(text.encode())


# Through a consumer, on the test database.


CODES = set(STATUS_BY_CODE)
# Internals, and password hashes (the tests hash with MD5). Field names the client
# sent itself (owner__password__startswith) may be echoed in "fields".
LEAKS = (
    "Traceback",
    'File "',
    "/work",
    "site-packages",
    "psycopg",
    "sqlite3",
    "md5$",
    "pbkdf2_sha256$",
)
ECHOED = ("event", "request_id")


def snapshot():
    return (
        list(Product.objects.order_by("pk").values()),
        list(Category.objects.order_by("pk").values()),
        list(Note.objects.order_by("pk").values()),
    )


def assert_clean(reply):
    # The event and request_id are the client's own, echoed (Hypothesis draws text from
    # the project's string constants too, "bench.sqlite3" among them).
    text = json.dumps({key: value for key, value in reply.items() if key not in ECHOED})
    for leak in LEAKS:
        assert leak not in text, (leak, text[:300])
    if "error" in reply:
        assert reply["error"]["code"] in CODES


@pytest.mark.django_db(transaction=True)
async def test_flood_of_mixed_frames_keeps_the_connection(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory)
    before = await db_call(snapshot)
    client = await make_client(superuser)
    frames = [
        "nope",
        "[]",
        '{"event": 1}',
        '{"event": "x.y.z"}',
        '{"event": "testapp.Product.retrieve"}',
    ] * 200
    for frame in frames:
        await client.send_raw(frame)
    replies = [await client.receive() for _ in frames]
    assert all("error" in reply for reply in replies)
    for reply in replies:
        assert_clean(reply)
    assert (await client.send_event("testapp.Product.retrieve", {"id": product.pk}))["data"][
        "id"
    ] == product.pk
    assert await db_call(snapshot) == before


@pytest.mark.django_db(transaction=True)
async def test_rate_limit(make_client, superuser, settings):
    settings.SYNCBIND = {"RATE_LIMIT": "5/m"}
    client = await make_client(superuser)
    for _ in range(5):
        assert "data" in await client.send_event("testapp.Product.ping")
    await client.send_raw(protocol.encode({"event": "testapp.Product.ping", "request_id": 1}))
    assert await client.receive() == {
        "event": None,
        "error": {"code": "rate_limited", "message": "Too many requests."},
    }
    await client.send_raw("garbage")  # malformed frames count too
    assert (await client.receive())["error"]["code"] == "rate_limited"


@pytest.mark.django_db(transaction=True)
async def test_rate_limit_is_per_connection(consumer_app, superuser, settings):
    from syncbind.testing import connect

    settings.SYNCBIND = {"RATE_LIMIT": "2/h"}
    async with (
        connect(superuser, application=consumer_app) as a,
        connect(superuser, application=consumer_app) as b,
    ):
        for _ in range(2):
            assert "data" in await a.send_event("testapp.Product.ping")
        await a.send_raw(protocol.encode({"event": "testapp.Product.ping"}))
        assert (await a.receive())["error"]["code"] == "rate_limited"
        assert "data" in await b.send_event("testapp.Product.ping")


@pytest.mark.django_db(transaction=True)
def test_rate_limit_refills():
    from syncbind.throttling import RateLimit, parse_rate

    now = [0.0]
    bucket = RateLimit(2, 1.0, clock=lambda: now[0])
    assert [bucket.allow() for _ in range(3)] == [True, True, False]
    now[0] = 0.5
    assert [bucket.allow(), bucket.allow()] == [True, False]
    assert parse_rate("100/s") == (100, 1.0) and parse_rate("6/min") == (6, 60.0)
    with pytest.raises(ValueError):
        parse_rate("lots")


HTTP_CASES = [
    ("post", "/api/events/", "not json", 400, "bad_request"),
    ("post", "/api/events/", "[1]", 400, "bad_request"),
    ("post", "/api/events/", '{"event": "testapp.Product.list", "data": 3}', 400, "bad_request"),
    ("post", "/api/events/", '{"event": "testapp.Product.lіst"}', 400, "bad_request"),
    ("post", "/api/events/", '{"event": "nope.Model.list"}', 404, "unknown_event"),
    ("get", "/api/testapp.Product/?owner__password__startswith=pbkdf2", None, 400, "invalid"),
    ("get", "/api/testapp.Product/?name__regex=.*", None, 400, "invalid"),
    ("get", "/api/testapp.Product/?category__name=x", None, 400, "invalid"),
    ("get", "/api/testapp.Product/?ordering=owner__password", None, 400, "invalid"),
    ("get", "/api/testapp.Product/?page=-1", None, 400, "invalid"),
    ("get", "/api/testapp.Product/?limit=0", None, 400, "invalid"),
    ("get", "/api/testapp.Product/?query=" + "a" * 10_000, None, 400, "invalid"),
    ("get", "/api/testapp.Product/abc/", None, 400, "invalid"),
    ("get", "/api/testapp.Product/99999999999999999999/", None, 400, "invalid"),
    (
        "post",
        "/api/testapp.Product/",
        '{"name": "x", "price": "1", "category": 1, "owner": 1}',
        400,
        "invalid",
    ),
    (
        "post",
        "/api/testapp.Product/",
        '{"name": "x", "price": "1", "category": 1, "id": 5}',
        400,
        "invalid",
    ),
    ("post", "/api/auth.User/", '{"username": "evil", "is_superuser": true}', 400, "invalid"),
    ("post", "/api/testapp.Product/get_queryset/", "{}", 404, "unknown_event"),
    ("post", "/api/testapp.Product/explode/", "{}", 500, "server_error"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("method", "url", "payload", "status", "code"), HTTP_CASES, ids=range(len(HTTP_CASES))
)
def test_hostile_http(method, url, payload, status, code, superuser):
    factories.CategoryFactory(id=1)
    product = factories.ProductFactory()
    before = snapshot()
    client = Client()
    client.force_login(superuser)
    kwargs = {"data": payload, "content_type": "application/json"} if payload is not None else {}
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == code
    assert_clean(body)
    assert snapshot() == before
    assert client.get(f"/api/testapp.Product/{product.pk}/").json()["id"] == product.pk


JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
EVENTS = st.one_of(
    st.sampled_from(
        [
            f"testapp.Product.{a}"
            for a in (
                "retrieve",
                "list",
                "search",
                "update",
                "delete",
                "subscribe",
                "unsubscribe",
                "nosuch",
                "refuse",
            )
        ]
        + ["testapp.Note.list", "auth.User.search", "nope.X.list", "testapp.Product.list#t-1"]
    ),
    st.text(max_size=30),
    JSON,
)
DATA = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "id": JSON,
            "page": JSON,
            "limit": JSON,
            "filters": JSON,
            "ordering": JSON,
            "query": JSON,
            "name": JSON,
            "price": JSON,
            "owner": JSON,
            "subscribe": JSON,
        },
    ),
    JSON,
)
ENVELOPES = st.fixed_dictionaries({}, optional={"event": EVENTS, "data": DATA, "request_id": JSON})


@pytest.mark.django_db(transaction=True)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(envelope=ENVELOPES)
def test_generated_envelopes_never_leak_or_write(envelope, transactional_db):
    """Generated envelopes through the core, as a user who may read but not write."""
    user = _reader()
    before = snapshot()
    text = json.dumps(envelope)
    reply = json.loads(core.handle(text, core.Connection(user=user)))
    assert_clean(reply)
    if "event" in envelope and isinstance(envelope["event"], str):
        assert reply["event"] in (envelope["event"], None)
    assert ("data" in reply) != ("error" in reply)
    assert snapshot() == before  # a reader can never write
    ping = core.handle('{"event": "testapp.Product.ping"}', core.Connection(user=user))
    assert "data" in json.loads(ping)


def _reader():
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username="hypothesis-reader").first()
    if user is None:
        user = factories.UserFactory(
            username="hypothesis-reader", perms=["testapp.view_product", "testapp.view_note"]
        )
        factories.ProductFactory()
    return get_user_model().objects.get(pk=user.pk)


@pytest.mark.django_db(transaction=True)
async def test_generated_frames_over_the_socket(make_client, superuser, db_call):
    """A sample of generated envelopes through the consumers themselves."""
    reader = await db_call(_reader)
    client = await make_client(reader)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", NonInteractiveExampleWarning
        )  # a sample is all we want here
        examples = [ENVELOPES.example() for _ in range(40)]
    before = await db_call(snapshot)
    for envelope in examples:
        await client.send_raw(json.dumps(envelope))
        reply = await asyncio.wait_for(client.receive(), 5)
        assert_clean(reply)
    assert "data" in await client.send_event("testapp.Product.ping")
    assert await db_call(snapshot) == before


# -- a reply JSON cannot carry (issue 21, point 10) -------------------------------------

SERVER_ERROR = {"code": "server_error", "message": "A server error occurred."}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["object", "instance"])
async def test_an_event_reply_that_cannot_be_encoded_rolls_back(
    make_client, superuser, db_call, caplog, kind
):
    client = await make_client(superuser)
    with caplog.at_level(logging.ERROR, logger="syncbind"):
        reply = await client.send_event("testapp.Product.unencodable", {"kind": kind})
    assert reply == {
        "event": "testapp.Product.unencodable",
        "error": SERVER_ERROR,
        "request_id": reply["request_id"],
    }
    assert "is not JSON serializable" in caplog.text  # the traceback stays on the server
    assert not await db_call(Category.objects.filter(name="written before the reply").exists)
    # The same socket answers the next message.
    assert (await client.send_event("testapp.Product.ping"))["data"]["pong"] is True
    await client.assert_nothing_more()


@pytest.mark.django_db(transaction=True)
def test_a_reply_is_encoded_once(superuser, monkeypatch):
    factories.ProductFactory(price="2.50")
    converted = []
    default = DjangoJSONEncoder.default
    monkeypatch.setattr(
        DjangoJSONEncoder, "default", lambda self, o: converted.append(o) or default(self, o)
    )
    text = core.handle('{"event": "testapp.Product.price_range"}', core.Connection(user=superuser))
    assert json.loads(text)["data"] == {"min": "2.50", "max": "2.50"}
    assert converted == [Decimal("2.50"), Decimal("2.50")]  # min and max, once each
