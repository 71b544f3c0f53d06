"""Filter choices validated once per process, kept while the change log shows their tables unwritten.

A foreign-key filter (django-filter's ``ModelChoiceFilter``) validates its
value by reading the row from the rows the request may name (the binding's
``get_related_queryset``, which scopes them to the user): one statement per
request, so a crowd resuming the same filtered page would cost one each
although nothing changed. With capture on, the row found is kept, keyed by
that queryset's compiled SQL and parameters (so by who asks, as far as the
rows they may name differ) and the value, with the change-log position read
before it was looked up; it is used again only while the reader finds no
write since that position to any table the lookup reads (the related table
and every table its scoping joins or filters through). A write is taken into
account once this process's reader has read it, as for a resume; a table not
captured, a queryset that does not compile, or no running reader: no keeping,
the lookup runs as without capture. A refused value is never kept.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from django.core.exceptions import EmptyResultSet

# Distinct (queryset, value) pairs kept per process (clients choose values: bounded).
MAX_CHOICES_KEPT = 10_000

_lock = threading.Lock()
Entry = tuple[str, frozenset[str], Any]  # (position, tables, row)
# Per reader (its positions are what entries are checked against; a reader stopped and
# started again keeps nothing): key -> entry, the most recently used last.
_kept: weakref.WeakKeyDictionary[Any, OrderedDict[Hashable, Entry]] = weakref.WeakKeyDictionary()
# key -> the lock one thread looks the key up under while the others wait, and how many
# threads hold or wait for it (dropped at none).
_finding: dict[Hashable, list[Any]] = {}


def _where(queryset: Any) -> tuple[Hashable, frozenset[str], Any] | None:
    """The key, tables and reader to keep ``queryset``'s lookups with, or None."""
    from syncbind._capture import _reader, covered_tables, enabled
    from syncbind._capture.tables import filter_tables

    alias = queryset.db
    if not enabled(alias):
        return None
    follower = _reader(alias)
    if follower is None:
        return None
    try:
        sql, params = queryset.query.sql_with_params()
        key = (alias, sql, tuple(params))
        hash(key)
    except (EmptyResultSet, TypeError):
        return None
    tables = frozenset({queryset.model._meta.db_table}) | filter_tables(queryset)
    if not tables <= covered_tables(alias):
        return None
    return key, tables, follower


def _still(follower: Any, key: Hashable) -> Any:
    """The row kept under ``key`` if no table it was read from was written since, else None."""
    with _lock:
        kept = _kept.setdefault(follower, OrderedDict())
        entry = kept.get(key)
    if entry is None:
        return None
    position, tables, row = entry
    written = follower.tables_since(position)
    stale = written is None or bool(written & tables)
    with _lock:
        if kept.get(key) is entry:
            if stale:
                del kept[key]
            else:
                kept.move_to_end(key)
    return None if stale else row


def _keep(follower: Any, key: Hashable, entry: Entry) -> None:
    with _lock:
        kept = _kept.setdefault(follower, OrderedDict())
        kept[key] = entry
        while len(kept) > MAX_CHOICES_KEPT:
            kept.popitem(last=False)


def choice(queryset: Any, field: str, value: Any, look_up: Callable[[], Any]) -> Any:
    """The row of ``queryset`` whose ``field`` is ``value``, as ``look_up()`` finds it
    (it raises for a value refused), or the one it found before if still current."""
    found = _where(queryset)
    if found is None:
        return look_up()
    base, tables, follower = found
    try:
        key: Hashable = (base, field, type(value).__name__, value)
        hash(key)
    except TypeError:
        return look_up()
    with _lock:
        finding = _finding.setdefault(key, [threading.Lock(), 0])
        finding[1] += 1
    try:
        with finding[0]:  # one thread looks a value up; the others wait for its row
            row = _still(follower, key)
            if row is None:
                position = follower.version()  # before the lookup: a write after it is seen
                row = look_up()
                if position is not None and isinstance(row, queryset.model):
                    _keep(follower, key, (position, tables, row))
    finally:
        with _lock:
            finding[1] -= 1
            if not finding[1]:
                del _finding[key]
    # Its own copy for each request: a caller may set attributes on it.
    return copy.copy(row) if isinstance(row, queryset.model) else row


def keep_choices(form_field: Any) -> None:
    """Make a ``ModelChoiceField`` of a filter's form look its value up through
    :func:`choice`; any other field is left as it is."""
    from django import forms

    if not isinstance(form_field, forms.ModelChoiceField) or isinstance(
        form_field, forms.ModelMultipleChoiceField
    ):
        return
    to_python = form_field.to_python

    def kept_to_python(value: Any) -> Any:
        if value in form_field.empty_values:
            return to_python(value)
        field = form_field.to_field_name or "pk"
        return choice(form_field.queryset, field, value, lambda: to_python(value))

    form_field.to_python = kept_to_python  # type: ignore[method-assign]
