"""``syncbind.notify()`` and ``notify_update()``: changes that sent no model signal
(bulk operations)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models, transaction

from syncbind._live.changes import ANY, DELETE, SAVE, record
from syncbind._live.matching import ABSENT, UNKNOWN, matchable_fields


def notify(
    model_or_queryset: type[models.Model] | models.QuerySet,
    pks: Iterable[Any] | None = None,
    *,
    deleted: bool = False,
    using: str | None = None,
) -> None:
    """Tell subscribers that rows changed, as a save (or delete) would have.

    ``notify(Product, pks=ids)`` after ``Product.objects.filter(pk__in=ids).update(...)``;
    ``notify(queryset)`` names the rows the queryset matches *now*, so call it
    before the update, or prefer :func:`notify_update`, which cannot be called
    in the wrong order; ``notify(Product)`` when any row may have changed.
    Inside a transaction the push waits for the commit.
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
        record(model, ANY, op, using, explicit=True)
        return
    for pk in pks:
        record(model, pk, op, using, UNKNOWN, after, explicit=True)


def notify_update(queryset: models.QuerySet, **changes: Any) -> int:
    """``queryset.update(**changes)`` that subscribers hear of; returns the rows updated.

    The rows are read first (their primary keys and the columns live pages
    match on, locked where the database can), then updated, and announced after
    the transaction commits: rows the update moves out of a page or a user's
    scope are pushed to the pages that showed them. (``notify(queryset)`` after
    an update can only name the rows the queryset still matches.)
    """
    model = queryset.model
    using = queryset.db
    names = tuple(matchable_fields(model))
    pk_name = model._meta.pk.attname
    with transaction.atomic(using=using):
        rows = queryset
        if transaction.get_connection(using).features.has_select_for_update:
            rows = rows.select_for_update()
        before = {row[pk_name]: row for row in rows.values(pk_name, *names)}
        count = model._base_manager.using(using).filter(pk__in=list(before)).update(**changes)
        for pk, values in before.items():
            record(model, pk, SAVE, using, {name: values[name] for name in names}, UNKNOWN)
    return count
