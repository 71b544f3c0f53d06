"""Changes recorded during a transaction and announced once it commits.

Inside ``transaction.atomic()`` the changes are collected in one batch per
database connection, de-duplicated by (stream, primary key) with the last
operation winning, and sent by a single ``on_commit`` callback: one small
message per affected stream group. A rollback drops the batch with the rest of
the on-commit callbacks, so nothing is pushed. Outside a transaction (autocommit)
a change is announced at once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connections, transaction

from ..registry import registry
from ..serializers import to_json_safe
from ..settings import api_settings
from .keys import group_name

logger = logging.getLogger("syncbind.live")

SAVE = "save"
DELETE = "delete"
ANY = None  # "any row of the stream may have changed"


class Batch:
    """The changes of one transaction: ``{stream: {pk: op} | ANY}``."""

    def __init__(self) -> None:
        self.streams: dict[str, dict[Any, str] | None] = {}

    def add(self, stream: str, pk: Any, op: str) -> None:
        if stream in self.streams and self.streams[stream] is ANY:
            return
        if pk is ANY:
            self.streams[stream] = ANY
        else:
            self.streams.setdefault(stream, {})[pk] = op

    def __call__(self) -> None:
        send_batch(self)


def streams_for(model) -> list[str]:
    """The streams bound to ``model`` (or to a model sharing its table)."""
    concrete = model._meta.concrete_model
    return [
        binding.get_stream()
        for binding in registry.all()
        if binding.get_model()._meta.concrete_model is concrete
    ]


def record(model, pk: Any, op: str = SAVE, using: str | None = None) -> None:
    """Note that row ``pk`` of ``model`` changed (``pk`` ANY: any row); announce after commit."""
    streams = streams_for(model)
    if not streams:
        return
    pk = ANY if pk is ANY else to_json_safe(pk)
    connection = connections[using or "default"]
    if not connection.in_atomic_block:
        batch = Batch()
        for stream in streams:
            batch.add(stream, pk, op)
        send_batch(batch)
        return
    batch = _open_batch(connection)
    for stream in streams:
        batch.add(stream, pk, op)


def _open_batch(connection) -> Batch:
    batch = getattr(connection, "_syncbind_batch", None)
    # A batch registered inside a savepoint that was rolled back is no longer
    # among the pending callbacks: start a new one.
    if batch is None or not any(entry[1] is batch for entry in connection.run_on_commit):
        batch = Batch()
        connection._syncbind_batch = batch
        transaction.on_commit(batch, using=connection.alias)
    return batch


_failure = threading.Event()


def _group_send(layer, group: str, message: dict) -> None:
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        # After an outage the pool may still hold connections the server closed;
        # the first use of one fails, a second attempt gets a fresh connection.
        async_to_sync(layer.group_send)(group, message)


def send_batch(batch: Batch) -> None:
    """One group message per stream. Failures are logged once per outage, never raised:
    the write has committed already and its reply must go out."""
    layer = get_channel_layer(api_settings.CHANNEL_LAYER)
    if layer is None:
        return
    limit = api_settings.MAX_CHANGES_PER_MESSAGE
    for stream, ops in batch.streams.items():
        changes = None if ops is ANY or len(ops) > limit else [[pk, op] for pk, op in ops.items()]
        message = {"type": "syncbind.changes", "stream": stream, "changes": changes}
        try:
            _group_send(layer, group_name(stream), message)
        except Exception:
            if not _failure.is_set():
                _failure.set()
                logger.error(
                    "syncbind could not announce changes on %s; pushes are lost until the "
                    "channel layer answers again",
                    stream,
                    exc_info=True,
                )
        else:
            if _failure.is_set():
                _failure.clear()
                logger.warning("syncbind announces changes again")
