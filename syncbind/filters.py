"""Filtering, search and ordering of list/search pages.

Filters go through a django-filter FilterSet (``filterset_class``, or one built
from ``filter_fields``), so only declared names and lookups are accepted and
values are parsed by form fields. Search follows DRF's SearchFilter: every word
must match at least one of ``search_fields`` (icontains). Ordering accepts only
``ordering_fields`` and always ends with the primary key, so pages are stable.
"""

from __future__ import annotations

import operator
from functools import reduce
from typing import Any

import django_filters
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from .exceptions import ValidationError
from .settings import api_settings


def build_filterset_class(
    model: type[models.Model], filter_fields: Any
) -> type[django_filters.FilterSet]:
    """A FilterSet class for ``filter_fields`` (a list of names or a dict of lookups)."""
    meta = type("Meta", (), {"model": model, "fields": filter_fields})
    return type(f"{model.__name__}FilterSet", (django_filters.FilterSet,), {"Meta": meta})


def apply_filters(
    filterset_class, queryset: models.QuerySet, filters: Any, request: Any = None
) -> models.QuerySet:
    """Filter ``queryset`` by the client's ``filters`` object; ``invalid`` on anything undeclared."""
    if filters in (None, {}):
        return queryset
    if not isinstance(filters, dict):
        raise ValidationError({"filters": ["Must be an object."]})
    if filterset_class is None:
        raise ValidationError(
            {name: ["Unknown filter."] for name in filters}
            or {"filters": ["No filters are allowed."]}
        )
    filterset = filterset_class(data=filters, queryset=queryset, request=request)
    unknown = {name: ["Unknown filter."] for name in filters if name not in filterset.filters}
    if unknown:
        raise ValidationError(unknown)
    if not filterset.is_valid():
        raise ValidationError(
            {
                name: [e["message"] for e in errors]
                for name, errors in filterset.errors.get_json_data().items()
            }
        )
    return filterset.qs


def _lookup_spans_many(model: type[models.Model], path: str) -> bool:
    """True when ``path`` crosses a to-many relation (the search then needs DISTINCT)."""
    opts = model._meta
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
    """Keep the rows where each word of ``query`` matches one of ``search_fields``."""
    if query in (None, ""):
        return queryset
    if not isinstance(query, str):
        raise ValidationError({"query": ["Must be a string."]})
    limit = api_settings.MAX_SEARCH_LENGTH
    if len(query) > limit:
        raise ValidationError({"query": [f"Ensure this value has at most {limit} characters."]})
    if not search_fields:
        raise ValidationError({"query": ["Search is not enabled on this stream."]})
    terms = [term for term in query.replace(",", " ").replace("\x00", "").split() if term]
    for term in terms:
        condition = reduce(
            operator.or_, (models.Q(**{f"{name}__icontains": term}) for name in search_fields)
        )
        queryset = queryset.filter(condition)
    if terms and any(_lookup_spans_many(queryset.model, name) for name in search_fields):
        queryset = queryset.distinct()
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
