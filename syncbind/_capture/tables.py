"""What is captured: the tables whose writes can change what a stream shows, and their columns.

A stream's rows change when a row of its own table is written; the rows of
another stream change when a table they show a column of is written (a
related field, ``project__name``); and who may see which rows changes when a
table their reads join or filter through is written (``project__members``).
So the captured tables are, for every bound model: its own table, the tables
its foreign keys and many-to-many relations reach, two relations deep (with
the many-to-many tables between), and the tables of the models other streams
show. Each record carries the table's primary key and the columns matching
compares (:mod:`syncbind._live.matching`), before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models.expressions import Col
from django.db.models.sql.query import Query

from syncbind._bindings.registry import registry
from syncbind._live.changes import shown_through
from syncbind._live.matching import matchable_fields

# How many relations away from a bound model a table is still captured.
DEPTH = 2
# Django's own bookkeeping: never what a stream reads.
SKIPPED_APPS = frozenset({"syncbind", "sessions", "contenttypes", "admin", "migrations"})


@dataclass(frozen=True)
class Table:
    """A captured table: its name, primary-key column and the columns recorded, as
    ``(attname, column)``: a record's values are keyed as the model's are."""

    name: str
    pk: str
    columns: tuple[tuple[str, str], ...]
    model: type[models.Model]

    @property
    def identity(self) -> str:
        """What its triggers are made of: they are replaced when this changes."""
        columns = ",".join(f"{name}={column}" for name, column in self.columns)
        return f"{self.name}|{self.pk}|{columns}"


def captured_models() -> list[type[models.Model]]:
    """The models whose tables are captured (bound, reached, shown), each concrete once."""
    found: dict[Any, None] = {}
    for binding in registry.all():
        try:
            model = binding.get_model()
        except Exception:  # a binding the system checks report
            continue
        _reach(model._meta.concrete_model, DEPTH, found)
        for related, _path in shown_through(binding):
            _reach(related._meta.concrete_model, 0, found)
    return [model for model in found if model._meta.app_label not in SKIPPED_APPS]


def _reach(model: type[models.Model] | None, depth: int, found: dict[Any, None]) -> None:
    if model is None or model in found or model._meta.proxy or not model._meta.managed:
        return
    found[model] = None
    if depth <= 0:
        return
    for field in model._meta.get_fields(include_hidden=False):
        if not field.is_relation or field.related_model is None:
            continue
        if field.many_to_many:
            # The relation holds the table: a reverse one is its own, a field's is its
            # remote_field (a ManyToManyField is not ``concrete`` on Django 6.0 and later).
            rel: Any = field if isinstance(field, models.ForeignObjectRel) else field.remote_field
            through = rel.through
            if through is not None:
                _reach(through._meta.concrete_model, 0, found)
        if field.concrete or field.many_to_many:
            related = field.related_model
            if isinstance(related, str):  # an unresolved lazy reference
                continue
            _reach(related._meta.concrete_model, depth - 1, found)


def table_of(model: type[models.Model]) -> Table:
    concrete = model._meta.concrete_model or model
    meta = concrete._meta
    matched = matchable_fields(concrete)
    columns = tuple((f.attname, f.column) for f in meta.concrete_fields if f.attname in matched)
    return Table(meta.db_table, meta.pk.column, columns, concrete)


def captured_tables() -> list[Table]:
    """Every captured table (see the module docstring)."""
    return [table_of(model) for model in captured_models()]


@cache
def model_for_table(name: str) -> Any:
    """The concrete model whose table is ``name`` (None if none is installed)."""
    for model in apps.get_models(include_auto_created=True):
        if model._meta.db_table == name and not model._meta.proxy:
            return model._meta.concrete_model
    return None


@cache
def reached_tables(model: type[models.Model]) -> frozenset[str]:
    """The tables captured for ``model`` itself (its own and those its relations reach):
    what a read that cannot be compiled (its binding's own ``get_page()``) may read."""
    found: dict[Any, None] = {}
    _reach(model._meta.concrete_model, DEPTH, found)
    return frozenset(other._meta.db_table for other in found)


def filter_tables(queryset: Any) -> frozenset[str]:
    """The tables ``queryset``'s WHERE reads (joined through, or in a subquery): a write to
    one may change which rows it returns. The joins made only to output related
    columns (``select_related``) are not among them."""
    return frozenset(_where_tables(queryset.query))


def _where_tables(query: Any) -> set[str]:

    aliases: set[str] = set()
    tables: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Col):
            aliases.add(node.alias)
            return
        inner = node if isinstance(node, Query) else getattr(node, "query", None)
        if isinstance(inner, Query):  # a subquery: Subquery, Exists, pk__in=queryset
            tables.update(join.table_name for join in inner.alias_map.values())
            tables.update(_where_tables(inner))
            if inner is node:
                return
        for child in getattr(node, "children", ()):
            walk(child)
        if hasattr(node, "get_source_expressions"):
            for expression in node.get_source_expressions():
                if expression is not None:
                    walk(expression)
        rhs = getattr(node, "rhs", None)
        if isinstance(rhs, list | tuple | set):
            for item in rhs:
                walk(item)
        elif rhs is not None and hasattr(rhs, "resolve_expression"):
            walk(rhs)

    walk(query.where)
    for alias in aliases:
        # The join path from the base table to the alias: every table on it.
        step: Any = alias
        while step is not None and step in query.alias_map:
            join = query.alias_map[step]
            tables.add(join.table_name)
            step = getattr(join, "parent_alias", None)
    return tables


def read_tables(model: type[models.Model], read: Any) -> frozenset[str]:
    """Every captured table a subscription's state may depend on: those its model
    reaches (its own, the rows it shows, its many-to-many tables) and those its read
    filters through."""
    found = reached_tables(model)
    if read is not None:
        found = found | filter_tables(read.queryset)
    return found
