"""[syncbind/exceptions.py] Every error code, table-driven: the exact error, no internals, the connection still works,
and the database unchanged."""

import json

import pytest
from django.db import connection

from syncbind._wire import protocol
from tests import factories
from tests.testapp.models import Category, Product

pytestmark = pytest.mark.django_db(transaction=True)

P = "testapp.Product"
# The largest id an AutoField's column holds: SQLite's integers, PostgreSQL's integer.
LARGEST_ID = 2**63 - 1 if connection.vendor == "sqlite" else 2**31 - 1

# (frame as text, expected event in the reply, expected code, expected fields or None)
MALFORMED = [
    ("not json", None, "bad_request", None),
    ("[1, 2]", None, "bad_request", None),
    ("42", None, "bad_request", None),
    ('"just a string"', None, "bad_request", None),
    ("{}", None, "bad_request", None),
    ('{"event": 5}', None, "bad_request", None),
    ('{"event": null}', None, "bad_request", None),
    ('{"event": "noaction"}', "noaction", "bad_request", None),
    ('{"event": "testapp.Product.list extra"}', "testapp.Product.list extra", "bad_request", None),
    ('{"event": "testapp..list"}', "testapp..list", "bad_request", None),
    (
        '{"event": "testapp.Product.lіst"}',
        "testapp.Product.lіst",
        "bad_request",
        None,
    ),  # Cyrillic i
    (
        '{"event": "testapp.Product.list#bad tag"}',
        "testapp.Product.list#bad tag",
        "bad_request",
        None,
    ),
    (
        '{"event": "testapp.Product.list#' + "x" * 65 + '"}',
        "testapp.Product.list#" + "x" * 65,
        "bad_request",
        None,
    ),
    ('{"event": "testapp.Product.list", "data": []}', "testapp.Product.list", "bad_request", None),
    ('{"event": "testapp.Product.list", "data": "x"}', "testapp.Product.list", "bad_request", None),
    (
        '{"event": "testapp.Product.list", "data": null}',
        "testapp.Product.list",
        "bad_request",
        None,
    ),
    ("[" * 150_000 + "]" * 150_000, None, "too_large", None),
    ("[" * 100_000 + "]" * 100_000, None, "bad_request", None),
    ('{"a":' * 5000 + "1" + "}" * 5000, None, "bad_request", None),
    ('{"event": "nope.Nothing.list"}', "nope.Nothing.list", "unknown_event", None),
    ('{"event": "testapp.Product.nosuch"}', "testapp.Product.nosuch", "unknown_event", None),
    (
        '{"event": "testapp.Product.get_queryset"}',
        "testapp.Product.get_queryset",
        "unknown_event",
        None,
    ),
    (
        '{"event": "testapp.Product.perform_delete"}',
        "testapp.Product.perform_delete",
        "unknown_event",
        None,
    ),
    (
        '{"event": "testapp.Product.retrieve", "data": {"id": 999999}}',
        "testapp.Product.retrieve",
        "not_found",
        None,
    ),
    (
        '{"event": "testapp.Product.retrieve", "data": {"id": 99999999999999999999999}}',
        "testapp.Product.retrieve",
        "invalid",
        {"id": [f"Ensure this value is less than or equal to {LARGEST_ID}."]},
    ),
    (
        '{"event": "testapp.Product.retrieve", "data": {}}',
        "testapp.Product.retrieve",
        "invalid",
        {"id": ["This field is required."]},
    ),
    (
        '{"event": "testapp.Product.retrieve", "data": {"id": "abc"}}',
        "testapp.Product.retrieve",
        "invalid",
        {"id": ["Invalid id."]},
    ),
    (
        '{"event": "testapp.Product.retrieve", "data": {"id": true}}',
        "testapp.Product.retrieve",
        "invalid",
        {"id": ["Invalid id."]},
    ),
    (
        '{"event": "testapp.Product.retrieve", "data": {"id": [1]}}',
        "testapp.Product.retrieve",
        "invalid",
        {"id": ["Invalid id."]},
    ),
    (
        '{"event": "testapp.Product.list", "data": {"page": 0}}',
        "testapp.Product.list",
        "invalid",
        {"page": ["Must be a positive integer."]},
    ),
    (
        '{"event": "testapp.Product.list", "data": {"page": -1}}',
        "testapp.Product.list",
        "invalid",
        {"page": ["Must be a positive integer."]},
    ),
    (
        '{"event": "testapp.Product.list", "data": {"page": 1.5}}',
        "testapp.Product.list",
        "invalid",
        {"page": ["Must be a positive integer."]},
    ),
    (
        '{"event": "testapp.Product.list", "data": {"page": true}}',
        "testapp.Product.list",
        "invalid",
        {"page": ["Must be a positive integer."]},
    ),
    (
        '{"event": "testapp.Product.list", "data": {"limit": "ten"}}',
        "testapp.Product.list",
        "invalid",
        {"limit": ["Must be a positive integer."]},
    ),
    (
        '{"event": "testapp.Product.list", "data": {"filters": {"owner__password__startswith": "pbkdf"}}}',
        "testapp.Product.list",
        "invalid",
        {"owner__password__startswith": ["Unknown filter."]},
    ),
    (
        '{"event": "testapp.Product.list", "data": {"filters": {"name__regex": ".*"}}}',
        "testapp.Product.list",
        "invalid",
        {"name__regex": ["Unknown filter."]},
    ),
    (
        '{"event": "testapp.Product.list", "data": {"filters": {"price__lt": "cheap"}}}',
        "testapp.Product.list",
        "invalid",
        {"price__lt": ["Enter a number."]},
    ),
    (
        '{"event": "testapp.Product.list", "data": {"filters": [1]}}',
        "testapp.Product.list",
        "invalid",
        {"filters": ["Must be an object."]},
    ),
    (
        '{"event": "testapp.Category.list", "data": {"filters": {"name": "x"}}}',
        "testapp.Category.list",
        "invalid",
        {"name": ["Unknown filter."]},
    ),
    (
        '{"event": "testapp.Product.list", "data": {"ordering": "stock"}}',
        "testapp.Product.list",
        "invalid",
        {"ordering": ["Cannot order by 'stock'."]},
    ),
    (
        '{"event": "testapp.Product.list", "data": {"ordering": "category__name"}}',
        "testapp.Product.list",
        "invalid",
        {"ordering": ["Cannot order by 'category__name'."]},
    ),
    (
        '{"event": "testapp.Product.list", "data": {"ordering": 5}}',
        "testapp.Product.list",
        "invalid",
        {"ordering": ["Must be a field name or a list of field names."]},
    ),
    (
        '{"event": "testapp.Product.search", "data": {"query": "' + "a" * 10_000 + '"}}',
        "testapp.Product.search",
        "invalid",
        {"query": ["Ensure this value has at most 256 characters."]},
    ),
    (
        '{"event": "testapp.Product.search", "data": {"query": 12}}',
        "testapp.Product.search",
        "invalid",
        {"query": ["Must be a string."]},
    ),
    (
        '{"event": "testapp.Note.search", "data": {"query": "x"}}',
        "testapp.Note.search",
        "invalid",
        {"query": ["Search is not enabled on this stream."]},
    ),
]


