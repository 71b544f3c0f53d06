"""Filtering, search and ordering of list/search pages.

Filters go through a django-filter FilterSet (``filterset_class``, or one built
from ``filterset_fields``), so only declared names and lookups are accepted and
values are parsed by form fields; before that, a boolean filter takes only a
boolean (or "true"/"false") and an integer only what its column holds. Search follows DRF's SearchFilter: every word
must match at least one of ``search_fields`` (icontains). Ordering accepts only
``ordering_fields`` and always ends with the primary key, so pages are stable.
"""

from __future__ import annotations

import datetime
import decimal
import operator
from functools import reduce
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import FieldDoesNotExist
from django.db import connections, models, router

from syncbind._capture.choices import keep_choices
from syncbind._wire import values
from syncbind.exceptions import ValidationError
from syncbind.settings import api_settings


def build_filterset_class(
    model: type[models.Model], filterset_fields: Any
) -> type[django_filters.FilterSet]:
    """A FilterSet class for ``filterset_fields`` (a list of names or a dict of lookups)."""
    meta = type("Meta", (), {"model": model, "fields": filterset_fields})
    return type(f"{model.__name__}FilterSet", (django_filters.FilterSet,), {"Meta": meta})


def _normal(name: str, value: Any) -> Any:
    """A filter value as django-filter's form fields read it: text, or one of the JSON
    scalars; a list becomes the comma-separated text the ``in``/``range`` lookups take."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(
        item is not None and not isinstance(item, dict | list) for item in value
    ):
        return ",".join(str(item) for item in value)
    if not isinstance(value, str):
        raise ValidationError({name: ["Must be a string, a number, or a list of them."]})
    limit = api_settings.MAX_FILTER_LENGTH
    if len(value) > limit:
        raise ValidationError({name: [f"Ensure this value has at most {limit} characters."]})
    return value


def _in_range(value: Any) -> str | None:
    """Why a cleaned filter value cannot be compared by every database, or None."""
    if isinstance(value, list | tuple | slice):
        parts = [value.start, value.stop] if isinstance(value, slice) else list(value)
        return next((problem for part in parts if (problem := _in_range(part))), None)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) and not values.INTEGER_RANGE[0] <= value <= values.INTEGER_RANGE[1]:
        return "Ensure this value fits in 64 bits."
    if isinstance(value, decimal.Decimal) and not values.decimal_in_range(value):
        return values.DECIMAL_RANGE
    if isinstance(value, datetime.datetime) and not values.datetime_in_range(value):
        return values.DATETIME_RANGE
    return None


# The lookups whose value is compared with the column as it is (a number for an integer).
COMPARED = frozenset({"exact", "in", "range", "lt", "lte", "gt", "gte"})


def _model_field(model: type[models.Model], path: str) -> Any:
    """The model field a filter's ``field_name`` ends on, or None."""
    field: Any = None
    for part in path.split("__"):
        if field is not None:
            if not field.is_relation:
                return None
            model = field.related_model
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return None
    return field


def _refused_values(filterset: Any, data: dict[str, Any]) -> dict[str, list[str]]:
    """Errors for boolean filters given anything but a boolean (or "true"/"false",
    as a query string carries them), and for integers beyond their column's range;
    ``data``'s booleans become ``True``/``False``."""
    errors: dict[str, list[str]] = {}
    model = filterset.queryset.model
    ops = connections[router.db_for_read(model)].ops
    for name, value in data.items():
        spec = filterset.filters[name]
        if issubclass(spec.field_class, forms.BooleanField):
            try:
                data[name] = values.as_boolean(value, text=True)
            except ValueError as exc:
                errors[name] = [str(exc)]
            continue
        field = _model_field(model, spec.field_name) if isinstance(spec.field_name, str) else None
        if field is None or spec.lookup_expr not in COMPARED:
            continue
        items = value.split(",") if isinstance(value, str) else [value]
        problem = values.out_of_range(field, items, ops)
        if problem:
            errors[name] = [problem]
    return errors


