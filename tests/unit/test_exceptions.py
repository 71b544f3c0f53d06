"""syncbind/exceptions.py: error classes, their wire codes, and the exception handler.

Part of the fast unit layer (tests/unit): no database, no server (database errors are
constructed, never raised by a database).
"""

import logging

import pytest
from django.core import exceptions as django_exceptions
from django.db import DatabaseError, OperationalError
from django.http import Http404
from django.utils.translation import gettext_lazy

from syncbind import exceptions
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
from tests.testapp.models import Product


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


def test_an_empty_message_is_kept_and_fields_are_added_when_given():
    assert BadRequest("").message == ""
    assert BadRequest("m", fields={"a": ["b"]}).as_error() == {
        "code": "bad_request",
        "message": "m",
        "fields": {"a": ["b"]},
    }


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


def test_validation_error_message():
    assert ValidationError({"a": "b"}, message="Check a.").as_error()["message"] == "Check a."
    assert (ValidationError.status, ValidationError.code) == (400, "invalid")


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


def test_our_own_errors_are_returned_as_they_are():
    error = NotFound("Gone.")
    assert as_syncbind_error(error) is error


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


@pytest.mark.parametrize("exc", [RuntimeError("x"), KeyError("k"), ValueError(), TypeError()])
def test_other_exceptions_are_not_mapped(exc):
    assert as_syncbind_error(exc) is None


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


def test_the_handler_logs_a_timeout_as_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="syncbind"):
        error = exception_handler(OperationalError("interrupted"), {"request": None})
    assert error == Timeout().as_error()
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "STATEMENT_TIMEOUT" in record.getMessage()


def test_the_handler_answers_our_errors_quietly(caplog):
    with caplog.at_level(logging.DEBUG, logger="syncbind"):
        error = exception_handler(ValidationError({"a": "b"}), {})
        assert exception_handler(Timeout(), {}) == Timeout().as_error()
    assert error == {"code": "invalid", "message": "Invalid data.", "fields": {"a": ["b"]}}
    assert caplog.records == []


def test_the_handler_is_the_default_setting():
    from syncbind.settings import api_settings

    assert api_settings.EXCEPTION_HANDLER is exceptions.exception_handler