@pytest.mark.parametrize(("frame", "event", "code", "fields"), MALFORMED, ids=range(len(MALFORMED)))
async def test_error_table(make_client, superuser, db_call, frame, event, code, fields):
    product = await db_call(factories.ProductFactory)
    before = await db_call(lambda: list(Product.objects.values()))
    client = await make_client(superuser)
    await client.send_raw(frame)
    reply = await client.receive()
    assert reply["event"] == event
    assert reply["error"]["code"] == code
    assert "Traceback" not in json.dumps(reply) and "/work" not in json.dumps(reply)
    if fields is None:
        assert "fields" not in reply["error"]
    else:
        assert reply["error"]["fields"] == fields
    # The connection keeps working, and nothing changed.
    assert (await client.send_event(f"{P}.retrieve", {"id": product.pk}))["data"][
        "id"
    ] == product.pk
    assert await db_call(lambda: list(Product.objects.values())) == before


async def test_binary_frame(make_client, superuser):
    client = await make_client(superuser)
    await client.send_raw(bytes_data=b'{"event": "testapp.Product.ping"}')
    assert await client.receive() == {
        "event": None,
        "error": {
            "code": "bad_request",
            "message": "Binary frames are not supported; send JSON text.",
        },
    }
    assert (await client.send_event(f"{P}.ping"))["data"]["pong"] is True


async def test_request_id_is_echoed_on_errors(make_client, superuser):
    client = await make_client(superuser)
    await client.send_raw('{"event": "nope.Nothing.list", "request_id": "r1"}')
    assert await client.receive() == {
        "event": "nope.Nothing.list",
        "error": {"code": "unknown_event", "message": "No stream named 'nope.Nothing'."},
        "request_id": "r1",
    }


