"""The messages hubs receive, each built here and read by its type: one place for the wire.

They come over the channel layer (from any process) or, for captured changes,
from this process's change reader (:mod:`syncbind._capture`); the hub puts
them in its lanes (:mod:`.lanes`) and acts on them (``Hub.process``)::

    {"type": "syncbind.changes", "stream": s, "changes": [[pk, op, before, after], ...] | None}
    {"type": "syncbind.auth", "user": key, "session": key | None}   # or "users": [key, ...]
    {"type": "syncbind.push", "target": [...], "event": e, "frame": text}
    {"type": "syncbind.joined", "group": g, "stream": s}            # this hub's own
    {"type": "syncbind.marker", "marker": m}                        # settle()'s
"""

from __future__ import annotations

from typing import Any

CHANGES = "syncbind.changes"
AUTH = "syncbind.auth"
PUSH = "syncbind.push"
JOINED = "syncbind.joined"
MARKER = "syncbind.marker"


def changes(stream: str, rows: list[list[Any]] | None) -> dict[str, Any]:
    """Rows of ``stream`` changed (``[pk, op, before, after]`` each, see
    :mod:`.changes`), or, with None, any of its rows may have."""
    return {"type": CHANGES, "stream": stream, "changes": rows}


def anything(stream: str) -> dict[str, Any]:
    """Any row of ``stream`` may have changed: every key of it is evaluated again."""
    return changes(stream, None)


def credentials(user_key: str | None, session_key: str | None = None) -> dict[str, Any]:
    """The credentials of one user changed (``session_key``: a session that ended)."""
    return {"type": AUTH, "user": user_key, "session": session_key}


def permissions(user_keys: list[Any]) -> dict[str, Any]:
    """These users' permissions may have changed."""
    return {"type": AUTH, "users": user_keys}


def push(target: list[Any], event: str, frame: str) -> dict[str, Any]:
    """A server push of ``frame`` (its text) to ``target`` (:mod:`syncbind.push`)."""
    return {"type": PUSH, "target": target, "event": event, "frame": frame}


def joined(group: str, stream: str) -> dict[str, Any]:
    return {"type": JOINED, "group": group, "stream": stream}


def marker(name: str) -> dict[str, Any]:
    return {"type": MARKER, "marker": name}


def kind(message: dict[str, Any]) -> Any:
    return message.get("type")
