"""Model instances from the rows of a statement syncbind wrote itself.

Reads of one shape run together (:mod:`syncbind._reads.execution`) return raw rows that no
queryset iterates, so they become instances here the way Django's
``ModelIterable`` makes them: ``from_db`` (with Django 6.1's fetch mode where
it has one), ``select_related`` populators, annotations and prefetches. A row
that several reads returned becomes one instance they share.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import partial
from typing import Any
from weakref import ref as weak_ref

from django.db import models
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]
from django.utils.inspect import func_supports_parameter

from syncbind._reads.compiler import COUNT, PK, POSITION, ObjectRead, PageResult, Read


class InstanceBuilder:
    """Turns rows of one shape's statement into model instances, as Django's
    ModelIterable does, sharing one instance between reads that returned the same row."""

    def __init__(self, compiler: Any, db: str, queryset: models.QuerySet) -> None:
        self.compiler = compiler
        self.db = db
        self.queryset = queryset
        select, klass_info = compiler.select, compiler.klass_info
        annotations = dict(compiler.annotation_col_map or {})
        annotations.pop(PK, None)
        self.count_col = annotations.pop(COUNT, None)
        self.position_col = annotations.pop(POSITION, None)
        self.annotations = annotations
        self.model = klass_info["model"]
        select_fields = klass_info["select_fields"]
        self.start, self.end = select_fields[0], select_fields[-1] + 1
        self.init_list = [column[0].target.attname for column in select[self.start : self.end]]
        # Django 6.1 gives querysets a fetch mode that instances and their related
        # populators carry (what a deferred field's access loads); earlier, none.
        self.fetch_mode = getattr(queryset, "_fetch_mode", None)
        if self.fetch_mode is None:
            self.populators = get_related_populators(klass_info, select, self.db)
        else:
            self.populators = get_related_populators(klass_info, select, self.db, self.fetch_mode)
        self.from_db = _from_db(self.model, self.fetch_mode)
        self.peers: list[Any] | None = (
            [] if getattr(self.fetch_mode, "track_peers", False) else None
        )
        self.known_related = [
            (
                relation,
                objects,
                operator.attrgetter(
                    *[
                        relation.attname
                        if from_field == "self"
                        else self.queryset.model._meta.get_field(from_field).attname
                        for from_field in relation.from_fields
                    ]
                ),
            )
            for relation, objects in self.queryset._known_related_objects.items()  # type: ignore[attr-defined]
        ]
        skip = {self.count_col, self.position_col}
        kept = [index for index in range(len(select)) if index not in skip]
        # The columns that make two rows the same row (not their count or position).
        self._columns = (
            operator.itemgetter(*kept) if len(kept) > 1 else (lambda raw: (raw[kept[0]],))
        )
        self.seen: dict[Any, models.Model | None] = {}
        self.instances: list[models.Model] = []

    def _identity(self, raw: tuple[Any, ...]) -> Any:
        try:
            key = self._columns(raw)
            hash(key)
        except TypeError:  # an unhashable column value (JSON): no sharing for this row
            return None
        return key

    def build_all(self, batch: list[Read], per_read: list[list[Any]]) -> list[Any]:
        """One result per read. A row that several reads returned alike (the same
        page for many users) is converted and made into an instance once."""
        identities: list[list[Any]] = []
        fresh: list[Any] = []  # raw rows not seen before, in order
        fresh_keys: list[Any] = []
        for raw_rows in per_read:
            if self.position_col is not None:
                raw_rows.sort(key=operator.itemgetter(self.position_col))
            keys = []
            for raw in raw_rows:
                identity = self._identity(raw)
                if identity is None or identity not in self.seen:
                    if identity is not None:
                        self.seen[identity] = None  # claimed: made below
                    fresh.append(raw)
                    fresh_keys.append(identity)
                    keys.append(("fresh", len(fresh) - 1))
                else:
                    keys.append(("seen", identity))
            identities.append(keys)
        made = self.make(fresh)
        for identity, obj in zip(fresh_keys, made, strict=True):
            if identity is not None:
                self.seen[identity] = obj
        results: list[Any] = []
        for read, raw_rows, keys in zip(batch, per_read, identities, strict=True):
            rows: list[Any] = [
                made[where] if kind == "fresh" else self.seen[where] for kind, where in keys
            ]
            count = raw_rows[0][self.count_col] if raw_rows and self.count_col is not None else 0
            if isinstance(read, ObjectRead):
                results.append(rows[0] if rows else None)
            else:
                results.append(PageResult(count=count, rows=rows))
        return results

    def make(self, raw_rows: list[Any]) -> list[models.Model]:
        """Instances of ``raw_rows`` (converted as Django converts them)."""
        made = [self._instance(row) for row in self.compiler.results_iter(results=[raw_rows])]
        self.instances.extend(made)
        return made

    def _instance(self, row: Any) -> models.Model:
        obj = self.from_db(self.db, self.init_list, row[self.start : self.end])
        if self.peers is not None:
            self.peers.append(weak_ref(obj))
            obj._state.peers = self.peers  # type: ignore[attr-defined]
        for populator in self.populators:
            populator.populate(row, obj)
        for name, column in self.annotations.items():
            setattr(obj, name, row[column])
        for relation, objects, getter in self.known_related:
            if relation.is_cached(obj):
                continue
            related = objects.get(getter(obj))
            if related is not None:
                setattr(obj, relation.name, related)
        return obj

    def prefetch(self) -> None:
        lookups = self.queryset._prefetch_related_lookups  # type: ignore[attr-defined]
        if lookups and self.instances:
            models.prefetch_related_objects(self.instances, *lookups)


def _from_db(model: type[models.Model], fetch_mode: Any) -> Callable[..., models.Model]:
    """``model.from_db`` with the queryset's fetch mode where Django has one, and
    where the model's (possibly overridden) ``from_db`` accepts it."""
    if fetch_mode is None or not func_supports_parameter(model.from_db, "fetch_mode"):
        return model.from_db
    return partial(model.from_db, fetch_mode=fetch_mode)  # type: ignore[call-arg]
