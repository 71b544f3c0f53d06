"""Page/limit pagination: ``{"page", "limit", "count", "rows"}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncbind.exceptions import ValidationError

# Beyond any table's last page, and small enough that page × limit stays a 64-bit OFFSET.
MAX_PAGE = 10**9


def _positive_int(value: Any, name: str, most: int | None = None) -> int:
    # bool is an int in Python, but true is not a page number.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValidationError({name: ["Must be a positive integer."]})
    if most is not None and value > most:
        raise ValidationError({name: [f"Must be at most {most}."]})
    return value


@dataclass(frozen=True)
class PageParams:
    page: int
    limit: int


def parse_page_params(data: dict[str, Any], default_limit: int, max_limit: int) -> PageParams:
    """Read ``page`` (default 1) and ``limit`` (default the page size, capped at max)."""
    page = _positive_int(data.get("page", 1), "page", MAX_PAGE)
    limit = _positive_int(data.get("limit", default_limit), "limit")
    return PageParams(page=page, limit=min(limit, max_limit))
