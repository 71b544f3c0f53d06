"""The wire protocol: frames in, replies out. Pure functions, no I/O.

A request frame is one JSON object::

    {"event": "<stream>.<action>[#<tag>]", "data": {...}, "request_id": <any JSON>}

:func:`parse_frame` turns it into a :class:`Message` or raises
:class:`InvalidFrame`; :func:`reply`, :func:`error_reply`, :func:`push` and
:func:`ended` build what goes back. docs/protocol.md describes the same thing for clients.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from syncbind._wire import values
from syncbind.exceptions import BadRequest, SyncbindError, TooLarge, ValidationError

# The WebSocket subprotocol a client offers (with a token, for TokenAuthentication)
# and the server accepts; docs/protocol.md.
SUBPROTOCOL = "syncbind"

# Close codes (docs/protocol.md, "Close codes").
#: The connection's credentials no longer hold.
REVOKED_CLOSE_CODE = 4003
#: The client does not read: more than MAX_OUTGOING_BYTES waited for it.
SLOW_CLIENT_CLOSE_CODE = 4008
SLOW_CLIENT_REASON = "Client too slow: outgoing queue full"
#: The user already holds MAX_CONNECTIONS_PER_USER sockets in this process (as HTTP 429).
TOO_MANY_CONNECTIONS_CLOSE_CODE = 4029

# ASCII only: no look-alike letters, no spaces, no empty segments. The action is
# the last dotted segment, the stream everything before it.
EVENT_RE = re.compile(
    r"(?P<stream>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"\.(?P<action>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:#(?P<tag>[A-Za-z0-9_-]{1,64}))?",
    re.ASCII,
)

_MISSING = object()
ENVELOPE_KEYS = frozenset({"event", "data", "request_id", "version"})
# A version is a position in the change log (syncbind._capture): digits, or a
# PostgreSQL snapshot ("xmin:xmax:xip,..."). Longer ones are refused.
VERSION_RE = re.compile(r"[0-9]{1,20}(:[0-9]{1,20}:[0-9,]{0,400})?(~[0-9a-f]{16})?", re.ASCII)
# What a read given a version answers (``"resume"`` in its reply): nothing the
# subscription reads changed since (no data); it changed (data); the log no longer
# reaches back that far (data).
UNCHANGED, CHANGED, EXPIRED = "unchanged", "changed", "expired"


@dataclass(frozen=True)
class Message:
    """A parsed request frame."""

    event: str
    stream: str
    action: str
    tag: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    request_id: Any = _MISSING
    # Size in UTF-8 bytes of the frame it came in (0 when not from a frame).
    size: int = 0
    # The version of the data the client holds for what this read subscribes to
    # (a reconnecting client resuming), or None.
    version: str | None = None

    @property
    def has_request_id(self) -> bool:
        return self.request_id is not _MISSING

    def event_for(self, action: str) -> str:
        """The event name of ``action`` on this message's stream, keeping its tag."""
        return join_event(self.stream, action, self.tag)


class InvalidFrame(Exception):
    """A frame that cannot become a Message; carries what could be read of it."""

    def __init__(self, error: SyncbindError, event: str | None = None, request_id: Any = _MISSING):
        super().__init__(error.message)
        self.error = error
        self.event = event
        self.request_id = request_id

    def reply(self) -> dict[str, Any]:
        """The error reply the frame gets, naming its event and request_id if read."""
        return error_reply(self.error.as_error(), self.event, self.request_id)


def join_event(stream: str, action: str, tag: str | None = None) -> str:
    return f"{stream}.{action}#{tag}" if tag else f"{stream}.{action}"


def parse_event(event: str) -> tuple[str, str, str | None]:
    """Split ``"shop.Product.list#cheap"`` into ``("shop.Product", "list", "cheap")``."""
    match = EVENT_RE.fullmatch(event)
    if match is None:
        raise BadRequest("Malformed event name.")
    return match["stream"], match["action"], match["tag"]


