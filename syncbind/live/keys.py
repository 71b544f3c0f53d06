"""Subscription keys: subscribers with equal keys share one evaluation per change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

INSTANCE = "instance"
PAGE = "page"

# The request parameters that define a page (the tag does not: it only names the push).
PAGE_PARAMS = ("filters", "query", "ordering", "page", "limit")


@dataclass(frozen=True)
class SubscriptionKey:
    """(stream, kind, what, scope).

    ``what`` is the primary key for an instance, or the canonical JSON of the
    page parameters. ``scope`` is None when every user sees the same thing,
    else a value naming whose view it is (see ``get_subscription_scope``).
    """

    stream: str
    kind: str
    what: Any
    scope: Any = None


def page_params(data: dict[str, Any], action: str) -> str:
    """Canonical text of the parameters of a list/search request."""
    params = {
        name: data.get(name) for name in PAGE_PARAMS if data.get(name) not in (None, "", [], {})
    }
    params["action"] = action
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def instance_key(stream: str, pk: Any, scope: Any) -> SubscriptionKey:
    return SubscriptionKey(stream, INSTANCE, pk, scope)


def page_key(stream: str, data: dict[str, Any], action: str, scope: Any) -> SubscriptionKey:
    return SubscriptionKey(stream, PAGE, page_params(data, action), scope)


def group_name(stream: str) -> str:
    """The channel-layer group carrying the changes of ``stream``."""
    return f"syncbind.{stream}"
