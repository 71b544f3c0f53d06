"""[syncbind/exceptions.py] Error classes, their wire codes and the exception handler; then
every error code on the wire, table-driven: the exact error, no internals, the connection
still works, and the database unchanged.

The first part is marked ``unit``: no database, no server (database errors are constructed,
never raised by a database). The second runs each case through a consumer.
"""

import json
import logging

import pytest
from django.core import exceptions as django_exceptions
from django.db import DatabaseError, OperationalError, connection
from django.http import Http404
from django.utils.translation import gettext_lazy

from syncbind import exceptions
from syncbind._wire import protocol
from syncbind.exceptions import (
    STATUS_BY_CODE,
    AuthenticationFailed,
    BadRequest,
    LimitExceeded,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    SyncbindError,
    Timeout,
    TooLarge,
    UnknownEvent,
    ValidationError,
    as_syncbind_error,
    exception_handler,
)
from tests import factories
from tests.testapp.models import Category, Product

# Unit: no database, no server.


@pytest.mark.unit
@pytest.mark.parametrize(
    ("cls", "code", "status", "message"),
    [
        (SyncbindError, "server_error", 500, "A server error occurred."),
        (ServerError, "server_error", 500, "A server error occurred."),
        (BadRequest, "bad_request", 400, "Malformed request."),
        (TooLarge, "too_large", 413, "Message too large."),
        (UnknownEvent, "unknown_event", 404, "Unknown event."),
        (NotFound, "not_found", 404, "Not found."),
        (
            NotAuthenticated,
            "not_authenticated",
            401,
            "Authentication credentials were not provided.",
        ),
        (AuthenticationFailed, "not_authenticated", 401, "Incorrect authentication credentials."),
        (
            PermissionDenied,
            "permission_denied",
            403,
            "You do not have permission to perform this action.",
        ),
        (RateLimited, "rate_limited", 429, "Too many requests."),
        (LimitExceeded, "limit_exceeded", 429, "A limit of this connection was reached."),
        (Timeout, "timeout", 504, "The request took longer than this server allows."),
    ],
)
def test_each_error_has_a_code_a_status_and_a_default_message(cls, code, status, message):
    error = cls()
    assert (error.code, error.status, error.message, str(error)) == (code, status, message, message)
    assert error.as_error() == {"code": code, "message": message}
    assert STATUS_BY_CODE[code] == status
    assert cls("Custom.").as_error() == {"code": code, "message": "Custom."}


@pytest.mark.unit
def test_an_empty_message_is_kept_and_fields_are_added_when_given():
    assert BadRequest("").message == ""
    assert BadRequest("m", fields={"a": ["b"]}).as_error() == {
        "code": "bad_request",
        "message": "m",
        "fields": {"a": ["b"]},
    }


@pytest.mark.unit
def test_status_by_code_covers_every_code():
    assert set(STATUS_BY_CODE) == {
        "bad_request",
        "too_large",
        "unknown_event",
        "not_found",
        "not_authenticated",
        "permission_denied",
        "invalid",
        "rate_limited",
        "limit_exceeded",
        "timeout",
        "server_error",
    }


@pytest.mark.unit
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (None, {}),
        ({}, {}),
        ([], {}),
        ("", {}),
        ("Too short.", {"__all__": ["Too short."]}),
        (["One.", "Two."], {"__all__": ["One.", "Two."]}),
        (("One.",), {"__all__": ["One."]}),
        ({"name": "Too short."}, {"name": ["Too short."]}),
        ({"name": ["A.", "B."]}, {"name": ["A.", "B."]}),
        ({"name": ("A.",)}, {"name": ["A."]}),
        ({1: ["A."]}, {"1": ["A."]}),
        ({"name": [gettext_lazy("Not found.")]}, {"name": ["Not found."]}),
        ([gettext_lazy("Not found.")], {"__all__": ["Not found."]}),
    ],
)
def test_validation_error_fields(fields, expected):
    error = ValidationError(fields)
    assert error.fields == expected
    assert all(type(m) is str for messages in error.fields.values() for m in messages)
    assert error.as_error() == {"code": "invalid", "message": "Invalid data.", "fields": expected}


@pytest.mark.unit
def test_validation_error_message():
    assert ValidationError({"a": "b"}, message="Check a.").as_error()["message"] == "Check a."
    assert (ValidationError.status, ValidationError.code) == (400, "invalid")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (Product.DoesNotExist(), NotFound),
        (django_exceptions.ObjectDoesNotExist(), NotFound),
        (Http404(), NotFound),
        (django_exceptions.PermissionDenied(), PermissionDenied),
    ],
)
def test_django_exceptions_map_onto_ours(exc, expected):
    error = as_syncbind_error(exc)
    assert type(error) is expected
    assert error.message == expected.default_message


