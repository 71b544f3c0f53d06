"""Credential changes, announced to every hub: the open connections of that user
check their credentials at once (see :mod:`syncbind.connection`).

A user saved (deactivated, a new password...) or deleted, a session logged out,
tokens revoked: one small message ``{"type": "syncbind.auth", "user": pk,
"session": key}`` to the ``syncbind.connections`` group, after the transaction commits.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from .changes import send
from .keys import CONNECTIONS_GROUP


def announce(user_pk: Any, session_key: str | None = None) -> None:
    message = {"type": "syncbind.auth", "user": user_pk, "session": session_key}
    send(CONNECTIONS_GROUP, message, "a credential change")


def _user_changed(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw:
        return
    pk = instance.pk
    transaction.on_commit(lambda: announce(pk), using=kwargs.get("using"))


def _logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    if user is None:
        return
    session = getattr(request, "session", None)
    announce(user.pk, getattr(session, "session_key", None))


def connect() -> None:
    """Connect the receivers; called from ``SimpleSyncbindConfig.ready()``."""
    user_model = get_user_model()
    post_save.connect(_user_changed, sender=user_model, dispatch_uid="syncbind.credentials.save")
    post_delete.connect(
        _user_changed, sender=user_model, dispatch_uid="syncbind.credentials.delete"
    )
    user_logged_out.connect(_logged_out, dispatch_uid="syncbind.credentials.logout")
