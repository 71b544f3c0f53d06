"""The request path, independent of any transport: a frame in, a frame out.

A transport hands the core what it received and sends back what it gets:

- :func:`handle`: a WebSocket frame → the reply frame, encoded (both
  consumers call it in a worker thread: parsing, the binding's code and the
  encoding all happen there, none of it on the event loop);
- :func:`serve`: a message an HTTP view built → the reply (the same rate, value
  checks, binding and ``dispatch()``).

Between the two lies one lifecycle, owned by the binding
(:meth:`~syncbind._bindings.lifecycle.Lifecycle.dispatch`): find the binding, check
the connection's credentials and the permissions, run the action (in a
transaction for writes and custom events), and turn any exception into an
error reply through ``EXCEPTION_HANDLER``. Nothing here knows about sockets
or HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syncbind._auth.connection import Connection
from syncbind._bindings.lifecycle import error_reply_for
from syncbind._bindings.registry import registry
from syncbind._bindings.request import Request
from syncbind._wire import protocol
from syncbind.exceptions import LimitExceeded, RateLimited, UnknownEvent
from syncbind.settings import api_settings

__all__ = ["Connection", "admit", "dispatch", "handle", "serve"]


def admit(connection: Connection | None, message: protocol.Message | None = None) -> dict | None:
    """The error reply refusing a message over the connection's rate (``RATE_LIMIT``), or
    None; every message counts, malformed ones too."""
    throttle = getattr(connection, "throttle", None)
    if throttle is None or throttle.allow():
        return None
    if message is None:
        return protocol.error_reply(RateLimited().as_error())
    return protocol.error_reply(RateLimited().as_error(), message.event, message.request_id)


def bind(message: protocol.Message, connection: Connection | None) -> Any:
    """The binding instance that handles ``message`` (``unknown_event`` if none)."""
    binding_class = registry.get(message.stream)
    if binding_class.get_event(message.action) is None:
        raise UnknownEvent.no_event(message.stream, message.action)
    return binding_class(request=Request(message, connection), action=message.action)


def _bound(message: protocol.Message, connection: Connection | None) -> Any:
    """The binding that handles ``message``, or the error reply refusing it (a dict)."""
    try:
        return bind(message, connection)
    except Exception as exc:
        return error_reply_for(exc, Request(message, connection))


def dispatch(message: protocol.Message, connection: Connection | None) -> dict[str, Any]:
    """Handle one parsed message through its binding's ``dispatch()``, the one entry
    for every event; returns the reply or error reply (a dict). Sync."""
    binding = _bound(message, connection)
    return binding if isinstance(binding, dict) else binding.dispatch()


def serve(message: protocol.Message, connection: Connection | None) -> dict[str, Any]:
    """A message built by an HTTP view through the same path as a frame: the rate, the
    values no database could take, the binding and its ``dispatch()``."""
    refused = admit(connection, message)
    if refused is not None:
        return refused
    try:
        protocol.check_values(message)
    except protocol.InvalidFrame as invalid:
        return invalid.reply()
    return dispatch(message, connection)


def handle(
    text: str | None,
    connection: Connection | None,
    *,
    binary: bool = False,
    detach: Callable[[Callable[[], str]], bool] | None = None,
    other: Callable[[dict[str, Any]], None] | None = None,
) -> str | None:
    """A WebSocket frame → the reply frame (worker thread).

    An ``@event(detached=True)`` event is handed to ``detach`` (the consumer's) as a
    job that returns its reply frame, and None is returned: the socket goes on with
    its next message. ``detach`` answers False when the socket already runs
    ``MAX_DETACHED_EVENTS``: the event is then refused (``limit_exceeded``).

    A JSON object that names no event goes to ``other`` (the consumer's
    ``receive_json``), with no reply of the core's. Every frame counts against the
    rate (``RATE_LIMIT``), malformed ones too.
    """
    refused = admit(connection)
    if refused is not None:
        return protocol.encode(refused)
    try:
        message = protocol.parse_frame(
            text, max_bytes=api_settings.MAX_MESSAGE_BYTES, binary=binary
        )
    except protocol.NoEvent as unnamed:
        if other is None:
            return protocol.encode(unnamed.reply())
        other(unnamed.content)
        return None
    except protocol.InvalidFrame as invalid:
        return protocol.encode(invalid.reply())
    binding = _bound(message, connection)
    if isinstance(binding, dict):
        return protocol.frame_text(binding)
    if detach is not None and binding.get_handler()[1].detached:
        if detach(lambda: _frame(binding.dispatch)):
            return None
        limit = api_settings.MAX_DETACHED_EVENTS
        too_many = LimitExceeded(
            f"Too many detached events running on this connection (MAX_DETACHED_EVENTS={limit})."
        )
        return _frame(lambda: error_reply_for(too_many, binding.request, binding))
    return _frame(binding.dispatch)


def _frame(make_reply: Callable[[], dict[str, Any]]) -> str:
    """The reply ``make_reply`` makes, encoded; its data encoded once (see
    ``protocol.encoding_reply``)."""
    with protocol.encoding_reply():
        return protocol.frame_text(make_reply())
