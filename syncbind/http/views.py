"""HTTP views over the same core as the WebSocket consumers.

``path("api/", include("syncbind.urls"))`` serves every registered binding:

=========================  ==========================================
``GET <stream>/``          list (``query`` → search; other params are filters)
``POST <stream>/``         create
``GET <stream>/<id>/``     retrieve
``PATCH <stream>/<id>/``   update
``PUT <stream>/<id>/``     save
``DELETE <stream>/<id>/``  delete
``POST <stream>/<event>/`` a custom event (built-in actions: 405)
``OPTIONS <stream>/...``   the stream's description (the ``describe`` event)
``POST events/``           the WebSocket envelope ``{"event", "data"}``
=========================  ==========================================

Bodies are the reply's ``data`` (the envelope for ``events/``); errors are
``{"error": {...}}`` with the status of their code, JSON even for a server
error (500).
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from syncbind._auth.connection import open_http
from syncbind._bindings.request import BUILTIN_ACTIONS
from syncbind._transport import core
from syncbind._wire import parameters, protocol, values
from syncbind._workers.executor import run_in_pool
from syncbind.exceptions import STATUS_BY_CODE, BadRequest, SyncbindError, TooLarge
from syncbind.settings import api_settings


def read_body(request: HttpRequest) -> Any:
    """The decoded JSON body (``{}`` when empty)."""
    limit = api_settings.MAX_MESSAGE_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise TooLarge(f"Message larger than {limit} bytes.")
    try:
        body = request.body
    except RequestDataTooBig:
        raise TooLarge(f"Message larger than {limit} bytes.") from None
    if len(body) > limit:
        raise TooLarge(f"Message larger than {limit} bytes.")
    if not body.strip():
        return {}
    try:
        return values.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise BadRequest("The body is not valid JSON.") from None


def _object_body(request: HttpRequest) -> dict[str, Any]:
    body = read_body(request)
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    return body


def respond(
    reply: dict[str, Any], *, envelope: bool = False, created: bool = False
) -> HttpResponse:
    """The one way a reply (or error reply) becomes a response: the status is the
    error code's; the body is the reply's ``data`` (or ``{"error"}``), or, for the
    envelope view, the whole reply."""
    if "error" in reply:
        status = STATUS_BY_CODE.get(reply["error"]["code"], 500)
        text = protocol.encode(reply if envelope else {"error": reply["error"]})
    else:
        status = 201 if created else 200
        text = protocol.frame_text(reply) if envelope else protocol.data_text(reply)
    return HttpResponse(text, status=status, content_type="application/json")


def crashed(exc: Exception, *, envelope: bool = False) -> HttpResponse:
    """The JSON response for an exception that escaped the core (logged by the
    exception handler, never described to the client)."""
    error = api_settings.EXCEPTION_HANDLER(exc, {"request": None, "binding": None})
    return respond(protocol.error_reply(error), envelope=envelope)


def _failure(error: SyncbindError, message: protocol.Message | None = None) -> dict[str, Any]:
    if message is None:
        return protocol.error_reply(error.as_error())
    return protocol.error_reply(error.as_error(), message.event, message.request_id)


def _dispatch(request: HttpRequest, message: protocol.Message) -> dict[str, Any]:
    """Authenticate the request, and run the message through the core's request path."""
    try:
        connection = open_http(request)
    except SyncbindError as error:
        return _failure(error, message)
    return core.serve(message, connection)


def _message(stream: str, action: str, data: dict[str, Any]) -> protocol.Message:
    event = protocol.join_event(stream, action)
    protocol.parse_event(event)  # BadRequest for a malformed stream or action
    return protocol.Message(event=event, stream=stream, action=action, data=data)


def _list_data(request: HttpRequest) -> tuple[str, dict[str, Any]]:
    params = request.GET
    data: dict[str, Any] = {name: params[name] for name in parameters.HTTP_LIST if name in params}
    filters = {
        name: value for name, value in params.items() if name not in parameters.HTTP_NOT_FILTERS
    }
    if filters:
        data["filters"] = filters
    return ("search" if "query" in data else "list"), data


