"""Which page subscriptions a changed row can affect, decided without a query.

A page's queryset has a WHERE clause. :func:`compile_predicate` turns the
part of it that only compares the model's own integer, boolean and UUID
columns (``owner_id = 5``, ``public``, ``team_id IN (1, 2)``, ``parent_id IS
NULL``) with constants into a Python function over a row's values, in
three-valued logic: True (the row matches), False (it cannot), None (this
cannot tell: a text column, a join, a subquery, an expression...). Anything
not understood is None, and AND/OR/NOT combine as SQL's do, so False is only
ever answered when the database would answer false as well.

A page must be evaluated again after a change of row R when R may be in its
queryset before or after the change (its count and offsets move too), or was
on the page it last sent. With R's values before and after the change this
skips, exactly, the pages of other owners, teams or tenants.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, cast

from django.db import models
from django.db.models import lookups
from django.db.models.expressions import Col
from django.db.models.sql.where import AND, OR, NothingNode, WhereNode

Predicate = Callable[[dict[str, Any]], bool | None]

INTEGER_TYPES = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
    }
)


def _as_int(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError
    return int(value)


def _as_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise ValueError


def _as_uuid(value: Any) -> Any:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def normalizer(field: models.Field[Any, Any]) -> Callable[[Any], Any] | None:
    """How values of ``field``'s column compare, or None if they are not matched here."""
    if field.is_relation:
        if not (field.many_to_one or field.one_to_one) or not field.concrete:
            return None
        field = cast(Any, field).target_field  # the column a foreign key stores
    internal = field.get_internal_type()
    if internal in INTEGER_TYPES:
        return _as_int
    if internal == "BooleanField":
        return _as_bool
    if internal == "UUIDField":
        return _as_uuid
    return None


def matchable_fields(model: type[models.Model]) -> dict[str, Callable[[Any], Any]]:
    """``{attname: normalizer}`` of the columns predicates can compare."""
    found = {}
    for field in model._meta.concrete_fields:
        normalize = normalizer(field)
        if normalize is not None:
            found[field.attname] = normalize
    return found


def _unknown(values: dict[str, Any]) -> None:
    return None


def _never(values: dict[str, Any]) -> bool:
    return False


def _and(parts: list[Predicate]) -> Predicate:
    def evaluate(values: dict[str, Any]) -> bool | None:
        result: bool | None = True
        for part in parts:
            value = part(values)
            if value is False:
                return False
            if value is None:
                result = None
        return result

    return evaluate


def _or(parts: list[Predicate]) -> Predicate:
    def evaluate(values: dict[str, Any]) -> bool | None:
        result: bool | None = False
        for part in parts:
            value = part(values)
            if value is True:
                return True
            if value is None:
                result = None
        return result

    return evaluate


def _not(part: Predicate) -> Predicate:
    def evaluate(values: dict[str, Any]) -> bool | None:
        value = part(values)
        return None if value is None else not value

    return evaluate


_COMPARISONS: dict[type[lookups.Lookup[Any]], Callable[[Any, Any], bool]] = {
    lookups.GreaterThan: lambda a, b: bool(a > b),
    lookups.GreaterThanOrEqual: lambda a, b: bool(a >= b),
    lookups.LessThan: lambda a, b: bool(a < b),
    lookups.LessThanOrEqual: lambda a, b: bool(a <= b),
}


def _constant(value: Any, normalize: Callable[[Any], Any]) -> Any:
    if isinstance(value, models.Model):
        value = value.pk
    if hasattr(value, "resolve_expression"):
        raise ValueError("an expression")
    return normalize(value)


def _leaf(
    node: lookups.Lookup[Any], local_aliases: set[Any], model: type[models.Model]
) -> Predicate:
    lhs = node.lhs
    if not isinstance(lhs, Col) or lhs.alias not in local_aliases:
        return _unknown
    field = lhs.target
    if field.model._meta.concrete_model is not model._meta.concrete_model:
        return _unknown
    normalize = normalizer(field)
    if normalize is None:
        return _unknown
    attname = field.attname
    try:
        if isinstance(node, lookups.IsNull):
            expected = bool(node.rhs)

            def is_null(values: dict[str, Any]) -> bool | None:
                if attname not in values:
                    return None
                return (values[attname] is None) is expected

            return is_null
        if isinstance(node, lookups.In):
            if not isinstance(node.rhs, list | tuple | set | frozenset):
                return _unknown
            allowed = frozenset(_constant(item, normalize) for item in node.rhs if item is not None)
            test: Callable[[Any], bool] = allowed.__contains__
        elif isinstance(node, lookups.Exact):
            expected_value = _constant(node.rhs, normalize)

            def test(value: Any) -> bool:
                return bool(value == expected_value)

        else:
            compare = next(
                (fn for kind, fn in _COMPARISONS.items() if isinstance(node, kind)), None
            )
            if compare is None or normalize is not _as_int:
                return _unknown
            bound = _constant(node.rhs, normalize)

            def test(value: Any) -> bool:
                return compare(value, bound)

    except (TypeError, ValueError, AttributeError):
        return _unknown

    def matches(values: dict[str, Any]) -> bool | None:
        value = values.get(attname)
        if value is None:  # unknown, or SQL NULL, which no comparison matches
            return None
        try:
            return bool(test(normalize(value)))
        except (TypeError, ValueError):
            return None

    return matches


def _compile(node: Any, local_aliases: set[Any], model: type[models.Model]) -> Predicate:
    if isinstance(node, WhereNode):
        parts = [_compile(child, local_aliases, model) for child in node.children]
        if node.connector == AND:
            combined = _and(parts)
        elif node.connector == OR:
            combined = _or(parts)
        else:  # XOR
            return _unknown
        return _not(combined) if node.negated else combined
    if isinstance(node, NothingNode):
        return _never
    if isinstance(node, lookups.Lookup):
        return _leaf(node, local_aliases, model)
    return _unknown


def compile_predicate(queryset: models.QuerySet[Any]) -> Predicate:
    """The predicate of ``queryset``'s WHERE clause over one row's values (see the module)."""
    query = queryset.query
    aliases = {query.base_table} if query.base_table else set()
    aliases.add(queryset.model._meta.db_table)
    return _compile(query.where, aliases, queryset.model)


def may_contain(predicate: Predicate, before: Any, after: Any) -> bool:
    """Whether a row whose values were ``before`` and are ``after`` may be, or have been,
    in the queryset. ``before``/``after`` are dicts, ABSENT (no such row) or UNKNOWN."""
    if before is SAME:
        before = after
    for values in (before, after):
        if values is ABSENT:
            continue
        if values is UNKNOWN or predicate(values) is not False:
            return True
    return False


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ABSENT = _Marker("ABSENT")  # the row did not exist (before a create, after a delete)
UNKNOWN = _Marker("UNKNOWN")  # its values are not known
SAME = _Marker("SAME")  # before: the same values as after (a many-to-many change)
