"""``@event``: marks a binding method as an event. It only marks; bindings collect.

::

    @event                                  # "<stream>.restock"
    def restock(self, request): ...

    @event("bump_price")                    # "<stream>.bump_price"
    @event(name="bump_price", permission_classes=[IsAdminUser], atomic=False)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])

EVENT_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
MARK = "syncbind_event"


@dataclass(frozen=True)
class EventSpec:
    """What ``@event`` recorded about a method."""

    name: str
    permission_classes: Sequence[type] | None = None
    # Run inside transaction.atomic(): on for writes and custom events.
    atomic: bool = True


@overload
def event(func: F) -> F: ...
@overload
def event(
    name: str | None = None,
    *,
    permission_classes: Sequence[type] | None = None,
    atomic: bool = True,
) -> Callable[[F], F]: ...


def event(func=None, *, name=None, permission_classes=None, atomic=True):
    """Mark a binding method as the handler of ``<stream>.<name>``.

    The method is called as ``method(self, request)`` in a worker thread (or
    awaited, if it is ``async def``, by AsyncBindingConsumer) and its return value is
    the reply's ``data``. ``permission_classes`` replaces the binding's for this
    event; ``atomic`` wraps the call in ``transaction.atomic()`` (default True).
    """
    if isinstance(func, str):
        name, func = func, None

    def mark(method: F) -> F:
        event_name = name or method.__name__
        if not EVENT_NAME_RE.fullmatch(event_name):
            raise ValueError(
                f"Invalid event name {event_name!r}: use letters, digits and underscores."
            )
        setattr(
            method,
            MARK,
            EventSpec(
                name=event_name,
                permission_classes=tuple(permission_classes)
                if permission_classes is not None
                else None,
                atomic=atomic,
            ),
        )
        return method

    if func is not None:
        return mark(func)
    return mark
