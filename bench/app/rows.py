"""The hand-written contenders' serialization: the same fields, by hand."""

from django.db import connection

from .models import ITEM_FIELDS, Item

PAGE_SIZE = 25


def item_row(item: Item) -> dict:
    row = {name: getattr(item, name) for name in ITEM_FIELDS if name != "category"}
    row["category"] = item.category_id
    return row


def page_bounds(page) -> slice:
    page = max(int(page or 1), 1)
    return slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE)


def slow_query() -> dict:
    """The slow-query scenario's work: one PostgreSQL query that takes 20 ms."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.02)")
    return {"slept": 0.02}