def utf8_size(text: str) -> int:
    """``len(text.encode())``, without encoding the (usual) ASCII frame."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def check_size(frame: str | bytes, max_bytes: int) -> None:
    # Counting characters first avoids encoding big frames just to measure them.
    if len(frame) > max_bytes or (
        isinstance(frame, str) and len(frame) * 4 > max_bytes and len(frame.encode()) > max_bytes
    ):
        raise InvalidFrame(TooLarge(f"Message larger than {max_bytes} bytes."))


class NoEvent(InvalidFrame):
    """A JSON object with no ``event``: a frame that names no stream. A consumer may
    take it itself (``receive_json``); otherwise it is refused with what the envelope's
    checks say of it (an unknown key first, as in any frame)."""

    def __init__(self, content: dict[str, Any]) -> None:
        try:
            parse_envelope(content)
        except InvalidFrame as refused:
            super().__init__(refused.error, refused.event, refused.request_id)
        else:  # not reached: an envelope without an event is refused
            super().__init__(BadRequest("The message needs an 'event' string."))
        self.content = content


def parse_frame(text: str | None, *, max_bytes: int, binary: bool = False) -> Message:
    """Parse one WebSocket text frame; raise InvalidFrame when it is not a request
    (:class:`NoEvent` when it is a JSON object that names no event)."""
    if binary or text is None:
        raise InvalidFrame(BadRequest("Binary frames are not supported; send JSON text."))
    check_size(text, max_bytes)
    try:
        content = values.loads(text)
    except (ValueError, RecursionError):
        raise InvalidFrame(BadRequest("The message is not valid JSON.")) from None
    if isinstance(content, dict) and "event" not in content:
        raise NoEvent(content)
    message = parse_envelope(content, size=utf8_size(text))
    if values.worth_checking(text):
        check_values(message)
    return message


def check_values(message: Message) -> None:
    """Raise InvalidFrame (``invalid``) for data no database could take (syncbind._wire.values)."""
    found = values.problems(message.data)
    if found:
        raise InvalidFrame(
            ValidationError(found), event=message.event, request_id=message.request_id
        )


def parse_envelope(content: Any, size: int = 0) -> Message:
    """Check a decoded envelope (WebSocket frame or HTTP body) and build the Message."""
    if not isinstance(content, dict):
        raise InvalidFrame(BadRequest("The message must be a JSON object."))
    request_id = content.get("request_id", _MISSING)
    unknown = sorted(str(key) for key in content if key not in ENVELOPE_KEYS)
    if unknown:
        # An old client's key (channels-binding's "order") would otherwise be ignored.
        raise InvalidFrame(
            BadRequest(
                f"Unknown key {unknown[0]!r}: a message has 'event', 'data', 'request_id' "
                "and 'version' (list parameters such as 'ordering' go in 'data')."
            ),
            event=content.get("event") if isinstance(content.get("event"), str) else None,
            request_id=request_id,
        )
    event = content.get("event")
    if not isinstance(event, str):
        raise InvalidFrame(
            BadRequest("The message needs an 'event' string."), request_id=request_id
        )
    try:
        stream, action, tag = parse_event(event)
    except BadRequest as exc:
        raise InvalidFrame(exc, event=event, request_id=request_id) from None
    data = content.get("data", {})
    if not isinstance(data, dict):
        raise InvalidFrame(
            BadRequest("'data' must be a JSON object."), event=event, request_id=request_id
        )
    version = content.get("version")
    if version is not None and not (isinstance(version, str) and VERSION_RE.fullmatch(version)):
        raise InvalidFrame(
            BadRequest("'version' must be a version string a reply or push carried."),
            event=event,
            request_id=request_id,
        )
    return Message(
        event=event,
        stream=stream,
        action=action,
        tag=tag,
        data=data,
        request_id=request_id,
        size=size,
        version=version,
    )


class Reply(dict[str, Any]):
    """A success reply, its ``data`` already encoded (``data_text``).

    Made where the handler returns, inside its transaction: a result JSON cannot
    carry fails there (and rolls the handler's writes back) rather than after
    the commit, and the transports send the text without encoding it again.
    """

    __slots__ = ("data_text",)
    data_text: str


class Unchanged:
    """What a resumed read returns when nothing it reads changed since the client's
    version: its reply carries no data."""

    def __repr__(self) -> str:
        return "UNCHANGED_DATA"


UNCHANGED_DATA = Unchanged()


def reply(message: Message, data: Any, meta: dict[str, Any] | None = None) -> Reply:
    """The success reply to ``message``, with ``meta`` (a live read's ``version`` and
    ``resume``); raises TypeError or ValueError when ``data`` cannot be encoded."""
    out = Reply(event=message.event)
    if data is not UNCHANGED_DATA:
        out["data"] = data
    if message.has_request_id:
        out["request_id"] = message.request_id
    if meta:
        out.update(meta)
    out.data_text = _data_text(data) if data is not UNCHANGED_DATA else ""
    return out


def error_reply(
    error: dict[str, Any], event: str | None = None, request_id: Any = _MISSING
) -> dict[str, Any]:
    """An error reply; ``error`` is the object made by the exception handler."""
    out: dict[str, Any] = {"event": event, "error": error}
    if request_id is not _MISSING:
        out["request_id"] = request_id
    return out


def push(event: str, data: Any) -> dict[str, Any]:
    """A server-initiated message (live subscriptions)."""
    return {"event": event, "data": data}


def ended(event: str, error: dict[str, Any], pk: Any = _MISSING) -> dict[str, Any]:
    """The frame that ends a live subscription: its push event, why (``error`` as the
    exception handler made it: a code and a message) and, for a row, its id. No more
    pushes follow under that event for that row or page."""
    out: dict[str, Any] = {"event": event, "ended": error}
    if pk is not _MISSING:
        out["data"] = {"id": pk}
    return out


def encode(content: Any) -> str:
    """One frame's text: DjangoJSONEncoder's types (datetimes, Decimal, UUID, lazy strings)."""
    return json.dumps(content, cls=DjangoJSONEncoder, separators=(",", ":"))


# Texts of reply data encoded while a reply is being made (see encoding_reply).
_encoded: ContextVar[dict[int, tuple[Any, str]] | None] = ContextVar(
    "syncbind_encoded", default=None
)


def encode_data(data: Any) -> str:
    """``encode(data)``; inside :func:`encoding_reply`, the reply whose data this is
    reuses the text rather than encoding it again."""
    text = encode(data)
    known = _encoded.get()
    if known is not None:
        known[id(data)] = (data, text)  # the data is held, so its id stays its own
    return text


@contextmanager
def encoding_reply() -> Iterator[None]:
    """The scope in which :func:`encode_data` texts are kept for :func:`reply`."""
    token = _encoded.set({})
    try:
        yield
    finally:
        _encoded.reset(token)


def _data_text(data: Any) -> str:
    # A subscribing read has encoded its data for the subscription already.
    known = _encoded.get()
    found = known.get(id(data)) if known else None
    if found is not None and found[0] is data:
        return found[1]
    return encode(data)


def frame_text(content: dict[str, Any]) -> str:
    """A reply's frame text; a :class:`Reply`'s is built around its encoded data."""
    if not isinstance(content, Reply):
        return encode(content)
    text = f'{{"event":{encode(content["event"])}'
    if "data" in content:
        text += f',"data":{content.data_text}'
    for key, value in content.items():
        if key not in ("event", "data"):
            text += f",{encode(key)}:{encode(value)}"
    return text + "}"


def data_text(content: dict[str, Any]) -> str:
    """The text of a success reply's ``data`` (the body of an HTTP response)."""
    return content.data_text if isinstance(content, Reply) else encode(content["data"])