@pytest.mark.unit
def test_our_own_errors_are_returned_as_they_are():
    error = NotFound("Gone.")
    assert as_syncbind_error(error) is error


@pytest.mark.unit
def test_django_validation_errors_keep_their_fields_and_messages():
    error = as_syncbind_error(django_exceptions.ValidationError({"name": "Bad.", "b": ["1", "2"]}))
    assert error.fields == {"name": ["Bad."], "b": ["1", "2"]}
    error = as_syncbind_error(
        django_exceptions.ValidationError(
            {"name": django_exceptions.ValidationError("Bad %(what)s.", params={"what": "name"})}
        )
    )
    assert error.fields == {"name": ["Bad name."]}
    error = as_syncbind_error(django_exceptions.ValidationError(["One.", "Two."]))
    assert error.fields == {"__all__": ["One.", "Two."]}
    error = as_syncbind_error(django_exceptions.ValidationError("Only %(n)s.", params={"n": 3}))
    assert error.as_error() == {
        "code": "invalid",
        "message": "Invalid data.",
        "fields": {"__all__": ["Only 3."]},
    }


class QueryCanceled(DatabaseError):
    """Named as psycopg's statement_timeout error is."""


def caused(exc, cause):
    exc.__cause__ = cause
    return exc


@pytest.mark.unit
@pytest.mark.parametrize(
    ("exc", "is_timeout"),
    [
        (QueryCanceled("canceling statement due to statement timeout"), True),
        (caused(OperationalError("wrapped"), QueryCanceled("x")), True),
        (OperationalError("interrupted"), True),  # SQLite's progress handler
        (caused(DatabaseError("wrapped"), OperationalError("interrupted")), True),
        (OperationalError("database is locked"), False),
        (DatabaseError("interrupted"), False),  # not an OperationalError
        (DatabaseError("boom"), False),
    ],
)
def test_database_errors_are_timeouts_only_when_a_time_limit_fired(exc, is_timeout):
    error = as_syncbind_error(exc)
    assert (type(error) is Timeout) if is_timeout else (error is None)


@pytest.mark.unit
@pytest.mark.parametrize("exc", [RuntimeError("x"), KeyError("k"), ValueError(), TypeError()])
def test_other_exceptions_are_not_mapped(exc):
    assert as_syncbind_error(exc) is None


@pytest.mark.unit
def test_the_handler_turns_unknown_exceptions_into_server_errors_and_logs_them(caplog):
    request = type("Request", (), {"event": "testapp.Task.list"})()
    try:
        raise RuntimeError("secret detail")
    except RuntimeError as exc:
        with caplog.at_level(logging.ERROR, logger="syncbind"):
            error = exception_handler(exc, {"request": request})
    assert error == {"code": "server_error", "message": "A server error occurred."}
    assert "secret detail" not in str(error)
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "'testapp.Task.list'" in record.getMessage()
    assert record.exc_info[1].args == ("secret detail",)


@pytest.mark.unit
def test_the_handler_logs_a_timeout_as_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="syncbind"):
        error = exception_handler(OperationalError("interrupted"), {"request": None})
    assert error == Timeout().as_error()
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "STATEMENT_TIMEOUT" in record.getMessage()


@pytest.mark.unit
def test_the_handler_answers_our_errors_quietly(caplog):
    with caplog.at_level(logging.DEBUG, logger="syncbind"):
        error = exception_handler(ValidationError({"a": "b"}), {})
        assert exception_handler(Timeout(), {}) == Timeout().as_error()
    assert error == {"code": "invalid", "message": "Invalid data.", "fields": {"a": ["b"]}}
    assert caplog.records == []


@pytest.mark.unit
def test_the_handler_is_the_default_setting():
    from syncbind.settings import api_settings

    assert api_settings.EXCEPTION_HANDLER is exceptions.exception_handler


# Through a consumer, on the test database.


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


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
async def test_request_id_is_echoed_on_errors(make_client, superuser):
    client = await make_client(superuser)
    await client.send_raw('{"event": "nope.Nothing.list", "request_id": "r1"}')
    assert await client.receive() == {
        "event": "nope.Nothing.list",
        "error": {"code": "unknown_event", "message": "No stream named 'nope.Nothing'."},
        "request_id": "r1",
    }


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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
