"""syncbind: Django models as a live JSON API over Channels WebSockets.

Only re-exports, resolved lazily so that ``import syncbind`` (in settings, in
asgi.py) imports no models.

What is public: the names in ``__all__`` below, and these modules, which settings
name by dotted path or users subclass from: ``syncbind.bindings`` (with its action
mixins in ``syncbind.mixins``), ``permissions``, ``authentication``, ``throttling``,
``filters``, ``pagination``, ``serializers``, ``drf``, ``exceptions``, ``settings``,
``layers``, ``consumers``, ``origins``, ``http``, ``urls``, ``push`` and ``testing``. Modules and
packages whose names start with an underscore (``syncbind._live``, ``syncbind._wire``,
...) are private: they change without notice.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "KEEP": "syncbind.bindings",
    "SyncBinding": "syncbind.bindings",
    "ReadOnlyBinding": "syncbind.bindings",
    "BindingConsumer": "syncbind.consumers",
    "AsyncBindingConsumer": "syncbind.consumers",
    "event": "syncbind._bindings.events",
    "notify": "syncbind._live.notify",
    "notify_update": "syncbind._live.notify",
    "registry": "syncbind._bindings.registry",
}

__all__ = [
    "KEEP",
    "AsyncBindingConsumer",
    "BindingConsumer",
    "ReadOnlyBinding",
    "SyncBinding",
    "event",
    "notify",
    "notify_update",
    "push",
    "registry",
]

if TYPE_CHECKING:
    from syncbind import push
    from syncbind._bindings.events import event
    from syncbind._bindings.registry import registry
    from syncbind._live.notify import notify, notify_update
    from syncbind.bindings import KEEP, ReadOnlyBinding, SyncBinding
    from syncbind.consumers import AsyncBindingConsumer, BindingConsumer


def __getattr__(name: str) -> Any:
    if name == "push":
        return import_module("syncbind.push")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'syncbind' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
