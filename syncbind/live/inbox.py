"""What the hub does with the messages its groups bring before acting on them.

Change messages that arrive together are merged stream by stream (a burst of
writes costs one evaluation per affected key), and a server push
(:mod:`syncbind.push`) is addressed to the local connections it names and
that the event's permission classes let through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import SyncbindError

if TYPE_CHECKING:
    from .hub import Hub


def push_targets(hub: Hub, target: Any) -> list[Any]:
    """The local connections a push's ``target`` ([kind, name]) names."""
    kind, name = (target or [None, None])[:2]
    with hub.lock:
        if kind == "user":
            return list(hub.connections.get(name, ()))
        if kind == "group":
            return list(hub.push_groups.get(name, ()))
        if kind == "stream":
            owners = {
                sub.owner: None
                for state in hub.keys.values()
                if state.key.stream == name
                for sub in state.subs
            }
            return [owner.connection for owner in owners if owner.connection is not None]
    return []


def permitted(event: Any, connections: list[Any]) -> list[Any]:
    """The connections a push of ``event`` may reach: all of them, unless ``event`` names
    a bound stream, whose permission classes each must pass for that action."""
    from .. import protocol
    from ..registry import registry
    from ..request import Request

    try:
        stream, action, tag = protocol.parse_event(event)
        binding_class = registry.get(stream)
    except SyncbindError:
        return [c for c in connections if c.valid]
    message = protocol.Message(event=event, stream=stream, action=action, tag=tag)
    allowed = []
    for connection in connections:
        try:
            connection.refresh()
            if not connection.valid:
                continue
            request = Request(message, connection)
            binding_class(request=request, action=action).check_permissions(request)
        except SyncbindError:
            continue
        allowed.append(connection)
    return allowed


def merge(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge the change messages of each stream (keeping the order of first appearance)."""
    merged: list[dict[str, Any]] = []
    by_stream: dict[Any, dict[str, Any]] = {}
    for message in messages:
        if message.get("type") != "syncbind.changes":
            merged.append(message)
            continue
        stream = message.get("stream")
        known = by_stream.get(stream)
        if known is None:
            known = by_stream[stream] = dict(message)
            merged.append(known)
        elif known["changes"] is None or message.get("changes") is None:
            known["changes"] = None
        else:
            known["changes"] = [*known["changes"], *message["changes"]]
    return merged
