"""Values no database can store or compare, found before they reach one.

Every request's ``data`` is checked once, when its frame (or HTTP body) is
parsed: text must be valid Unicode without NUL characters (PostgreSQL refuses
both, in text and in JSON), numbers must be finite (``NaN`` and ``Infinity``
are not JSON, and PostgreSQL's ``jsonb`` refuses them), and nothing may be
nested deeper than ``MAX_JSON_DEPTH``. A value that fails is ``invalid``,
named by its top-level key (or, inside ``filters``, by the filter's name).

The serializer and the filters check what only a field's type tells: that a
datetime exists in every time zone (years 1 to 9999), that a decimal fits,
that an integer fits its column (:func:`out_of_range`: the field's own range on
PostgreSQL, 64 bits on SQLite), and that a boolean is one (:func:`as_boolean`).
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import re
from typing import Any

from django.db import models

from syncbind.settings import api_settings


class NonFinite(float):
    """``NaN``, ``Infinity`` or ``-Infinity`` in a frame, kept so it can be refused by name."""


def _constant(name: str) -> NonFinite:
    return NonFinite(name.replace("Infinity", "inf"))


def loads(text: str | bytes) -> Any:
    """``json.loads`` that keeps non-finite numbers recognisable (see :func:`problems`)."""
    return json.loads(text, parse_constant=_constant)


_TEXT = "Text must be valid Unicode without NUL characters."
_NUMBER = "NaN and Infinity are not numbers this API accepts."


def _nested(depth: int) -> str:
    return f"Values may be nested at most {depth} levels deep."


def _bad_text(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return True
    return False


def _problem(value: Any, depth: int, limit: int) -> str | None:
    stack = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            if _bad_text(item):
                return _TEXT
        elif isinstance(item, float) and not math.isfinite(item):
            # NaN/Infinity (NonFinite), or a number too large for a float (1e400).
            return _NUMBER
        elif isinstance(item, dict | list):
            if level >= limit:
                return _nested(limit)
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str) and _bad_text(key):
                        return _TEXT
                    stack.append((child, level + 1))
            else:
                stack.extend((child, level + 1) for child in item)
    return None


# A float overflows only with an exponent of three digits or 309 digits in a row.
_HUGE_NUMBER = re.compile(r"\d[eE]\+?\d{3}|\d{309}")


def worth_checking(text: str) -> bool:
    """Whether a frame may hold such a value: an escape, a constant, a number too
    large for a float, deep nesting. Most frames have none, and are not walked at all."""
    if "\\u" in text or "NaN" in text or "Infinity" in text or _HUGE_NUMBER.search(text):
        return True
    max_depth: int = api_settings.MAX_JSON_DEPTH
    return text.count("[") + text.count("{") > max_depth


def problems(data: dict[str, Any]) -> dict[str, list[str]]:
    """``{name: [message]}`` for every value of ``data`` no database could take."""
    limit = api_settings.MAX_JSON_DEPTH
    found: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(key, str) and _bad_text(key):
            found["__all__"] = [_TEXT]
            continue
        if key == "filters" and isinstance(value, dict):
            for name, filter_value in value.items():
                message = _problem(filter_value, 2, limit)
                if isinstance(name, str) and _bad_text(name):
                    message = _TEXT
                if message:
                    found[str(name)] = [message]
            continue
        message = _problem(value, 1, limit)
        if message:
            found[key] = [message]
    return found


# -- what a field's type says -----------------------------------------------------

# A datetime is stored in UTC and shown in any time zone: one day of margin at
# both ends keeps every conversion within Python's (and PostgreSQL's) years 1-9999.
EARLIEST = datetime.datetime(1, 1, 2, tzinfo=datetime.UTC)
LATEST = datetime.datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=datetime.UTC)
DATETIME_RANGE = "Enter a date and time between 0001-01-02 and 9999-12-30 (UTC)."


def datetime_in_range(value: datetime.datetime) -> bool:
    if value.tzinfo is None:
        return EARLIEST.replace(tzinfo=None) <= value <= LATEST.replace(tzinfo=None)
    try:
        return EARLIEST <= value.astimezone(datetime.UTC) <= LATEST
    except (OverflowError, ValueError):
        return False


# Filters compare with a decimal; beyond this exponent no column holds a neighbour.
DECIMAL_EXPONENT = 1000
DECIMAL_RANGE = "Enter a number between 1e-1000 and 1e1000 in size (or zero)."
# 64-bit integers: what every backend compares without overflowing.
INTEGER_RANGE = (-(2**63), 2**63 - 1)


def decimal_in_range(value: decimal.Decimal) -> bool:
    # adjusted() is the exponent of the leading digit: 1e-1000 <= |value| < 1e1000.
    return value.is_finite() and (
        value.is_zero() or -DECIMAL_EXPONENT <= value.adjusted() < DECIMAL_EXPONENT
    )


def format_decimal(value: decimal.Decimal, places: int | None, digits: int | None) -> str:
    """``value`` with exactly ``places`` decimals, never in exponent notation ("0E-18")."""
    if places is not None:
        context = decimal.Context(prec=max(digits or 0, value.adjusted() + places + 1, 28) + 2)
        value = value.quantize(decimal.Decimal(1).scaleb(-places), context=context)
    return format(value, "f")


# -- integers and booleans ----------------------------------------------------------


def column_range(field: Any, ops: Any) -> tuple[int, int] | None:
    """The integers the column of ``field`` holds (``ops``: the database's
    ``connection.ops``), or None when it is not an integer column. A relation
    stands for the field it points to; a positive field's column is the signed
    type under its check constraint, so a comparison with a negative number is fine."""
    if getattr(field, "is_relation", False):
        field = getattr(field, "target_field", None) or field.related_model._meta.pk
    if not isinstance(field, models.IntegerField):
        return None
    try:
        low, high = ops.integer_field_range(field.get_internal_type())
    except KeyError:  # a custom integer type the backend does not list
        low, high = INTEGER_RANGE
    high = INTEGER_RANGE[1] if high is None else high
    low = INTEGER_RANGE[0] if low is None else low
    return (-high - 1 if low == 0 else low), high


def _number(item: Any) -> int | decimal.Decimal | None:
    """``item`` as the number a form or lookup would make of it, or None if it is
    not one (then the field's own validation has its say)."""
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return item
    if isinstance(item, float):
        return decimal.Decimal(item) if math.isfinite(item) else None
    if isinstance(item, str):
        try:
            number = decimal.Decimal(item.strip())
        except (decimal.InvalidOperation, ValueError):
            return None
        return number if number.is_finite() else None
    return None


def out_of_range(field: Any, items: list[Any], ops: Any) -> str | None:
    """Why one of ``items`` (values sent for ``field``) cannot reach its integer
    column, or None. Beyond the column's range a database fails (SQLite: 64 bits)
    or compares what it cannot store."""
    bounds = column_range(field, ops)
    if bounds is None:
        return None
    low, high = bounds
    for item in items:
        number = _number(item)
        if number is None:
            continue
        if number > high:
            return f"Ensure this value is less than or equal to {high}."
        if number < low:
            return f"Ensure this value is greater than or equal to {low}."
    return None


BOOLEAN = "Must be a valid boolean."
# What a boolean filter takes besides JSON booleans: a query string carries only text.
BOOLEAN_TEXT = {"true": True, "false": False}


def as_boolean(value: Any, *, text: bool = False) -> bool:
    """``value`` if it is a JSON boolean (or, with ``text``, "true" or "false");
    ValueError otherwise."""
    if isinstance(value, bool):
        return value
    if text and isinstance(value, str) and value in BOOLEAN_TEXT:
        return BOOLEAN_TEXT[value]
    raise ValueError(BOOLEAN)
