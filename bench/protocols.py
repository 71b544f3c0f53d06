"""How the load generator speaks to each contender: requests, and how to read what comes back.

A protocol builds the request for each kind of step and tells a reply from a
push and a good reply from an error. Every connection has one request in
flight at a time, so the next reply on a connection answers its request.

The scoped fan-out's kinds are ``scoped_row`` (``arg``: a ``ScopedItem`` id) and
``scoped_page`` (``arg``: the ``public`` filter's value), on ``ScopedItem``.
"""

from __future__ import annotations

from typing import Any

STREAM = "benchapp.Item"
SCOPED_STREAM = "benchapp.ScopedItem"
PAGE_SIZE = 25


class Protocol:
    name = ""
    # Whether a subscription's reply carries the rows (then the client checks them).
    replies_with_rows = False

    def request(self, kind: str, arg: Any, request_id: int) -> dict:
        raise NotImplementedError

    def is_push(self, message: dict) -> bool:
        """True for a message that answers no request: a subscription's push."""
        return False

    def reply_ok(self, kind: str, arg: Any, message: dict) -> bool:
        """Whether ``message`` is the right answer to ``request(kind, arg)``."""
        raise NotImplementedError

    def rows(self, message: dict) -> list[dict]:
        """The rows a reply or push carries (a deleted row's id alone is no row)."""
        return []


class Syncbind(Protocol):
    name = "syncbind"
    replies_with_rows = True

    def request(self, kind, arg, request_id):
        if kind == "scoped_row":
            return {
                "event": f"{SCOPED_STREAM}.retrieve",
                "data": {"id": arg},
                "request_id": request_id,
            }
        if kind == "scoped_page":
            return {
                "event": f"{SCOPED_STREAM}.list",
                "data": {"filters": {"public": arg}},
                "request_id": request_id,
            }
        if kind == "scoped_unsubscribe":
            # Everything this connection follows on the stream.
            return {"event": f"{SCOPED_STREAM}.unsubscribe", "data": {}, "request_id": request_id}
        if kind == "retrieve":
            return {"event": f"{STREAM}.retrieve", "data": {"id": arg}, "request_id": request_id}
        if kind == "list":
            return {"event": f"{STREAM}.list", "data": {"page": arg}, "request_id": request_id}
        if kind == "slow":
            return {"event": f"{STREAM}.slow", "data": {}, "request_id": request_id}
        if kind == "subscribe_row":
            return {"event": f"{STREAM}.retrieve", "data": {"id": arg}, "request_id": request_id}
        if kind == "subscribe_page":
            return {
                "event": f"{STREAM}.list",
                "data": {"filters": {"category": arg}},
                "request_id": request_id,
            }
        raise ValueError(kind)

    def is_push(self, message):
        return "request_id" not in message

    def reply_ok(self, kind, arg, message):
        data = message.get("data")
        if "error" in message or data is None:
            return False
        if kind in ("retrieve", "subscribe_row", "scoped_row"):
            return data.get("id") == arg
        if kind == "list":
            return len(data["rows"]) == PAGE_SIZE
        if kind in ("subscribe_page", "scoped_page"):
            return len(data["rows"]) > 0
        if kind == "scoped_unsubscribe":
            return data.get("success") is True
        return kind == "slow"

    def rows(self, message):
        data = message.get("data")
        if not isinstance(data, dict):
            return []
        if "rows" in data:
            return data["rows"]
        return [data] if len(data) > 1 else []


class DCRF(Protocol):
    name = "dcrf"
    actions = {
        "retrieve": "retrieve",
        "list": "list",
        "slow": "slow",
        "subscribe_row": "subscribe_instance",
        "subscribe_page": "subscribe_category",
        # On /ws/scoped/; DCRF has no per-user page subscription (no scoped_page).
        "scoped_row": "subscribe_instance",
        "scoped_unsubscribe": "unsubscribe_instance",
    }

    def request(self, kind, arg, request_id):
        if kind == "scoped_unsubscribe":
            # Without a request_id DCRF ends every subscription to the row, not one request's.
            return {"action": self.actions[kind], "pk": arg}
        message = {"action": self.actions[kind], "request_id": request_id}
        if kind in ("retrieve", "subscribe_row", "scoped_row"):
            message["pk"] = arg
        elif kind == "list":
            message["page"] = arg
        elif kind == "subscribe_page":
            message["category"] = arg
        return message

    def is_push(self, message):
        return message.get("action") in ("create", "update", "delete")

    def reply_ok(self, kind, arg, message):
        if message.get("errors") or message.get("response_status", 500) >= 400:
            return False
        if kind == "retrieve":
            return message["data"]["id"] == arg
        if kind == "list":
            return len(message["data"]) == PAGE_SIZE
        return True

    def rows(self, message):
        data = message.get("data")
        return [data] if isinstance(data, dict) and len(data) > 1 else []


class ChannelsBinding(Protocol):
    """channels-binding has no request ids; its ``search`` event is the paged list."""

    name = "channels_binding"

    def request(self, kind, arg, request_id):
        if kind == "retrieve":
            return {"event": f"{STREAM}.retrieve", "data": {"id": arg}}
        if kind == "list":
            return {"event": f"{STREAM}.search", "data": {"page": arg, "limit": PAGE_SIZE}}
        if kind == "slow":
            return {"event": f"{STREAM}.slow", "data": {}}
        raise ValueError(kind)

    def reply_ok(self, kind, arg, message):
        if "error" in message:
            return False
        if kind == "retrieve":
            return message["data"]["id"] == arg
        if kind == "list":
            return len(message["data"]["rows"]) == PAGE_SIZE
        return True


class Plain(Protocol):
    name = "plain"

    def request(self, kind, arg, request_id):
        message = {"action": kind, "request_id": request_id}
        if kind == "retrieve":
            message["id"] = arg
        elif kind == "list":
            message["page"] = arg
        return message

    def reply_ok(self, kind, arg, message):
        data = message.get("data")
        if data is None:
            return False
        if kind == "retrieve":
            return data["id"] == arg
        if kind == "list":
            return len(data["rows"]) == PAGE_SIZE
        return True


class Echo(Plain):
    """Sends what Plain sends; the reply is the request itself."""

    name = "echo"

    def reply_ok(self, kind, arg, message):
        return message.get("action") == kind


PROTOCOLS = {p.name: p for p in (Syncbind(), DCRF(), ChannelsBinding(), Plain(), Echo())}
