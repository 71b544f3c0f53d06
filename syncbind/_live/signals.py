"""Thin model-signal receivers: they record the change (see :mod:`.changes`), nothing more.

To announce a row's values before a change without a query, an instance of a
bound model remembers the matchable columns it was loaded with (``post_init``:
a few attribute reads) and, after each save, the ones it was saved with.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_init, post_save, pre_save

from syncbind._bindings.registry import registry
from syncbind._live.changes import DELETE, SAVE, record, shown_by
from syncbind._live.matching import ABSENT, SAME, UNKNOWN, matchable_fields

LOADED = "_syncbind_loaded"
ADDING = "_syncbind_adding"

_watched: dict[type, tuple[str, ...] | None] = {}
_watched_version = -1


def watched(model: type[models.Model]) -> tuple[str, ...] | None:
    """The matchable attnames of a bound model (``()`` for a model whose fields other
    streams show), None for a model no binding serves."""
    global _watched_version
    if _watched_version != registry.version:
        _watched.clear()
        _watched_version = registry.version
    try:
        return _watched[model]
    except KeyError:
        concrete = model._meta.concrete_model
        bound = any(b.get_model()._meta.concrete_model is concrete for b in registry.all())
        names: tuple[str, ...] | None = tuple(matchable_fields(model)) if bound else None
        if names is None and shown_by(model):
            names = ()  # not bound, but other streams show its fields
        _watched[model] = names
        return names


def _values(instance: Any, names: tuple[str, ...]) -> Any:
    state = instance.__dict__
    values = {}
    for name in names:
        value = state.get(name, ABSENT)
        if value is ABSENT or hasattr(value, "resolve_expression"):
            # Deferred, or set to an expression (F(), a database default) whose
            # result only the database knows.
            return UNKNOWN
        values[name] = value
    return values


def _initialised(sender: type[models.Model], instance: Any, **kwargs: Any) -> None:
    names = watched(sender)
    if names:
        instance.__dict__[LOADED] = _values(instance, names)


def _saving(sender: type[models.Model], instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if watched(sender) is not None:
        instance.__dict__[ADDING] = instance._state.adding


def _before(instance: Any) -> Any:
    # What the instance was loaded with (or last saved with) is what the table held,
    # unless it was never loaded: an instance made with a primary key and saved.
    if instance.__dict__.get(ADDING, instance._state.adding):
        return UNKNOWN
    return instance.__dict__.get(LOADED, UNKNOWN)


def _saved(
    sender: type[models.Model],
    instance: Any,
    created: bool = False,
    raw: bool = False,
    using: str | None = None,
    update_fields: Any = None,
    **kwargs: Any,
) -> None:
    if raw:  # loaddata: no pushes for fixtures
        return
    names = watched(sender)
    if names is None:
        return
    before = ABSENT if created else _before(instance)
    after = _values(instance, names)
    if update_fields is not None and isinstance(after, dict):
        # Columns the save did not write keep what the table had.
        fields: Any = [sender._meta.get_field(name) for name in update_fields]
        written = {field.attname for field in fields}
        if isinstance(before, dict):
            after = {name: after[name] if name in written else before.get(name) for name in names}
        elif any(name not in written for name in names):
            after = UNKNOWN
    record(sender, instance.pk, SAVE, using, before, after)
    instance.__dict__[LOADED] = after
    instance.__dict__[ADDING] = False


def _deleted(
    sender: type[models.Model], instance: Any, using: str | None = None, **kwargs: Any
) -> None:
    if watched(sender) is None:
        return
    record(sender, instance.pk, DELETE, using, _before(instance), ABSENT)


def _m2m_changed(
    sender: Any,
    instance: Any,
    action: str,
    reverse: bool,
    model: type[models.Model],
    pk_set: Any,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    # The row that owns the relation changed, and so did the rows on the other side;
    # their own columns did not.
    record(type(instance), instance.pk, SAVE, using, SAME, _before(instance), written=sender)
    if action == "pre_clear":
        # Which rows lose the relation is only known before the clear.
        name = _manager_name(type(instance), sender, reverse)
        pk_set = set(getattr(instance, name).values_list("pk", flat=True)) if name else ()
    for pk in pk_set or ():
        record(model, pk, SAVE, using, SAME, UNKNOWN, written=sender)


def _manager_name(instance_model: type[models.Model], through: Any, reverse: bool) -> str | None:
    """The attribute of ``instance_model`` that manages the relation stored in ``through``."""
    relations: Any = instance_model._meta.get_fields()  # fields and reverse relations
    for field in relations:
        if not field.many_to_many:
            continue
        if reverse and field.auto_created and field.through is through:
            return field.get_accessor_name()
        if not reverse and not field.auto_created and field.remote_field.through is through:
            return field.name
    return None


def connect() -> None:
    """Connect the receivers; called from ``SimpleSyncbindConfig.ready()``."""
    post_init.connect(_initialised, dispatch_uid="syncbind._live.post_init")
    pre_save.connect(_saving, dispatch_uid="syncbind._live.pre_save")
    post_save.connect(_saved, dispatch_uid="syncbind._live.post_save")
    post_delete.connect(_deleted, dispatch_uid="syncbind._live.post_delete")
    m2m_changed.connect(_m2m_changed, dispatch_uid="syncbind._live.m2m_changed")
