"""What is deprecated, and the shims that keep it working for one more release.

Until 0.2, binding hooks received the request as an argument
(``get_queryset(self, request=None)``, ``perform_create(self, request, write)``).
They now read ``self.request``, as DRF's views do. A binding written the old way
still works: :func:`adapt_legacy_hooks` notices the old signature when the
class is created, warns once, and wraps the method so that syncbind can call it
the new way. Base hooks also accept the old call (``super().get_queryset(request)``).
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any

# hook name -> number of arguments it takes now, after ``self``. The old
# signature had one more in front: the request.
REQUEST_HOOKS: dict[str, int] = {
    "get_queryset": 0,
    "get_object": 0,
    "get_page": 0,
    "get_lookup_value": 0,
    "get_auto_subscribe": 0,
    "get_subscription_scope": 0,
    "filter_queryset": 1,
    "perform_create": 1,
    "perform_update": 1,
    "perform_delete": 1,
}

REMOVAL = "0.3"


class RemovedInSyncbind03Warning(DeprecationWarning):
    """Something that stops working in syncbind 0.3."""


# attribute name in 0.1 -> its name now (django-filter's name for it).
RENAMED_ATTRIBUTES = {"filter_fields": "filterset_fields"}


def adapt_legacy_attributes(cls: type) -> None:
    """Read the 0.1 names of renamed class attributes ``cls`` itself sets, with a warning."""
    for old, new in RENAMED_ATTRIBUTES.items():
        if old in vars(cls) and new not in vars(cls):
            warnings.warn(
                f"{cls.__module__}.{cls.__qualname__}.{old} is now {new} (django-filter's "
                f"name); the old name stops working in syncbind {REMOVAL}.",
                RemovedInSyncbind03Warning,
                stacklevel=3,
            )
            setattr(cls, new, vars(cls)[old])


def _takes_request_first(func: Callable[..., Any], arity: int) -> bool:
    try:
        parameters = list(inspect.signature(func).parameters.values())[1:]
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) == arity + 1 and positional[0].name == "request"


def adapt_legacy_hooks(cls: type) -> None:
    """Wrap the hooks ``cls`` itself defines with the old request-first signature.

    Called from ``BindingBase.__init_subclass__``; warns once per hook and class.
    """
    for name, arity in REQUEST_HOOKS.items():
        func = vars(cls).get(name)
        if not callable(func) or getattr(func, "_syncbind_legacy", False):
            continue
        if not _takes_request_first(func, arity):
            continue
        new = "self" + ", ".join(["", *["..."] * arity]) if arity else "self"
        warnings.warn(
            f"{cls.__module__}.{cls.__qualname__}.{name}() takes the request as an argument; "
            f"hooks now read self.request: define {name}({new}). The old signature stops "
            f"working in syncbind {REMOVAL}.",
            RemovedInSyncbind03Warning,
            stacklevel=3,
        )
        setattr(cls, name, _request_first(func, arity))


def _request_first(func: Callable[..., Any], arity: int) -> Callable[..., Any]:
    @functools.wraps(func)
    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) == arity + 1:  # called the old way too: super().get_queryset(request)
            return func(self, *args, **kwargs)
        return func(self, self.request, *args, **kwargs)

    hook._syncbind_legacy = True  # type: ignore[attr-defined]
    return hook


def accepts_legacy_request(arity: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Let a base hook also be called the old way, with the request in front.

    ``super().get_queryset(request)`` from a binding written for 0.1 keeps working.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
            if len(args) == arity + 1:
                args = args[1:]
            return func(self, *args, **kwargs)

        return hook

    return decorate
