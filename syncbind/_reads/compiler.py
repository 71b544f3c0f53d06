"""Reads: what a retrieve or a page reads, compiled once, executed alone or many at once.

A read is built from a binding's hooks (``get_queryset()``, ``filter_queryset()``,
the serializer's ``optimize()``) and compiled to one SQL statement when it is
made. The request that makes it executes that statement; a live subscription
keeps it. The statement and its parameters say exactly what the read returns:
two reads with the same ones return the same rows, whatever hooks built them.

Reads whose statements differ only in their parameters (each user's
``owner_id = %s``) have the same *shape*, and :func:`syncbind._reads.execution.execute`
runs them together: one ``UNION ALL`` statement per batch, each branch tagged with its
index. A page's total comes with its rows (``COUNT(*) OVER ()``), and its rows'
order with them (``ROW_NUMBER() OVER (...)``), so one statement answers a page.

What this cannot compile that way (DISTINCT, aggregates, set operations,
``extra()``, sliced or ``values()`` querysets) is read the ordinary way, one at
a time; :attr:`Read.unbatchable` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import models
from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber
from django.db.models.query import ModelIterable, Prefetch

COUNT = "syncbind_count"
POSITION = "syncbind_position"
PK = "syncbind_pk"
KEY = "syncbind_key"
SHARED = "syncbind_keyed"


@dataclass(eq=False)
class Read:
    """One compiled read. ``identity`` is what subscriptions are shared by."""

    queryset: models.QuerySet
    using: str
    sql: str | None = None
    params: tuple[Any, ...] = ()
    compiler: Any = None
    # Why this read is executed on its own (None: it can be batched).
    unbatchable: str | None = None
    # The statement matches nothing (e.g. ``pk__in=[]``): no query is made.
    empty: bool = False
    # Its rows depend on their primary key alone (no annotations of the queryset's
    # own), so reads of its shape can fetch each distinct row once.
    shareable: bool = False
    # How its rows are fetched (select_related, deferred fields, prefetches): reads
    # with equal ones can use the same fetched row.
    row_shape: tuple[Any, ...] = ()
    # Ordered by the primary key alone: a row's place on a page cannot move.
    ordered_by_pk: bool = False
    identity: tuple[Any, ...] = ()
    shape: tuple[Any, ...] = ()

    @property
    def model(self) -> type[models.Model]:
        return self.queryset.model


@dataclass(eq=False)
class ObjectRead(Read):
    pk: Any = None


@dataclass(eq=False)
class PageRead(Read):
    page: int = 1
    limit: int = 25

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


@dataclass
class PageResult:
    count: int
    rows: list[models.Model] = field(default_factory=list)


def unbatchable_reason(queryset: Any) -> str | None:
    """Why ``queryset`` cannot be compiled into a batchable statement, or None."""
    if not isinstance(queryset, models.QuerySet):
        return f"get_queryset() returned {type(queryset).__name__}, not a QuerySet"
    if queryset._iterable_class is not ModelIterable:
        return "the queryset yields values(), not model instances"
    query = queryset.query
    if query.combinator:
        return f"the queryset is a {query.combinator}()"
    if query.is_sliced:
        return "the queryset is sliced"
    if query.distinct:
        return "the queryset uses distinct()"
    if query.group_by is not None or any(
        getattr(annotation, "contains_aggregate", False)
        for annotation in query.annotations.values()
    ):
        return "the queryset aggregates"
    if query.extra or query.extra_tables:
        return "the queryset uses extra()"
    if "?" in query.order_by:
        return "the queryset is ordered at random"
    return None


def _ordering(queryset: models.QuerySet) -> list[Any]:
    query = queryset.query
    ordering = list(query.order_by)
    if not ordering and query.default_ordering:
        ordering = list(queryset.model._meta.ordering)
    return ordering or ["pk"]


def _prefetch_identity(queryset: models.QuerySet) -> tuple[Any, ...]:
    identity = []
    for lookup in queryset._prefetch_related_lookups:  # type: ignore[attr-defined]
        if isinstance(lookup, Prefetch):
            inner = lookup.queryset
            compiled = None
            if inner is not None:
                try:
                    compiled = inner.query.sql_with_params()
                except EmptyResultSet:
                    compiled = "empty"
                compiled = (compiled[0], repr(compiled[1])) if compiled != "empty" else compiled
            identity.append((lookup.prefetch_through, lookup.to_attr, compiled))
        else:
            identity.append(lookup)
    return tuple(identity)


def _compile(
    read: Read, statement: models.QuerySet, kind: str, reason: str | None, extra: tuple[Any, ...]
) -> None:
    read.unbatchable = reason
    prefetch = _prefetch_identity(read.queryset)
    if read.unbatchable is not None:
        # Still identified by what it reads, so equal reads share; executed alone.
        try:
            sql, params = read.queryset.query.get_compiler(using=read.using).as_sql()
        except EmptyResultSet:
            sql, params = "empty", ()
        read.identity = (kind, read.using, sql, repr(params), prefetch, extra)
        read.shape = ("alone", id(read))
        return
    compiler = statement.query.get_compiler(using=read.using)
    try:
        read.sql, read.params = compiler.as_sql()
    except EmptyResultSet:
        read.empty = True
        read.identity = (kind, read.using, "empty", prefetch, extra)
        read.shape = ("empty",)
        return
    read.params = tuple(read.params)
    read.compiler = compiler
    query = read.queryset.query
    read.shareable = not query.annotations and not query.extra_select
    read.row_shape = (
        read.using,
        repr(query.select_related),
        repr(query.deferred_loading),
        prefetch,
    )
    pk_names = {"pk", read.model._meta.pk.name, read.model._meta.pk.attname}
    read.ordered_by_pk = all(
        isinstance(term, str) and term.removeprefix("-") in pk_names
        for term in _ordering(read.queryset)
    )
    read.shape = (kind, read.using, read.sql, prefetch)
    read.identity = (*read.shape, repr(read.params))


def object_read(queryset: models.QuerySet, pk: Any) -> ObjectRead:
    """The read of row ``pk`` within ``queryset``."""
    read = ObjectRead(queryset=queryset, using=queryset.db, pk=pk)
    reason = unbatchable_reason(queryset)
    statement = queryset
    if reason is None:
        statement = queryset.filter(pk=pk)
        if not statement.query.distinct_fields:
            # One row: its order is moot, and compiling it is a tenth of a retrieve's
            # CPU (QuerySet.get() drops it too).
            statement = statement.order_by()
        statement = statement.annotate(**{PK: F("pk")})[:1]
    _compile(read, statement, "object", reason, (repr(pk),))
    return read


def page_read(queryset: models.QuerySet, page: int, limit: int) -> PageRead:
    """The read of one page of ``queryset`` (already filtered and ordered).

    Compiled as the page alone (``LIMIT``/``OFFSET``): that is what a request
    runs, with a count when the page is full. The form that carries its count
    and positions, for batches, is compiled on first use (:func:`batch_form`):
    a window over the whole queryset would make every request sort it.
    """
    read = PageRead(queryset=queryset, using=queryset.db, page=page, limit=limit)
    reason = unbatchable_reason(queryset)
    statement = queryset[read.offset : read.offset + limit] if reason is None else queryset
    _compile(read, statement, "page", reason, (page, limit))
    return read


def batch_form(read: Read) -> tuple[str, tuple[Any, ...], Any]:
    """``(sql, params, compiler)`` of ``read`` as a branch of a batch: its rows with
    their primary key and, for a page, their count and position."""
    cached = read.__dict__.get("_batch_form")
    if cached is not None:
        return cached
    if isinstance(read, PageRead):
        statement = read.queryset.annotate(
            **{
                COUNT: Window(Count("*")),
                POSITION: Window(RowNumber(), order_by=_ordering(read.queryset)),
                PK: F("pk"),
            }
        )[read.offset : read.offset + read.limit]
        compiler = statement.query.get_compiler(using=read.using)
        sql, params = compiler.as_sql()
        form = (sql, tuple(params), compiler)
    else:
        form = (read.sql, read.params, read.compiler)
    read.__dict__["_batch_form"] = form
    return form
