"""Bindings by stream, and autodiscovery of every app's ``bindings`` module.

Like Django admin's autodiscover: at startup each installed app's
``bindings.py`` (or ``bindings/`` package) is imported and every
:class:`~syncbind.bindings.BindingBase` subclass with a model is registered.
If the import fails for a reason other than the module being absent, whatever
that module had registered is rolled back and the error is raised.
"""

from __future__ import annotations

import pkgutil
import threading
from importlib import import_module
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, TypeVar

from django.apps import apps

from syncbind.exceptions import UnknownEvent

if TYPE_CHECKING:
    from syncbind.bindings import BindingBase

    B = TypeVar("B", bound=type[BindingBase])


class AlreadyRegistered(Exception):
    """Two bindings claimed the same stream."""


class NotRegistered(Exception):
    pass


class Registry:
    def __init__(self) -> None:
        self._bindings: dict[str, type[BindingBase]] = {}
        self._lock = threading.Lock()
        # Bumped on every change, so caches derived from the registry know to refresh.
        self.version = 0

    def register(self, binding_class: B) -> B:
        """Register ``binding_class`` under its stream; usable as a class decorator."""
        stream = binding_class.get_stream()
        with self._lock:
            current = self._bindings.get(stream)
            if current is not None and current is not binding_class:
                raise AlreadyRegistered(
                    f"Stream {stream!r} is bound by both {_qualname(current)} and {_qualname(binding_class)}."
                )
            self._bindings[stream] = binding_class
            self.version += 1
        return binding_class

    def unregister(self, binding_class_or_stream) -> None:
        stream = (
            binding_class_or_stream
            if isinstance(binding_class_or_stream, str)
            else binding_class_or_stream.get_stream()
        )
        with self._lock:
            if stream not in self._bindings:
                raise NotRegistered(stream)
            del self._bindings[stream]
            self.version += 1

    def get(self, stream: str) -> type[BindingBase]:
        """The binding of ``stream``; ``unknown_event`` if there is none."""
        try:
            return self._bindings[stream]
        except KeyError:
            raise UnknownEvent.no_stream(stream) from None

    def is_registered(self, stream: str) -> bool:
        return stream in self._bindings

    def all(self) -> list[type[BindingBase]]:
        return list(self._bindings.values())

    def for_model(self, model: Any) -> type[BindingBase] | None:
        """The binding that serves ``model``: the one on its default stream
        (``"<app_label>.<ObjectName>"``) if any, else the first registered; None."""
        concrete = model._meta.concrete_model
        found = [
            b for b in self._bindings.values() if b.get_model()._meta.concrete_model is concrete
        ]
        default = f"{model._meta.app_label}.{model._meta.object_name}"
        for binding in found:
            if binding.get_stream() == default:
                return binding
        return found[0] if found else None

    def clear(self) -> None:
        with self._lock:
            self._bindings.clear()
            self.version += 1

    def snapshot(self) -> dict[str, type[BindingBase]]:
        return dict(self._bindings)

    def restore(self, snapshot: dict[str, type[BindingBase]]) -> None:
        with self._lock:
            self._bindings = dict(snapshot)
            self.version += 1


registry = Registry()


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_module(module: Any) -> list[type[BindingBase]]:
    """Register every concrete binding defined in ``module`` (not imported into it)."""
    # Not at module level: syncbind.bindings imports this module (through
    # _capture → _capture.tables, which look bindings up).
    from syncbind.bindings import BindingBase

    found = []
    for value in list(vars(module).values()):
        if (
            isinstance(value, type)
            and issubclass(value, BindingBase)
            and value.__module__.startswith(module.__name__)
            and _names_model(value)
            # Only the class that says ``abstract = True`` is abstract, not its subclasses.
            and not vars(value).get("abstract", False)
        ):
            registry.register(value)
            found.append(value)
    return found


def _names_model(binding_class: type[BindingBase]) -> bool:
    """Whether ``get_model()`` names a model (bases that name none are not bindings yet)."""
    try:
        binding_class.get_model()
    except TypeError:
        return False
    return True


def autodiscover(module_name: str = "bindings") -> None:
    """Import ``<app>.bindings`` for every installed app and register its bindings."""
    for app_config in apps.get_app_configs():
        full_name = f"{app_config.name}.{module_name}"
        if not _module_exists(full_name):
            continue
        before = registry.snapshot()
        try:
            module = import_module(full_name)
            _register_tree(module)
        except Exception:
            # Leave the registry as it was, then let the real error surface.
            registry.restore(before)
            raise


def _module_exists(name: str) -> bool:
    # find_spec imports the parent package (already loaded for an installed app)
    # but not the module itself, so a missing bindings module is told apart from
    # one that fails to import.
    try:
        return find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _register_tree(module) -> None:
    """Register a bindings module, or each submodule of a bindings package."""
    register_module(module)
    path = getattr(module, "__path__", None)
    if path is None:
        return

    for info in pkgutil.iter_modules(path):
        register_module(import_module(f"{module.__name__}.{info.name}"))
