"""Credential changes, announced to every hub: the open connections of that user
check their credentials at once (see :mod:`syncbind.connection`).

A user saved (deactivated, a new password...) or deleted, a session logged out,
tokens revoked: one small message ``{"type": "syncbind.auth", "user": key,
"session": key}`` to the ``syncbind.connections`` group, after the transaction commits.

A user travels on channel-layer messages as :func:`user_key`, the text of its
primary key (channels-redis packs messages with msgpack, which has no UUID or
date type), and each hub indexes its connections by the same key.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from ..serializers import to_json_safe
from .changes import send
from .keys import CONNECTIONS_GROUP


def user_key(user: Any) -> str | None:
    """The wire form of a user (or of its primary key) on channel-layer messages and in
    the hub's index: the text of the primary key (None for no user, or anonymous).

    A key given as text is read by the user model's primary key first, so "7" and 7,
    or a UUID written in capitals, name the same user.
    """
    pk = getattr(user, "pk", user)
    if pk is None:
        return None
    if isinstance(pk, str):
        pk = _parsed(pk)
    return str(to_json_safe(pk))


def _parsed(text: str) -> Any:
    try:
        return get_user_model()._meta.pk.to_python(text)
    except ValidationError:
        # Not a key of this user model: it names nobody, as it is.
        return text


def announce(user: Any, session_key: str | None = None) -> None:
    """Tell every hub that the credentials of ``user`` (a user or its primary key) changed."""
    message = {"type": "syncbind.auth", "user": user_key(user), "session": session_key}
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
