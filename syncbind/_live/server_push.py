"""What the hub does with the messages its groups bring before acting on them.

Change messages that arrive together are merged stream by stream (a burst of
writes costs one evaluation per affected key), and a server push
(:mod:`syncbind.push`) is addressed to the local connections it names, each
decided again at delivery (:func:`permitted`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

from syncbind._auth.decide import authorize, permits
from syncbind._bindings.registry import registry
from syncbind._bindings.request import Request
from syncbind._live import messages
from syncbind._live.keys import INSTANCE
from syncbind._reads import compiler, execution
from syncbind._wire import protocol
from syncbind.exceptions import SyncbindError

if TYPE_CHECKING:
    from syncbind._auth.connection import Connection
    from syncbind._live.hub import Hub


def push_targets(hub: Hub, target: Any) -> list[Connection]:
    """The local connections a push's ``target`` ([kind, name]) names."""
    kind, name = (target or [None, None])[:2]
    if kind == "user":
        return hub.connections_of(name)
    with hub.lock:
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


def permitted(hub: Hub, message: dict[str, Any], connections: list[Connection]) -> list[Connection]:
    """The connections a push may reach, decided again for each at delivery (worker thread).

    In order: the credentials of every recipient, checked in one batch whatever
    the refresh interval (:func:`check_credentials`); the user read again where
    the interval has passed (which chooses its push groups again); for a group,
    whether it is still in it; for an event naming a bound stream, that
    binding's permission classes; for a ``to_stream`` push about a row, whether
    the subscriber may read that row (:func:`readers`). Connections found
    invalid are marked so (the hub closes them).
    """
    connections = [c for c in connections if c.valid]
    check_credentials(connections)
    connections = [c for c in connections if c.valid and _refreshed_still_valid(c)]
    kind, name = (message.get("target") or [None, None])[:2]
    if kind == "group":
        with hub.lock:
            members = set(hub.push_groups.get(name, ()))
        connections = [c for c in connections if c in members]
    connections = _event_permitted(message.get("event"), connections)
    if kind == "stream" and message.get("row") is not None:
        connections = readers(name, message["row"], connections)
    return connections


def check_credentials(connections: list[Connection]) -> None:
    """Mark invalid each connection whose user is gone or inactive, or whose
    authentication class no longer admits it: one query for the users, then one
    ``still_valid_many()`` call per authentication class."""
    signed_in = [c for c in connections if getattr(c.user, "is_authenticated", False)]
    if not signed_in:
        return
    # Users are read again from their own model (``__class__`` sees through Channels'
    # lazy wrapper): one query per user model, in practice one.
    by_model: dict[type[models.Model], set[Any]] = {}
    for connection in signed_in:
        by_model.setdefault(connection.user.__class__, set()).add(connection.user.pk)
    users: dict[tuple[type, Any], Any] = {}
    for model, pks in by_model.items():
        for pk, found in model._default_manager.in_bulk(pks).items():
            users[(model, pk)] = found
    by_class: dict[type, list[Any]] = {}
    for connection in signed_in:
        user = users.get((connection.user.__class__, connection.user.pk))
        if user is None or not user.is_active:
            connection.valid = False
        elif connection.authenticator is not None:
            by_class.setdefault(type(connection.authenticator), []).append(connection)
    for group in by_class.values():
        fresh = [users[(c.user.__class__, c.user.pk)] for c in group]
        for connection, holds in zip(
            group, group[0].authenticator.still_valid_many(group, fresh), strict=True
        ):
            if not holds:
                connection.valid = False


def _refreshed_still_valid(connection: Connection) -> bool:
    """Re-read the user when USER_REFRESH_INTERVAL has passed; whether it may go on."""
    connection.refresh_if_due()
    return bool(connection.valid)


def _event_permitted(event: Any, connections: list[Connection]) -> list[Connection]:
    """All of ``connections``, unless ``event`` names a bound stream, whose permission
    classes each must pass for that action."""
    try:
        stream, action, tag = protocol.parse_event(event)
        binding_class = registry.get(stream)
    except SyncbindError:
        return connections
    message = protocol.Message(event=event, stream=stream, action=action, tag=tag)
    allowed = []
    for connection in connections:
        request = Request(message, connection)
        if permits(binding_class(request=request, action=action), request):
            allowed.append(connection)
    return allowed


def readers(stream: str, pk: Any, connections: list[Connection]) -> list[Connection]:
    """The connections that may read row ``pk`` of ``stream``, decided for each as a
    retrieve of it would (the permission classes for ``retrieve``, the binding's own
    ``get_object()`` if it has one, the object permissions), on the rows its
    ``get_queryset()`` and ``filter_queryset()`` (no filters) give that user. Equal
    reads are made once, and reads of one shape in one statement
    (:func:`syncbind._reads.execution.execute`)."""
    try:
        binding_class = registry.get(stream)
    except SyncbindError:
        return []  # no binding here: nobody here is subscribed to it
    message = protocol.Message(
        event=protocol.join_event(stream, "retrieve"),
        stream=stream,
        action="retrieve",
        data={"id": pk},
    )
    allowed: list[Any] = []
    pending: list[tuple[Any, Any, Any]] = []
    distinct: dict[Any, Any] = {}
    for connection in connections:
        request = Request(message, connection)
        binding = binding_class(request=request, action="retrieve")
        try:
            authorize(binding, request)
            value = binding.get_lookup_value()
            if binding.get_subscription_key(INSTANCE, value)[1] is None:
                binding.get_object()  # the binding's own get_object() decides too
            # Lists scope in filter_queryset() as well: a row it hides is not sent.
            read = compiler.object_read(binding.filter_queryset(binding._queryset()), value)
        except SyncbindError:
            continue
        read = distinct.setdefault(read.identity, read)
        pending.append((connection, binding, read))
    found = dict(zip(distinct, execution.execute(list(distinct.values())), strict=True))
    for connection, binding, read in pending:
        obj = found[read.identity]
        if obj is not None and permits(binding, binding.request, obj):
            allowed.append(connection)
    return allowed


def merge(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge the change messages of each stream (keeping the order of first appearance)."""
    merged: list[dict[str, Any]] = []
    by_stream: dict[Any, dict[str, Any]] = {}
    for message in batch:
        if messages.kind(message) != messages.CHANGES:
            merged.append(message)
            continue
        stream = message.get("stream")
        known = by_stream.get(stream)
        if known is None:
            known = by_stream[stream] = dict(message)
            merged.append(known)
            continue
        if known["changes"] is None or message.get("changes") is None:
            known["changes"] = None
        else:
            known["changes"] = [*known["changes"], *message["changes"]]
        if message.get("batch"):
            # The reads of the change log they came with go out together.
            known["batch"] = [*known.get("batch", ()), *message["batch"]]
    return merged
