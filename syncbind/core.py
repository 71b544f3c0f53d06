"""The transport-independent request handler.

Transports (SyncConsumer, AsyncConsumer, the HTTP views) turn what they
received into a :class:`~syncbind.protocol.Message`, then call
:func:`handle_message` (sync, in a worker thread) or :func:`ahandle_message`
(async, from the event loop) with a :class:`Connection` describing the sender,
and send back the dict they get. Nothing here knows about sockets or HTTP.
"""

from __future__ import annotations

import inspect
from typing import Any

from asgiref.sync import async_to_sync
from django.db import router, transaction

from . import protocol
from .connection import Connection
from .exceptions import RateLimited, UnknownEvent
from .executor import run_in_pool
from .registry import registry
from .request import Request
from .settings import api_settings


def make_request(message: protocol.Message, connection: Connection) -> Request:
    return Request(
        message=message,
        user=connection.user,
        auth=connection.auth,
        consumer=connection.consumer,
        connection=connection,
        scope=connection.scope,
        transport=connection.transport,
        http_request=connection.http_request,
    )


def error_for(
    exc: BaseException, message: protocol.Message | None, request=None, binding=None
) -> dict[str, Any]:
    """The error reply for ``exc`` (through the configured EXCEPTION_HANDLER)."""
    error = api_settings.EXCEPTION_HANDLER(exc, {"request": request, "binding": binding})
    if message is None:
        return protocol.error_reply(error)
    return protocol.error_reply(error, message.event, message.request_id)


def resolve(message: protocol.Message, request: Request):
    """Find the binding and the handler; check permissions. Returns ``(binding, handler, spec)``."""
    if request.connection is not None:
        request.connection.check()
    binding_class = registry.get(message.stream)
    found = binding_class.get_event(message.action)
    if found is None:
        raise UnknownEvent()
    attr, spec = found
    binding = binding_class(request=request, action=message.action)
    binding.check_permissions(request)
    return binding, getattr(binding, attr), spec


def _run(binding, handler, spec, request):
    if spec.atomic:
        with transaction.atomic(using=router.db_for_write(binding.get_model())):
            return handler(request)
    return handler(request)


def handle_message(message: protocol.Message, connection: Connection) -> dict[str, Any]:
    """Run one message to completion and return the reply (or error reply). Sync."""
    request = make_request(message, connection)
    binding = None
    try:
        binding, handler, spec = resolve(message, request)
        if inspect.iscoroutinefunction(handler):
            result = async_to_sync(handler)(request)
        else:
            result = _run(binding, handler, spec, request)
        return protocol.reply(message, result)
    except Exception as exc:
        return error_for(exc, message, request, binding)


def _is_async_event(message: protocol.Message) -> bool:
    try:
        binding_class = registry.get(message.stream)
    except UnknownEvent:
        return False
    found = binding_class.get_event(message.action)
    return found is not None and inspect.iscoroutinefunction(getattr(binding_class, found[0]))


async def ahandle_message(message: protocol.Message, connection: Connection) -> dict[str, Any]:
    """Async twin of handle_message, for AsyncConsumer.

    Sync events run whole in the worker pool. ``async def`` events are resolved
    and permission-checked in the pool (that may query the database), then
    awaited on the event loop.
    """
    if not _is_async_event(message):
        return await run_in_pool(handle_message, message, connection)
    request = make_request(message, connection)
    binding = None
    try:
        binding, handler, _spec = await run_in_pool(resolve, message, request)
        return protocol.reply(message, await handler(request))
    except Exception as exc:
        return error_for(exc, message, request, binding)


def parse_frame(
    text: str | None, *, binary: bool = False, connection: Connection | None = None
) -> protocol.Message | dict[str, Any]:
    """The Message in a WebSocket frame, or the error reply for a malformed or
    over-the-rate frame (malformed frames count against the rate too)."""
    if (
        connection is not None
        and connection.throttle is not None
        and not connection.throttle.allow()
    ):
        return protocol.error_reply(RateLimited().as_error())
    try:
        return protocol.parse_frame(text, max_bytes=api_settings.MAX_MESSAGE_BYTES, binary=binary)
    except protocol.InvalidFrame as invalid:
        return protocol.error_reply(invalid.error.as_error(), invalid.event, invalid.request_id)


def handle_frame(
    text: str | None, connection: Connection, *, binary: bool = False
) -> dict[str, Any]:
    """Parse a WebSocket frame and handle it; malformed frames get an error reply."""
    message = parse_frame(text, binary=binary, connection=connection)
    if isinstance(message, dict):
        return message
    return handle_message(message, connection)


async def ahandle_frame(
    text: str | None, connection: Connection, *, binary: bool = False
) -> dict[str, Any]:
    """Async twin of handle_frame: parsing on the loop, binding code in the pool."""
    message = parse_frame(text, binary=binary, connection=connection)
    if isinstance(message, dict):
        return message
    return await ahandle_message(message, connection)