def pooled(view=None, *, envelope: bool = False):
    """Serve a sync view from syncbind's worker pool, answering JSON whatever happens.

    Under ASGI, Django runs sync views on one shared thread; going through the
    pool gives HTTP requests the same parallelism as WebSocket messages. CSRF is
    checked by SessionAuthentication, so the views themselves are exempt (token
    clients have no CSRF cookie). An exception that escapes the view is a JSON
    ``server_error`` (500), not Django's HTML page.
    """
    if view is None:
        return lambda view: pooled(view, envelope=envelope)

    @csrf_exempt
    @wraps(view)
    async def run(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return await run_in_pool(view, request, *args, **kwargs)
        except Exception as exc:
            return crashed(exc, envelope=envelope)

    return run


def describe(request: HttpRequest, stream: str, allow: str) -> HttpResponse:
    """``OPTIONS``: the stream's description (the ``describe`` event), and ``Allow``."""
    try:
        message = _message(stream, "describe", {})
    except SyncbindError as error:
        return respond(_failure(error))
    response = respond(_dispatch(request, message))
    response["Allow"] = allow
    return response


COLLECTION_METHODS = "GET, POST, OPTIONS"


@pooled
def collection(request: HttpRequest, stream: str) -> HttpResponse:
    """``GET`` a page, ``POST`` a new row, ``OPTIONS`` the description."""
    if request.method == "OPTIONS":
        return describe(request, stream, COLLECTION_METHODS)
    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405, headers={"Allow": COLLECTION_METHODS})
    try:
        if request.method == "GET":
            message = _message(stream, *_list_data(request))
        else:
            message = _message(stream, "create", _object_body(request))
    except SyncbindError as error:
        return respond(_failure(error))
    return respond(_dispatch(request, message), created=request.method == "POST")


MEMBER_ACTIONS = {"GET": "retrieve", "PATCH": "update", "PUT": "save", "DELETE": "delete"}
ROW_METHODS = "GET, PATCH, PUT, DELETE, OPTIONS"


@pooled
def member(request: HttpRequest, stream: str, key: str) -> HttpResponse:
    """A row (``GET``/``PATCH``/``PUT``/``DELETE``), or a custom event (``POST``);
    ``OPTIONS`` the stream's description.

    ``POST <stream>/<built-in action>/`` is refused (405): each built-in action
    has its one route, so the method a proxy, a log or CSRF sees is what the
    request does (``events/`` takes any event, as the WebSocket does).
    """
    if request.method == "OPTIONS":
        return describe(request, stream, f"{ROW_METHODS}, POST")
    action = key if request.method == "POST" else MEMBER_ACTIONS.get(request.method or "")
    if action in BUILTIN_ACTIONS and request.method == "POST":
        return HttpResponse(status=405, headers={"Allow": ROW_METHODS})
    if action is None:
        return HttpResponse(status=405, headers={"Allow": f"{ROW_METHODS}, POST"})
    try:
        if request.method == "POST":
            data = _object_body(request)
        else:
            body = _object_body(request) if action in ("update", "save") else {}
            data = {**body, "id": key}
        message = _message(stream, action, data)
    except SyncbindError as error:
        return respond(_failure(error))
    return respond(_dispatch(request, message))


@pooled(envelope=True)
def events(request: HttpRequest) -> HttpResponse:
    """``POST`` the WebSocket envelope; the reply is the WebSocket reply, with its status."""
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    try:
        message = protocol.parse_envelope(read_body(request))
    except protocol.InvalidFrame as invalid:
        return respond(invalid.reply(), envelope=True)
    except SyncbindError as error:
        return respond(_failure(error), envelope=True)
    return respond(_dispatch(request, message), envelope=True)
