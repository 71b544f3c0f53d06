"""Changes recorded during a transaction and announced once it commits.

Inside ``transaction.atomic()`` changes are collected in one batch per
savepoint level of each database connection, de-duplicated by (stream,
primary key), and sent by an ``on_commit`` callback registered at that level:
a rolled-back savepoint drops its own batch with the rest of its callbacks, a
rollback drops them all. Outside a transaction a change is announced at once.

A change carries the row's matchable column values (see
:mod:`syncbind._live.matching`) before and after it, when they are known, so
that every hub can skip the page subscriptions the row cannot be part of.
The message of one stream is small::

    {"type": "syncbind.changes", "stream": "shop.Product",
     "changes": [[pk, "save", before, after], ...]}   # or "changes": null: anything

where ``before``/``after`` are a dict of values, ``false`` (no such row),
``null`` (not known) or, for ``before`` only, ``true`` (the same as after).
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import connections, models, transaction

from syncbind import _capture as capture
from syncbind._bindings.registry import registry
from syncbind._live import messages
from syncbind._live.announcer import announce
from syncbind._live.keys import group_name
from syncbind._live.matching import ABSENT, SAME, UNKNOWN
from syncbind._wire.jsonsafe import to_json_safe
from syncbind.serializers import ModelSerializer
from syncbind.settings import api_settings

logger = logging.getLogger("syncbind.live")

SAVE = "save"
DELETE = "delete"
ANY = None  # "any row of the stream may have changed"


def encode_values(values: Any) -> Any:
    if values is ABSENT:
        return False
    if values is UNKNOWN:
        return None
    if values is SAME:
        return True
    return {name: to_json_safe(value) for name, value in values.items()}


def decode_values(wire: Any) -> Any:
    if wire is False:
        return ABSENT
    if wire is None:
        return UNKNOWN
    if wire is True:
        return SAME
    return wire


class Batch:
    """The changes of one transaction level: ``{stream: {pk: [op, before, after]} | ANY}``."""

    def __init__(self) -> None:
        self.streams: dict[str, dict[Any, list[Any]] | None] = {}
        # Saved rows whose values other streams show (related fields): model -> pks.
        self.shown: dict[Any, set[Any]] = {}
        # Databases whose captured tables it wrote: their readers are woken at commit.
        self.captured: set[str] = set()

    def add(self, stream: str, pk: Any, op: str, before: Any, after: Any) -> None:
        if stream in self.streams and self.streams[stream] is ANY:
            return
        if pk is ANY:
            self.streams[stream] = ANY
            return
        rows = self.streams.setdefault(stream, {})
        assert rows is not None  # ANY returned above
        known = rows.get(pk)
        if known is None:
            rows[pk] = [op, before, after]
        else:
            # The first "before" is the row as the transaction found it.
            known[0], known[2] = op, after

    def __call__(self) -> None:
        send_batch(self)


def streams_for(model: type[models.Model]) -> list[str]:
    """The streams bound to ``model`` (or to a model sharing its table)."""
    concrete = model._meta.concrete_model
    return [
        binding.get_stream()
        for binding in registry.all()
        if binding.get_model()._meta.concrete_model is concrete
    ]


_shown: dict[Any, list[tuple[str, Any, str]]] = {}
_shown_version = -1


def shown_by(model: type[models.Model]) -> list[tuple[str, Any, str]]:
    """``(stream, its model, foreign-key path to model)`` for every stream whose rows
    show a field of ``model`` through a related field (``fields = ["project__name"]``)."""
    global _shown_version
    if _shown_version != registry.version:
        _shown.clear()
        _shown_version = registry.version
    concrete = model._meta.concrete_model
    if concrete not in _shown:
        _shown[concrete] = [
            (binding.get_stream(), binding.get_model(), path)
            for binding in registry.all()
            for related, path in shown_through(binding)
            if related._meta.concrete_model is concrete
        ]
    return _shown[concrete]


def shown_through(binding: Any) -> list[tuple[Any, str]]:
    """``(related model, foreign-key path)`` of each related field ``binding``'s rows show
    (none for a DRF serializer, whose reads are its own, or a binding the system checks
    report)."""
    try:
        serializer = binding().get_serializer()
        if not isinstance(serializer, ModelSerializer):
            return []
        return list(serializer.depends_on())
    except Exception:
        return []


def record(
    model: type[models.Model],
    pk: Any,
    op: str = SAVE,
    using: str | None = None,
    before: Any = UNKNOWN,
    after: Any = UNKNOWN,
    *,
    written: Any = None,
    explicit: bool = False,
) -> None:
    """Note that row ``pk`` of ``model`` changed (``pk`` ANY: any row); announce after commit.

    A write to a captured table (``written``: the model whose table was written, if
    not ``model``'s) is announced by the database (:mod:`syncbind._capture`): only
    this process's reader is woken at commit. ``explicit`` (``notify()``) announces
    it all the same.
    """
    alias = using or "default"
    captured = not explicit and capture.covers(written or model, alias)
    streams = [] if captured else streams_for(model)
    shown = not captured and op == SAVE and pk is not ANY and bool(shown_by(model))
    if not streams and not shown and not captured:
        return
    pk = ANY if pk is ANY else to_json_safe(pk)
    connection = connections[alias]
    batch = Batch() if not connection.in_atomic_block else _open_batch(connection)
    if captured:
        batch.captured.add(alias)
    for stream in streams:
        batch.add(stream, pk, op, before, after)
    if shown:
        batch.shown.setdefault(model._meta.concrete_model, set()).add(pk)
    if not connection.in_atomic_block:
        send_batch(batch)


def _open_batch(connection: Any) -> Batch:
    level = frozenset(connection.savepoint_ids)
    batches: dict[frozenset, Batch] = connection.__dict__.setdefault("_syncbind_batches", {})
    batch = batches.get(level)
    # A batch whose savepoint (or transaction) was rolled back is no longer among the
    # pending callbacks: start a new one.
    if batch is None or not any(entry[1] is batch for entry in connection.run_on_commit):
        if not connection.run_on_commit:
            batches.clear()
        batch = batches[level] = Batch()
        transaction.on_commit(batch, using=connection.alias)
    return batch


def send(group: str, message: dict[str, Any], what: str) -> None:
    """Announce ``message`` to ``group`` (:mod:`.announcer`): queued and sent by the
    process's announcer thread, so the caller never waits on a channel-layer server;
    failures are logged once per outage, never raised.

    A layer of this process (Channels' in-memory layer) has no server to wait on: it
    is sent to at once, in the caller's thread, so that a change reaches the hub
    before the writer goes on. Delivered later, an earlier change's evaluation could
    read beside the writer's next write, which SQLite's shared-cache test database
    refuses ("database table is locked").
    """
    layer = get_channel_layer(api_settings.CHANNEL_LAYER)
    if layer is None:
        return
    if isinstance(layer, InMemoryChannelLayer):
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:
            logger.error("syncbind could not announce %s", what, exc_info=True)
        return
    announce(layer, group, message, what)


def _add_shown(batch: Batch, limit: int) -> None:
    # The rows of other streams that show the saved rows (one query per such stream,
    # after the commit): their related fields changed, their own columns did not.
    for model, pks in batch.shown.items():
        for stream, shown_model, path in shown_by(model):
            rows = shown_model._base_manager.filter(**{f"{path}__in": list(pks)})
            found = list(rows.values_list("pk", flat=True)[: limit + 1])
            if len(found) > limit:
                batch.add(stream, ANY, SAVE, UNKNOWN, UNKNOWN)
            for pk in found:
                batch.add(stream, to_json_safe(pk), SAVE, SAME, UNKNOWN)


def messages_of(batch: Batch) -> list[dict[str, Any]]:
    """The group messages of a batch, one per stream (with the rows that show its saved
    rows added: one query per such stream). Nothing is raised: the write committed."""
    limit = api_settings.MAX_CHANGES_PER_MESSAGE
    if batch.shown:
        try:
            _add_shown(batch, limit)
        except Exception:
            logger.exception("syncbind could not find the rows that show the saved ones")
    found = []
    for stream, rows in batch.streams.items():
        if rows is ANY or len(rows) > limit:
            changes = None
        else:
            changes = [
                [pk, op, encode_values(before), encode_values(after)]
                for pk, (op, before, after) in rows.items()
            ]
        found.append(messages.changes(stream, changes))
    return found


def send_batch(batch: Batch) -> None:
    """Announce a committed transaction's changes: one group message per stream."""
    for alias in batch.captured:
        capture.poke(alias)
    for message in messages_of(batch):
        stream = message["stream"]
        send(group_name(stream), message, f"changes on {stream}")
