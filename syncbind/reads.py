"""Reads: what a retrieve or a page reads, compiled once, executed alone or many at once.

A read is built from a binding's hooks (``get_queryset()``, ``filter_queryset()``,
the serializer's ``optimize()``) and compiled to one SQL statement when it is
made. The request that makes it executes that statement; a live subscription
keeps it. The statement and its parameters say exactly what the read returns:
two reads with the same ones return the same rows, whatever hooks built them.

Reads whose statements differ only in their parameters (each user's
``owner_id = %s``) have the same *shape*, and :func:`execute` runs them
together: one ``UNION ALL`` statement per batch, each branch tagged with its
index. A page's total comes with its rows (``COUNT(*) OVER ()``), and its rows'
order with them (``ROW_NUMBER() OVER (...)``), so one statement answers a page.

What this cannot compile that way (DISTINCT, aggregates, set operations,
``extra()``, sliced or ``values()`` querysets) is read the ordinary way, one at
a time; :attr:`Read.unbatchable` says why.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections, models
from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber
from django.db.models.query import ModelIterable, Prefetch, get_related_populators

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
    for lookup in queryset._prefetch_related_lookups:
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
        statement = queryset.filter(pk=pk).annotate(**{PK: F("pk")})[:1]
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


# -- execution ---------------------------------------------------------------------


def execute(reads: Sequence[Read], batch_size: int = 100) -> list[Any]:
    """Execute ``reads``; returns, in order, an instance or None per ObjectRead and a
    :class:`PageResult` per PageRead. Reads of one shape share statements,
    ``batch_size`` reads per statement."""
    results: list[Any] = [None] * len(reads)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, read in enumerate(reads):
        groups.setdefault(read.shape, []).append(index)
    for indexes in groups.values():
        first = reads[indexes[0]]
        if first.empty:
            for index in indexes:
                results[index] = _empty(reads[index])
        elif first.unbatchable is not None:
            for index in indexes:
                results[index] = _execute_alone(reads[index])
        else:
            for start in range(0, len(indexes), batch_size):
                chunk = indexes[start : start + batch_size]
                for index, result in zip(
                    chunk, _execute_batch([reads[i] for i in chunk]), strict=True
                ):
                    results[index] = result
    return results


def execute_one(read: Read) -> Any:
    return execute([read])[0]


def _empty(read: Read) -> Any:
    return PageResult(count=0) if isinstance(read, PageRead) else None


def _execute_alone(read: Read) -> Any:
    queryset = read.queryset
    if isinstance(read, ObjectRead):
        rows = list(queryset.filter(pk=read.pk)[:1])
        return rows[0] if rows else None
    assert isinstance(read, PageRead)
    count = queryset.count()
    if read.offset >= count:
        return PageResult(count=count)
    return PageResult(count=count, rows=list(queryset[read.offset : read.offset + read.limit]))


def _execute_batch(batch: list[Read]) -> list[Any]:
    first = batch[0]
    if len(batch) == 1:
        return [_execute_single(first)]
    if first.shareable:
        return _execute_shared(batch)
    forms = [batch_form(read) for read in batch]
    sql = " UNION ALL ".join(
        f"SELECT {index} AS {KEY}, s.* FROM ({form[0]}) s" for index, form in enumerate(forms)
    )
    params = tuple(param for form in forms for param in form[1])
    with connections[first.using].cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    per_read: list[list[Any]] = [[] for _ in batch]
    for row in fetched:
        per_read[row[0]].append(row[1:])
    builder = _InstanceBuilder(forms[0][2], first.using, first.queryset)
    results = builder.build_all(batch, per_read)
    builder.prefetch()
    for read, result in zip(batch, results, strict=True):
        if isinstance(read, PageRead) and not result.rows and read.offset:
            # Past the last page the window has no row to carry the total.
            result.count = read.queryset.count()
    return results


def _execute_single(read: Read) -> Any:
    """One read, as a request makes it: its own statement, then a count if needed."""
    with connections[read.using].cursor() as cursor:
        cursor.execute(read.sql, read.params)
        fetched = cursor.fetchall()
    builder = _InstanceBuilder(read.compiler, read.using, read.queryset)
    rows = builder.make(fetched)
    builder.prefetch()
    if isinstance(read, ObjectRead):
        return rows[0] if rows else None
    assert isinstance(read, PageRead)
    if rows and len(rows) < read.limit:
        count = read.offset + len(rows)  # the last page: no count needed
    elif not rows and not read.offset:
        count = 0
    else:
        count = read.queryset.count()
    return PageResult(count=count, rows=rows)


def fetch_rows(read: Read, pks: Sequence[Any]) -> dict[Any, models.Model]:
    """The rows ``pks`` as reads of ``read``'s row shape would make them, whoever reads
    them (no scoping: the caller decides who may see each). ``{pk: instance}``."""
    rows = read.model._base_manager.using(read.using).filter(pk__in=list(pks))
    rows.query.select_related = read.queryset.query.select_related
    rows.query.deferred_loading = read.queryset.query.deferred_loading
    lookups = read.queryset._prefetch_related_lookups
    found = {obj.pk: obj for obj in rows}
    if lookups and found:
        models.prefetch_related_objects(list(found.values()), *lookups)
    return found


def _execute_shared(batch: list[Read]) -> list[Any]:
    """Reads of one shape whose rows depend on the primary key alone, in one statement:
    each read's primary keys, positions and count, then each distinct row once.

    Many users' pages often hold the same rows; fetching them once per page
    would convert (and, on SQLite, parse the datetimes of) every row N times.
    """
    first = batch[0]
    connection = connections[first.using]
    quote = connection.ops.quote_name
    model = first.model
    forms = [batch_form(read) for read in batch]
    keyed = " UNION ALL ".join(
        f"SELECT {index} AS {KEY}, s.{quote(PK)} AS {PK}, "
        + (
            f"s.{quote(COUNT)} AS {COUNT}, s.{quote(POSITION)} AS {POSITION}"
            if isinstance(read, PageRead)
            else f"NULL AS {COUNT}, NULL AS {POSITION}"
        )
        + f" FROM ({form[0]}) s"
        for index, (read, form) in enumerate(zip(batch, forms, strict=True))
    )
    rows_of = model._base_manager.using(first.using).all()
    rows_of.query.select_related = first.queryset.query.select_related
    rows_of.query.deferred_loading = first.queryset.query.deferred_loading
    pk_column = f"{quote(model._meta.db_table)}.{quote(model._meta.pk.column)}"
    rows_of = rows_of.extra(where=[f"{pk_column} IN (SELECT {PK} FROM {SHARED})"])
    compiler = rows_of.query.get_compiler(using=first.using)
    rows_sql, rows_params = compiler.as_sql()
    blanks = ", ".join(["NULL"] * compiler.col_count)
    sql = (
        f"WITH {SHARED} AS ({keyed}) "
        f"SELECT {KEY}, {PK}, {COUNT}, {POSITION}, {blanks} FROM {SHARED} "
        f"UNION ALL SELECT NULL, NULL, NULL, NULL, w.* FROM ({rows_sql}) w"
    )
    params = (*(param for form in forms for param in form[1]), *rows_params)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    placed: list[list[tuple[Any, Any, Any]]] = [[] for _ in batch]
    raw_rows = []
    for row in fetched:
        if row[0] is None:
            raw_rows.append(row[4:])
        else:
            placed[row[0]].append((row[3], row[1], row[2]))
    builder = _InstanceBuilder(compiler, first.using, first.queryset)
    pk_index = builder.start + builder.init_list.index(model._meta.pk.attname)
    made = builder.make(raw_rows)
    by_pk = {raw[pk_index]: obj for raw, obj in zip(raw_rows, made, strict=True)}
    builder.prefetch()
    results: list[Any] = []
    for read, entries in zip(batch, placed, strict=True):
        entries.sort(key=lambda entry: entry[0] or 0)
        rows = [by_pk[pk] for _position, pk, _count in entries if pk in by_pk]
        if isinstance(read, ObjectRead):
            results.append(rows[0] if rows else None)
            continue
        count = entries[0][2] if entries else 0
        if not entries and read.offset:
            count = read.queryset.count()
        results.append(PageResult(count=count, rows=rows))
    return results


class _InstanceBuilder:
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
        self.populators = get_related_populators(klass_info, select, self.db)
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
            for relation, objects in self.queryset._known_related_objects.items()
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
        results = []
        for read, raw_rows, keys in zip(batch, per_read, identities, strict=True):
            rows = [made[where] if kind == "fresh" else self.seen[where] for kind, where in keys]
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
        obj = self.model.from_db(self.db, self.init_list, row[self.start : self.end])
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
        lookups = self.queryset._prefetch_related_lookups
        if lookups and self.instances:
            models.prefetch_related_objects(self.instances, *lookups)
