"""The parameters each read takes, in one place: for the wire, the HTTP query string and
the subscription keys that name a page."""

from __future__ import annotations

from typing import Any, Final

from syncbind.exceptions import ValidationError

#: What defines a page: equal values, the same page (a subscription key holds them).
PAGE: Final = ("filters", "query", "ordering", "page", "limit")
#: What ``list`` and ``search`` take.
LIST: Final = frozenset({*PAGE, "subscribe"})
#: What ``retrieve`` takes.
ROW: Final = frozenset({"id", "subscribe"})
#: The HTTP query parameters of a list that are not filters (every other one is).
HTTP_LIST: Final = ("page", "limit", "ordering", "query")
HTTP_NOT_FILTERS: Final = frozenset({*HTTP_LIST, "token", "format"})


def check_parameters(data: dict[str, Any], allowed: frozenset[str]) -> None:
    """Refuse parameters an action does not take, rather than ignore them (an old
    client's ``order`` would otherwise be silently dropped)."""
    unknown = sorted(name for name in data if name not in allowed)
    if unknown:
        takes = ", ".join(sorted(allowed))
        raise ValidationError(
            {name: [f"Unknown parameter (this takes {takes})."] for name in unknown}
        )
