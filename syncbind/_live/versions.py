"""The versions replies and pushes carry: a change-log position, signed for one reader.

A client that resumes with a version is told "unchanged" without any row
being read, so the version must vouch for more than a position: that this
user read this very subscription key (its rows, scope and shape) there. It
is signed with the project's ``SECRET_KEY`` for the user and the key; one
offered by another user, for another key (a scope that changed), or made up
is not recognised, and the read answers with its data as any other.
"""

from __future__ import annotations

from typing import Any

from django.utils.crypto import constant_time_compare, salted_hmac

from syncbind._live.credentials import user_key

SALT = "syncbind.version"
MAC_LENGTH = 16


def _mac(position: str, user: Any, key: Any) -> str:
    message = f"{position}|{user_key(user)}|{key.digest}"
    return salted_hmac(SALT, message, algorithm="sha256").hexdigest()[:MAC_LENGTH]


def sign(position: str | None, user: Any, key: Any) -> str | None:
    """The version of a state of ``key`` read by ``user`` after ``position``."""
    if position is None:
        return None
    return f"{position}~{_mac(position, user, key)}"


def position_of(version: str, user: Any, key: Any) -> str | None:
    """The position ``version`` names, if it was signed for ``user`` and ``key``."""
    position, _, mac = version.partition("~")
    if not mac or not constant_time_compare(mac, _mac(position, user, key)):
        return None
    return position
