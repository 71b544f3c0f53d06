"""``syncbind.notify()``: push changes that sent no model signal (bulk operations)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models

from .changes import ANY, DELETE, SAVE, record
from .matching import ABSENT, UNKNOWN


def notify(
    model_or_queryset: type[models.Model] | models.QuerySet,
    pks: Iterable[Any] | None = None,
    *,
    deleted: bool = False,
    using: str | None = None,
) -> None:
    """Tell subscribers that rows changed, as a save (or delete) would have.

    ``notify(Product, pks=[1, 2])`` after ``Product.objects.filter(...).update(...)``;
    ``notify(queryset)`` for the rows of a queryset (evaluated now: call it after
    the update, with a queryset that still matches); ``notify(Product)`` when any
    row may have changed. Inside a transaction the push waits for the commit.
    """
    if isinstance(model_or_queryset, models.QuerySet):
        model = model_or_queryset.model
        using = using or model_or_queryset.db
        if pks is None:
            pks = model_or_queryset.values_list("pk", flat=True)
    else:
        model = model_or_queryset
    op = DELETE if deleted else SAVE
    after = ABSENT if deleted else UNKNOWN
    if pks is None:
        record(model, ANY, op, using)
        return
    for pk in pks:
        record(model, pk, op, using, UNKNOWN, after)
