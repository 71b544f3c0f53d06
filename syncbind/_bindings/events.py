"""``@event``: marks a binding method as an event. It only marks; bindings collect.

::

    @event                                  # "<stream>.restock"
    def restock(self, request): ...

    @event("bump_price")                    # "<stream>.bump_price"
    @event(name="bump_price", permission_classes=[IsAdminUser], atomic=False)
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from django.core.exceptions import ImproperlyConfigured

F = TypeVar("F", bound=Callable[..., Any])

EVENT_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
MARK = "syncbind_event"


@dataclass(frozen=True)
class EventSpec:
    """What ``@event`` recorded about a method."""

    name: str
    permission_classes: Sequence[type] | None = None
    # Run inside transaction.atomic(): on for writes and custom sync events.
    atomic: bool = True
    # Run beside the socket's other messages rather than before them (WebSocket).
    detached: bool = False


@overload
def event(func: F) -> F: ...
@overload
def event(
    name: str | None = None,
    *,
    permission_classes: Sequence[type] | None = None,
    atomic: bool | None = None,
    detached: bool = False,
) -> Callable[[F], F]: ...


def event(func=None, *, name=None, permission_classes=None, atomic=None, detached=False):
    """Mark a binding method as the handler of ``<stream>.<name>``.

    The method is called as ``method(self, request)`` in a worker thread (or, if
    it is ``async def``, awaited on the connection's event loop) and its return
    value is the reply's ``data``. ``permission_classes`` replaces the binding's for
    this event; ``atomic`` wraps the call in ``transaction.atomic()``: the default for
    a sync method. An ``async def`` event cannot be atomic (its queries run in other
    threads, outside any transaction this one opens): ``atomic=True`` on one is refused.

    ``detached=True`` runs it beside the socket's other messages instead of before
    them: the messages after it are handled (and answered) while it runs, and its
    reply comes when it is done. At most ``MAX_DETACHED_EVENTS`` run at once per
    socket (``limit_exceeded`` beyond). Over HTTP every request stands alone anyway.
    """
    if isinstance(func, str):
        name, func = func, None

    def mark(method: F) -> F:
        event_name = name or method.__name__
        is_async = inspect.iscoroutinefunction(method)
        if atomic and is_async:
            raise ImproperlyConfigured(
                f"@event {event_name!r} is async def and cannot run in transaction.atomic(): "
                "make it a plain method, or drop atomic=True (use transaction.atomic inside "
                "a sync_to_async function)."
            )
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
                atomic=not is_async if atomic is None else atomic,
                detached=detached,
            ),
        )
        return method

    if func is not None:
        return mark(func)
    return mark