async def test_unknown_event_says_whether_the_stream_or_the_event_is_unknown(
    make_client, superuser
):
    client = await make_client(superuser)
    for event, message in [
        ("nope.Nothing.list", "No stream named 'nope.Nothing'."),
        ("testapp.product.list", "No stream named 'testapp.product'."),
        (f"{P}.frobnicate", f"The stream '{P}' has no event 'frobnicate'."),
        (f"{P}.frobnicate#tagged", f"The stream '{P}' has no event 'frobnicate'."),
        # A method of the binding that is not an @event is no event either.
        (f"{P}.get_queryset", f"The stream '{P}' has no event 'get_queryset'."),
    ]:
        reply = await client.send_event(event)
        assert reply == {
            "event": event,
            "error": {"code": "unknown_event", "message": message},
            "request_id": reply["request_id"],
        }


WRITE_ERRORS = [
    # (event, data, fields)
    ("create", {"name": "x", "price": "1"}, {"category": ["This field is required."]}),
    (
        "create",
        {"name": "x" * 51, "price": "1", "category": "CAT"},
        {"name": ["Ensure this value has at most 50 characters (it has 51)."]},
    ),
    (
        "create",
        {"name": "x", "price": "1", "category": "CAT", "status": "gone"},
        {"status": ["Select a valid choice. gone is not one of the available choices."]},
    ),
    (
        "create",
        {"name": "forbidden", "price": "1", "category": "CAT"},
        {"name": ["This name is not allowed."]},
    ),
    ("create", {"name": "x", "price": "abc", "category": "CAT"}, {"price": ["Enter a number."]}),
    (
        "create",
        {"name": "x", "price": "1", "category": 999999},
        {"category": ["Select a valid choice. That choice is not one of the available choices."]},
    ),
    (
        "create",
        {"name": "x", "price": "1", "category": "CAT", "owner": 1},
        {"owner": ["This field is not writable."]},
    ),
    (
        "create",
        {"name": "x", "price": "1", "category": "CAT", "id": 7},
        {"id": ["This field is not writable."]},
    ),
    (
        "create",
        {"name": "x", "price": "1", "category": "CAT", "sku": "x"},
        {"sku": ["This field is not writable."]},
    ),
    (
        "create",
        {"name": "x", "price": "1", "category": "CAT", "is_superuser": True},
        {"is_superuser": ["Unknown field."]},
    ),
    (
        "update",
        {"id": "PK", "created": "2020-01-01T00:00:00Z"},
        {"created": ["This field is not writable."]},
    ),
    ("update", {"id": "PK", "name": ""}, {"name": ["This field is required."]}),
    (
        "update",
        {"id": "PK", "price": "1234567890"},
        {"price": ["Ensure that there are no more than 8 digits in total."]},
    ),
]


@pytest.mark.parametrize(("action", "data", "fields"), WRITE_ERRORS, ids=range(len(WRITE_ERRORS)))
async def test_invalid_writes_write_nothing(make_client, superuser, db_call, action, data, fields):
    category = await db_call(factories.CategoryFactory)
    product = await db_call(factories.ProductFactory, category=category)
    data = {
        key: {"CAT": category.pk, "PK": product.pk}.get(value, value)
        if isinstance(value, str)
        else value
        for key, value in data.items()
    }
    before = await db_call(lambda: list(Product.objects.values()))
    client = await make_client(superuser)
    reply = await client.send_event(f"{P}.{action}", data)
    assert reply["error"] == {"code": "invalid", "message": "Invalid data.", "fields": fields}
    assert await db_call(lambda: list(Product.objects.values())) == before


async def test_unique_constraint(make_client, superuser, db_call):
    await db_call(factories.CategoryFactory, name="Tools")
    client = await make_client(superuser)
    reply = await client.send_event("testapp.Category.create", {"name": "Tools"})
    assert reply["error"] == {
        "code": "invalid",
        "message": "Invalid data.",
        "fields": {"name": ["Category with this Name already exists."]},
    }
    assert await db_call(Category.objects.count) == 1


async def test_too_large_follows_the_setting(make_client, superuser, settings):
    settings.SYNCBIND = {"MAX_MESSAGE_BYTES": 100}
    client = await make_client(superuser)
    await client.send_raw(protocol.encode({"event": f"{P}.ping", "data": {"pad": "x" * 100}}))
    assert (await client.receive())["error"] == {
        "code": "too_large",
        "message": "Message larger than 100 bytes.",
    }
    # Multi-byte characters count as bytes.
    await client.send_raw(protocol.encode({"event": f"{P}.ping", "data": {"pad": "é" * 30}}))
    assert (await client.receive())["error"]["code"] == "too_large"
    await client.send_raw(protocol.encode({"event": f"{P}.ping"}))
    assert "data" in await client.receive()
