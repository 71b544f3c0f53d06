"""Subscription keys: subscribers with equal keys share one evaluation per change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INSTANCE = "instance"
PAGE = "page"


@dataclass(frozen=True)
class SubscriptionKey:
    """(stream, kind, pk, read, scope).

    ``read`` is what the subscription reads: the identity of its compiled read
    (statement and parameters, see :mod:`syncbind.reads`), or, for a binding
    whose reads cannot be compiled, the user and the request's parameters.
    ``scope`` is what the pushed data depends on besides the rows read (None:
    nothing, see ``get_subscription_scope``). ``pk`` names the row of an
    instance subscription (None for pages).
    """

    stream: str
    kind: str
    pk: Any
    read: tuple[Any, ...]
    scope: Any = None


def group_name(stream: str) -> str:
    """The channel-layer group carrying the changes of ``stream``."""
    return f"syncbind.{stream}"


AUTH_GROUP = "syncbind.auth"
"""The group carrying "this user's credentials changed" to every hub."""
