"""Credential and permission changes, announced to every hub: the open connections of
that user check their credentials and permissions at once (see :mod:`syncbind._auth.connection`).

A user saved (deactivated, a new password...) or deleted, a session logged out,
tokens revoked: one small message ``{"type": "syncbind.auth", "user": key,
"session": key}`` to the ``syncbind.connections`` group, after the transaction commits.

A user travels on channel-layer messages as :func:`user_key`, the text of its
primary key (channels-redis packs messages with msgpack, which has no UUID or
date type), and each hub indexes its connections by the same key.

A user's permissions or groups changed through the ORM (``m2m_changed`` on
``user_permissions``, ``groups`` and ``Group.permissions``, from either side, and a
Group or Permission deleted): ``{"type": "syncbind.auth", "users": [key, ...]}``
after the commit, each user once per transaction however many changes it made,
at most ``USERS_PER_MESSAGE`` users a message (a group's members are many).
A user model without ``groups`` or ``user_permissions`` (no ``PermissionsMixin``)
has only the relations it has watched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import transaction
from django.db.models import Q
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

from syncbind._live import messages
from syncbind._live.changes import send
from syncbind._live.keys import CONNECTIONS_GROUP
from syncbind._wire.jsonsafe import to_json_safe

USERS_PER_MESSAGE = 500

# Users to announce when the current transaction commits, per thread and database.
_pending = threading.local()


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
    message = messages.credentials(user_key(user), session_key)
    send(CONNECTIONS_GROUP, message, "a credential change")


def announce_users(user_pks: Iterable[Any]) -> None:
    """Tell every hub that these users' permissions may have changed, in messages of at
    most USERS_PER_MESSAGE users."""
    pks = list(user_pks)
    size = max(1, USERS_PER_MESSAGE)
    for start in range(0, len(pks), size):
        chunk = [user_key(pk) for pk in pks[start : start + size]]
        message = messages.permissions(chunk)
        send(CONNECTIONS_GROUP, message, "a permission change")


def _announce_after_commit(user_pks: Iterable[Any], using: str | None) -> None:
    """Announce ``user_pks`` once the transaction on ``using`` commits (at once outside
    one). Every callback sends all that is pending: a rolled-back savepoint drops its
    own callback, not the users of the changes around it (they only get checked once
    more)."""
    waiting = _waiting(using)
    waiting.update(dict.fromkeys(user_pks))
    transaction.on_commit(partial(_flush, using), using=using)


def _waiting(using: str | None) -> dict[Any, None]:
    by_database = getattr(_pending, "by_database", None)
    if by_database is None:
        by_database = _pending.by_database = {}
    return by_database.setdefault(using, {})


def _flush(using: str | None) -> None:
    waiting = _waiting(using)
    if waiting:
        pks = list(waiting)
        waiting.clear()
        announce_users(pks)


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


# -- permissions and groups --------------------------------------------------------------

CHANGED = ("post_add", "post_remove", "post_clear")


def _users(using: str | None, condition: Q) -> list[Any]:
    """The primary keys of the users matching ``condition`` (read before a change)."""
    manager = get_user_model()._default_manager.db_manager(using)
    return list(manager.filter(condition).values_list("pk", flat=True).distinct().order_by("pk"))


def _user_relation_changed(
    field: str,
    sender: Any,
    instance: Any,
    action: str,
    reverse: bool,
    pk_set: Any,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    """``user.<field>`` changed (``user_permissions`` or ``groups``), from either side."""
    _announce_relation_change(
        action,
        reverse,
        using,
        of_instance=lambda: [instance.pk],
        of_pks=lambda: pk_set or (),
        # permission.user_set.clear(), group.user_set.clear()
        of_cleared=lambda: _users(using, Q(**{field: instance})),
    )


def _group_permissions_changed(
    sender: Any,
    instance: Any,
    action: str,
    reverse: bool,
    pk_set: Any,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    """``group.permissions`` changed: every member of the groups concerned."""
    _announce_relation_change(
        action,
        reverse,
        using,
        of_instance=lambda: _users(using, Q(groups=instance)),
        of_pks=lambda: _users(using, Q(groups__in=pk_set or ())),
        # permission.group_set.clear()
        of_cleared=lambda: _users(using, Q(groups__permissions=instance)),
    )


def _announce_relation_change(
    action: str,
    reverse: bool,
    using: str | None,
    *,
    of_instance: Callable[[], Iterable[Any]],
    of_pks: Callable[[], Iterable[Any]],
    of_cleared: Callable[[], Iterable[Any]],
) -> None:
    """Announce the users an ``m2m_changed`` of a relation granting permissions concerns:
    those of the instance changed from its own side, those of the rows added or removed
    from the other side, and, before the other side is cleared, those it held (after,
    they can no longer be found)."""
    if not reverse:
        if action in CHANGED:
            _announce_after_commit(of_instance(), using)
    elif action in ("post_add", "post_remove"):
        _announce_after_commit(of_pks(), using)
    elif action == "pre_clear":
        _announce_after_commit(of_cleared(), using)


def _group_deleted(sender: Any, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    _announce_after_commit(_users(using, Q(groups=instance)), using)


def _permission_deleted(
    lookups: tuple[str, ...], sender: Any, instance: Any, using: str | None = None, **kwargs: Any
) -> None:
    """Everyone who held the permission, directly or through a group."""
    holders = Q()
    for lookup in lookups:
        holders |= Q(**{lookup: instance})
    _announce_after_commit(_users(using, holders), using)


def permission_relations(user_model: Any) -> dict[str, Any]:
    """``{"user_permissions": through, "groups": through}``: those of the two
    many-to-many relations of PermissionsMixin that ``user_model`` has."""
    # Lazy: django.contrib.auth may not be installed (checked first).
    from django.contrib.auth.models import Group, Permission

    found = {}
    for name, target in (("user_permissions", Permission), ("groups", Group)):
        try:
            field = user_model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if field.many_to_many and field.related_model is target:
            found[name] = field.remote_field.through
    return found


def _connect_permissions(user_model: Any) -> None:
    if not apps.is_installed("django.contrib.auth"):
        return
    # Lazy: django.contrib.auth may not be installed (checked first).
    from django.contrib.auth.models import Group, Permission

    relations = permission_relations(user_model)
    for name, through in relations.items():
        m2m_changed.connect(
            partial(_user_relation_changed, name),
            sender=through,
            weak=False,
            dispatch_uid=f"syncbind.credentials.{name}",
        )
    holders: list[str] = []
    if "user_permissions" in relations:
        holders.append("user_permissions")
    if "groups" in relations:
        holders.append("groups__permissions")
        m2m_changed.connect(
            _group_permissions_changed,
            sender=Group.permissions.through,
            dispatch_uid="syncbind.credentials.group_permissions",
        )
        pre_delete.connect(_group_deleted, sender=Group, dispatch_uid="syncbind.credentials.group")
    if holders:
        pre_delete.connect(
            partial(_permission_deleted, tuple(holders)),
            sender=Permission,
            weak=False,
            dispatch_uid="syncbind.credentials.permission",
        )


def connect() -> None:
    """Connect the receivers; called from ``SimpleSyncbindConfig.ready()``."""
    user_model = get_user_model()
    post_save.connect(_user_changed, sender=user_model, dispatch_uid="syncbind.credentials.save")
    post_delete.connect(
        _user_changed, sender=user_model, dispatch_uid="syncbind.credentials.delete"
    )
    user_logged_out.connect(_logged_out, dispatch_uid="syncbind.credentials.logout")
    _connect_permissions(user_model)
