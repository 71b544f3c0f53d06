"""Change records, as the hubs' change messages: what a model signal would have announced.

A record of a bound table is a change of its streams (its primary key, the
operation, the matchable values before it). A saved row whose columns other
streams show makes those streams' showing rows change (one query each, as
for a signal). A record of a many-to-many table changes the rows it links.
And a write to a table a subscription's read filters through (other than
its own) makes each hub evaluate that stream's keys again, as does a
position found pruned (everything it follows).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.apps import apps

from syncbind._capture.log import Batch
from syncbind._capture.tables import model_for_table
from syncbind._live import changes, messages
from syncbind._live.matching import ABSENT, SAME, UNKNOWN


def messages_for(found: Batch, hubs: list[Any]) -> list[tuple[Any, list[dict[str, Any]]]]:
    """``(hub, messages)`` for each hub that holds subscriptions."""
    if not hubs:
        return []
    if found.missed:
        # Records may be gone: every stream each hub follows is evaluated again.
        return [(hub, [messages.anything(stream) for stream in hub.streams()]) for hub in hubs]
    batch = changes.Batch()
    touched: set[str] = set(found.crowded)
    for record in found.records:
        touched.add(record.table)
        model = model_for_table(record.table)
        if model is not None:
            _add(batch, model, record)
    for table in found.crowded:
        model = model_for_table(table)
        if model is not None:
            for stream in changes.streams_for(model):
                batch.add(stream, changes.ANY, changes.SAVE, UNKNOWN, UNKNOWN)
            for stream, _shown_model, _path in changes.shown_by(model):
                batch.add(stream, changes.ANY, changes.SAVE, UNKNOWN, UNKNOWN)
    common = changes.messages_of(batch)
    out = []
    for hub in hubs:
        held = hub.streams()
        extra = [messages.anything(s) for s in hub.streams_filtering_through(touched)]
        out.append((hub, [m for m in common if m["stream"] in held] + extra))
    return out


def _add(batch: changes.Batch, model: Any, record: Any) -> None:
    pk = changes.to_json_safe(model._meta.pk.to_python(record.pk))
    op = changes.DELETE if record.op == "D" else changes.SAVE
    before = ABSENT if record.op == "I" else (record.old if record.old is not None else UNKNOWN)
    after = ABSENT if record.op == "D" else (record.new if record.new is not None else UNKNOWN)
    for stream in changes.streams_for(model):
        batch.add(stream, pk, op, before, after)
    if op == changes.SAVE and changes.shown_by(model):
        batch.shown.setdefault(model, set()).add(pk)
    if model._meta.auto_created or _is_through(model):
        _add_linked(batch, model, record)


@cache
def _is_through(model: Any) -> bool:
    """Whether ``model`` is the table of a many-to-many relation named ``through=``."""
    return any(
        field.remote_field.through is model
        for other in apps.get_models()
        for field in other._meta.local_many_to_many
    )


def _add_linked(batch: changes.Batch, through: Any, record: Any) -> None:
    """A row of a many-to-many table linked or unlinked two rows: both changed (their
    related fields), not their own columns."""
    for field in through._meta.concrete_fields:
        if not field.many_to_one:
            continue
        target = field.related_model._meta.concrete_model
        streams = changes.streams_for(target)
        if not streams:
            continue
        for values in (record.old, record.new):
            if isinstance(values, dict) and values.get(field.attname) is not None:
                pk = changes.to_json_safe(target._meta.pk.to_python(values[field.attname]))
                for stream in streams:
                    batch.add(stream, pk, changes.SAVE, SAME, UNKNOWN)