def apply_filters(
    filterset_class, queryset: models.QuerySet, filters: Any, request: Any = None, related=None
) -> models.QuerySet:
    """Filter ``queryset`` by the client's ``filters`` object; ``invalid`` on anything undeclared.

    ``related(queryset)`` narrows the rows a filter on a relation may name (the
    binding's ``get_related_queryset``): another user's row is as unknown as a
    missing one.
    """
    if filters in (None, {}):
        return queryset
    if not isinstance(filters, dict):
        raise ValidationError({"filters": ["Must be an object."]})
    if filterset_class is None:
        raise ValidationError(
            {name: ["Unknown filter."] for name in filters}
            or {"filters": ["No filters are allowed."]}
        )
    data = {name: _normal(name, value) for name, value in filters.items()}
    filterset = filterset_class(data=data, queryset=queryset, request=request)
    unknown = {name: ["Unknown filter."] for name in filters if name not in filterset.filters}
    if unknown:
        raise ValidationError(unknown)
    # Before the form reads ``data``: its fields would query with these values.
    refused = _refused_values(filterset, data)
    if refused:
        raise ValidationError(refused)
    for form_field in filterset.form.fields.values():
        choices = getattr(form_field, "queryset", None)
        if choices is not None and related is not None:
            form_field.queryset = related(choices)
        # A choice found before is used again while its rows are unwritten (capture).
        keep_choices(form_field)
    if not filterset.is_valid():
        raise ValidationError(
            {
                name: [e["message"] for e in errors]
                for name, errors in filterset.errors.get_json_data().items()
            }
        )
    out_of_range = {
        name: [problem]
        for name, value in filterset.form.cleaned_data.items()
        if (problem := _in_range(value))
    }
    if out_of_range:
        raise ValidationError(out_of_range)
    return filterset.qs


def _lookup_spans_many(model: type[models.Model], path: str) -> bool:
    """True when ``path`` crosses a to-many relation."""
    opts: Any = model._meta  # then each related model's
    for part in path.split("__"):
        try:
            field = opts.get_field(part)
        except FieldDoesNotExist:
            return False
        if field.many_to_many or field.one_to_many:
            return True
        if not field.is_relation:
            return False
        opts = field.related_model._meta
    return False


def apply_search(queryset: models.QuerySet, search_fields, query: Any) -> models.QuerySet:
    """Keep the rows where each word of ``query`` matches one of ``search_fields``.

    A field across a to-many relation (``labels__name``) is matched through a
    subquery on the primary key rather than a join: joins would multiply per
    word (time exponential in the number of words) and need DISTINCT.
    """
    if query in (None, ""):
        return queryset
    if not isinstance(query, str):
        raise ValidationError({"query": ["Must be a string."]})
    limit = api_settings.MAX_SEARCH_LENGTH
    if len(query) > limit:
        raise ValidationError({"query": [f"Ensure this value has at most {limit} characters."]})
    if not search_fields:
        raise ValidationError({"query": ["Search is not enabled on this stream."]})
    terms = [term for term in query.replace(",", " ").split() if term]
    most = api_settings.MAX_SEARCH_TERMS
    if len(terms) > most:
        raise ValidationError({"query": [f"Use at most {most} words."]})
    model = queryset.model
    to_many = {name for name in search_fields if _lookup_spans_many(model, name)}
    for term in terms:
        conditions = []
        for name in search_fields:
            lookup = {f"{name}__icontains": term}
            if name in to_many:
                matching = model._base_manager.filter(**lookup).values("pk")
                conditions.append(models.Q(pk__in=matching))
            else:
                conditions.append(models.Q(**lookup))
        queryset = queryset.filter(reduce(operator.or_, conditions))
    return queryset


def parse_ordering(ordering: Any, allowed) -> list[str] | None:
    """Validate the client's ``ordering`` ("name", "-price,name" or a list)."""
    if ordering in (None, "", []):
        return None
    if isinstance(ordering, str):
        terms = [term.strip() for term in ordering.split(",")]
    elif isinstance(ordering, list) and all(isinstance(term, str) for term in ordering):
        terms = [term.strip() for term in ordering]
    else:
        raise ValidationError({"ordering": ["Must be a field name or a list of field names."]})
    refused = [term for term in terms if term.removeprefix("-") not in allowed]
    if refused:
        raise ValidationError({"ordering": [f"Cannot order by {term!r}." for term in refused]})
    return terms


def apply_ordering(queryset: models.QuerySet, terms: list[str]) -> models.QuerySet:
    if not any(term.removeprefix("-") in ("pk", queryset.model._meta.pk.name) for term in terms):
        terms = [*terms, "pk"]
    return queryset.order_by(*terms)
