"""Errors are data: each class carries a wire ``code`` and a default message.

Binding code raises these (``raise NotFound()``, ``raise ValidationError({"name":
["Too short."]})``); the one :func:`exception_handler` turns any exception into
the ``error`` object of a reply. Anything that is not a :class:`SyncbindError`
becomes ``server_error``: its traceback is logged, never sent.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core import exceptions as django_exceptions
from django.db import DatabaseError
from django.http import Http404

from syncbind._workers.deadlines import is_timeout

logger = logging.getLogger("syncbind")


class SyncbindError(Exception):
    """Base class of the errors that become error replies."""

    code = "server_error"
    default_message = "A server error occurred."
    status = 500

    def __init__(self, message: str | None = None, *, fields: dict[str, list[str]] | None = None):
        self.message = message if message is not None else self.default_message
        self.fields = fields
        super().__init__(self.message)

    def as_error(self) -> dict[str, Any]:
        """The ``error`` object of the reply."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields is not None:
            error["fields"] = self.fields
        return error


class BadRequest(SyncbindError):
    code = "bad_request"
    default_message = "Malformed request."
    status = 400


class TooLarge(SyncbindError):
    code = "too_large"
    default_message = "Message too large."
    status = 413


class UnknownEvent(SyncbindError):
    code = "unknown_event"
    default_message = "Unknown event."
    status = 404

    # Stream and event names are public (the protocol lists them): saying which one
    # is unknown tells a client nothing it could not read in the docs.
    @classmethod
    def no_stream(cls, stream: str) -> UnknownEvent:
        return cls(f"No stream named {stream!r}.")

    @classmethod
    def no_event(cls, stream: str, action: str) -> UnknownEvent:
        return cls(f"The stream {stream!r} has no event {action!r}.")


class NotFound(SyncbindError):
    code = "not_found"
    default_message = "Not found."
    status = 404


class NotAuthenticated(SyncbindError):
    code = "not_authenticated"
    default_message = "Authentication credentials were not provided."
    status = 401


class AuthenticationFailed(NotAuthenticated):
    default_message = "Incorrect authentication credentials."


class PermissionDenied(SyncbindError):
    code = "permission_denied"
    default_message = "You do not have permission to perform this action."
    status = 403


class ValidationError(SyncbindError):
    """Invalid input. ``fields`` maps a field name (or ``"__all__"``) to messages.

    ``ValidationError({"name": ["Too short."]})``; a message or a list of them on
    their own (``ValidationError("Too short.")``) are about the whole request,
    under ``"__all__"``, as Django's own ValidationError puts them.
    """

    code = "invalid"
    default_message = "Invalid data."
    status = 400

    def __init__(
        self,
        fields: dict[str, Any] | list[str] | str | None = None,
        message: str | None = None,
    ):
        super().__init__(message, fields=_as_fields(fields))


def _as_fields(fields: Any) -> dict[str, list[str]]:
    if not fields:
        return {}
    if isinstance(fields, str):
        return {"__all__": [fields]}
    if isinstance(fields, list | tuple):
        return {"__all__": [str(message) for message in fields]}
    return {
        str(name): [messages] if isinstance(messages, str) else [str(m) for m in messages]
        for name, messages in fields.items()
    }


class RateLimited(SyncbindError):
    code = "rate_limited"
    default_message = "Too many requests."
    status = 429


class LimitExceeded(SyncbindError):
    """A per-connection limit (subscriptions, followed keys, subscription size) was reached."""

    code = "limit_exceeded"
    default_message = "A limit of this connection was reached."
    status = 429


class Timeout(SyncbindError):
    """A statement ran past STATEMENT_TIMEOUT."""

    code = "timeout"
    default_message = "The request took longer than this server allows."
    status = 504


class ServerError(SyncbindError):
    pass


def as_syncbind_error(exc: BaseException) -> SyncbindError | None:
    """Map the exceptions Django code commonly raises onto ours; None if unknown."""
    if isinstance(exc, SyncbindError):
        return exc
    if isinstance(exc, django_exceptions.ObjectDoesNotExist | Http404):
        return NotFound()
    if isinstance(exc, django_exceptions.PermissionDenied):
        return PermissionDenied()
    if isinstance(exc, DatabaseError):
        return Timeout() if is_timeout(exc) else None
    if isinstance(exc, django_exceptions.ValidationError):
        if hasattr(exc, "error_dict"):
            return ValidationError({k: [str(m) for m in v] for k, v in exc.message_dict.items()})
        return ValidationError({django_exceptions.NON_FIELD_ERRORS: [str(m) for m in exc.messages]})
    return None


def exception_handler(exc: BaseException, context: dict[str, Any]) -> dict[str, Any]:
    """Return the ``error`` object for ``exc``; the configured ``EXCEPTION_HANDLER``.

    Called by the core for every exception raised while handling a message.
    ``context`` holds the ``request`` (may be None when the frame could not be
    parsed) and the ``binding`` (None before one was found).
    """
    error = as_syncbind_error(exc)
    if isinstance(error, Timeout) and not isinstance(exc, Timeout):
        request = context.get("request")
        logger.warning(
            "syncbind event %r ran past STATEMENT_TIMEOUT", getattr(request, "event", None)
        )
    if error is None:
        request = context.get("request")
        logger.error(
            "Unhandled exception in syncbind event %r",
            getattr(request, "event", None),
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        error = ServerError()
    return error.as_error()


STATUS_BY_CODE = {
    cls.code: cls.status
    for cls in (
        BadRequest,
        TooLarge,
        UnknownEvent,
        NotFound,
        NotAuthenticated,
        PermissionDenied,
        ValidationError,
        RateLimited,
        LimitExceeded,
        Timeout,
        ServerError,
    )
}
