"""Executing reads: alone, as a request makes them, or many of one shape at once.

:func:`execute` groups reads by shape and runs each group as few statements
as it can (``batch_size`` reads per ``UNION ALL``); :func:`fetch_rows` reads
rows by primary key in a read's row shape. Rows become model instances in
:mod:`syncbind._reads.materialise`, one instance per distinct row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from django.db import connections, models

from syncbind._reads.compiler import (
    COUNT,
    KEY,
    PK,
    POSITION,
    SHARED,
    ObjectRead,
    PageRead,
    PageResult,
    Read,
    batch_form,
)
from syncbind._reads.materialise import InstanceBuilder


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
    builder = InstanceBuilder(forms[0][2], first.using, first.queryset)
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
        cursor.execute(cast(str, read.sql), read.params)  # compiled: never None here
        fetched = cursor.fetchall()
    builder = InstanceBuilder(read.compiler, read.using, read.queryset)
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
    lookups = read.queryset._prefetch_related_lookups  # type: ignore[attr-defined]
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
    builder = InstanceBuilder(compiler, first.using, first.queryset)
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
        if not entries and isinstance(read, PageRead) and read.offset:
            count = read.queryset.count()
        results.append(PageResult(count=count, rows=rows))
    return results
