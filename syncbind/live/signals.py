"""Thin model-signal receivers: they only record the change (see :mod:`.changes`)."""

from __future__ import annotations

from django.db.models.signals import m2m_changed, post_delete, post_save

from .changes import DELETE, SAVE, record


def _saved(sender, instance, raw=False, using=None, **kwargs):
    if not raw:  # loaddata: no pushes for fixtures
        record(sender, instance.pk, SAVE, using)


def _deleted(sender, instance, using=None, **kwargs):
    record(sender, instance.pk, DELETE, using)


def _m2m_changed(sender, instance, action, reverse, model, pk_set, using=None, **kwargs):
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    # The row that owns the relation changed, and so did the rows on the other side.
    record(type(instance), instance.pk, SAVE, using)
    if action == "pre_clear":
        # Which rows lose the relation is only known before the clear.
        name = _manager_name(type(instance), sender, reverse)
        pk_set = set(getattr(instance, name).values_list("pk", flat=True)) if name else ()
    for pk in pk_set or ():
        record(model, pk, SAVE, using)


def _manager_name(instance_model, through, reverse):
    """The attribute of ``instance_model`` that manages the relation stored in ``through``."""
    for field in instance_model._meta.get_fields():
        if not field.many_to_many:
            continue
        if reverse and field.auto_created and field.through is through:
            return field.get_accessor_name()
        if not reverse and not field.auto_created and field.remote_field.through is through:
            return field.name
    return None


def connect() -> None:
    """Connect the receivers; called from ``SimpleSyncbindConfig.ready()``."""
    post_save.connect(_saved, dispatch_uid="syncbind.live.post_save")
    post_delete.connect(_deleted, dispatch_uid="syncbind.live.post_delete")
    m2m_changed.connect(_m2m_changed, dispatch_uid="syncbind.live.m2m_changed")
