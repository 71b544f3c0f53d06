"""Who is on the other end of a transport, and whether they still may be.

A :class:`Connection` is made once per WebSocket (at the handshake) or per
HTTP request, by :func:`open_websocket` / :func:`open_http`, which run the
``AUTHENTICATION_CLASSES`` and the anonymous rule for both transports.

A WebSocket lives for hours. Its user is read again, and its credentials
checked again (the session still exists and still belongs to the user, the
token is not revoked), every ``USER_REFRESH_INTERVAL`` seconds before its next
request or push, and at once when the user is saved or deleted, logs out, or
has their tokens revoked, or their permissions or groups change
(:mod:`syncbind._live.credentials`). A connection whose credentials no longer
hold is closed with code 4003; a subscription the user may no longer read is
ended, and the others compiled again, by the hub's refresh job for the
connection (:meth:`Connection.reauthorize`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ObjectDoesNotExist
from django.utils.functional import LazyObject, empty

from syncbind.exceptions import NotAuthenticated
from syncbind.settings import api_settings
from syncbind.throttling import http_rate_limits

if TYPE_CHECKING:
    from syncbind._auth.collaborators import (
        Authenticator,
        Consumer,
        Hub,
        Outbox,
        Subscriptions,
        Throttle,
    )

_PERMISSION_CACHES = ("_perm_cache", "_user_perm_cache", "_group_perm_cache")


@dataclass(eq=False)
class Connection:
    """The sender of messages, as the core and the live subscriptions need to know it."""

    user: Any = field(default_factory=AnonymousUser)
    # What the authentication class returned beside the user (a token, ...).
    auth: Any = None
    # The authentication class instance that admitted the connection (None: anonymous).
    authenticator: Authenticator | None = None
    scope: dict[str, Any] = field(default_factory=dict)
    consumer: Consumer | None = None
    transport: str = "websocket"
    http_request: Any = None
    # Live subscriptions (syncbind._live.subscriptions; None over HTTP).
    subscriptions: Subscriptions | None = None
    # The connection's RateLimit (None: unlimited).
    throttle: Throttle | None = None
    # The outgoing queue (syncbind._transport.outbox; None over HTTP).
    outbox: Outbox | None = None
    # When the user and credentials were last checked (time.monotonic()).
    checked_at: float = field(default_factory=time.monotonic)
    # False once the credentials no longer hold: nothing more is served.
    valid: bool = True

    def __post_init__(self) -> None:
        if self.subscriptions is not None:
            self.subscriptions.connection = self

    def join(self, group: str) -> None:
        """Receive server pushes to ``group`` from now on (:mod:`syncbind.push`).

        Decide first that this user may: a group is a name, not a permission.
        """
        hub = self._hub("join")
        hub.join_group(self, str(group))

    def leave(self, group: str) -> None:
        """Stop receiving pushes to ``group``."""
        self._hub("leave").leave_group(self, str(group))

    def _hub(self, what: str) -> Hub:
        if self.subscriptions is None:
            raise RuntimeError(f"Only WebSocket connections can {what} push groups.")
        return self.subscriptions.hub

    def refresh(self, force: bool = False) -> bool:
        """Read the user again and check the credentials, when USER_REFRESH_INTERVAL has
        passed (or ``force``). Returns whether it did. Sync (a worker thread).

        Django caches permissions on the user object; re-reading it drops those
        caches (on the user behind Channels' lazy wrapper of a session socket), so
        revoked permissions count too. A deleted or deactivated user,
        an ended session, a changed password or a revoked token make the
        connection invalid.
        """
        user = self.user
        if not getattr(user, "is_authenticated", False) or not self.valid:
            return False
        if not force and not self.refresh_due():
            return False
        self.checked_at = time.monotonic()
        real = _unwrapped(user)
        try:
            real.refresh_from_db()
        except ObjectDoesNotExist:
            self.valid = False
            return True
        for cache in _PERMISSION_CACHES:
            vars(real).pop(cache, None)
        still = getattr(self.authenticator, "still_valid", None)
        if not user.is_active or (still is not None and not still(self)):
            self.valid = False
        elif self.consumer is not None:
            # The groups the consumer chose may depend on the user (syncbind.push).
            self.consumer.choose_push_groups(self)
        return True

    def refresh_due(self) -> bool:
        """Whether :meth:`refresh` would read the user again now (no query)."""
        if not getattr(self.user, "is_authenticated", False) or not self.valid:
            return False
        interval = api_settings.USER_REFRESH_INTERVAL
        return interval is not None and time.monotonic() - self.checked_at >= interval

    def revalidate(self, session_key: str | None = None) -> bool:
        """Check at once (the user's credentials or permissions changed); ``session_key``
        names a session that just ended. Returns whether the connection may go on."""
        if session_key is not None and session_key == _session_key(self.scope):
            self.valid = False
        elif self.refresh(force=True) and self.valid:
            self.rekey_soon()
        return self.valid

    def refresh_if_due(self) -> None:
        """Before a request: read the user again when USER_REFRESH_INTERVAL has passed
        (worker thread). Its subscriptions are then compiled again by the hub's refresh
        job for this connection (:meth:`rekey_soon`), not inside this request."""
        if self.refresh() and self.valid:
            self.rekey_soon()

    def rekey_soon(self) -> None:
        """The user was read again: have the hub compile this connection's subscriptions
        again (:meth:`reauthorize`), in its refresh job; their frames wait for it."""
        if self.subscriptions is not None:
            self.subscriptions.hub.rekey(self)

    def reauthorize(self) -> list[Any]:
        """The user was read again: end the subscriptions it may no longer read (each
        with an ``ended`` frame), and compile the others again, as what they read may
        depend on the user. Returns the ones whose keys moved (the hub's refresh job,
        in a worker thread)."""
        if self.subscriptions is None:
            return []
        self.subscriptions.end_refused()
        return self.subscriptions.rekey()

    async def revoke(self) -> None:
        """Close the connection (its credentials no longer hold). On the event loop."""
        self.valid = False
        if self.consumer is not None:
            await self.consumer.revoke()


def _unwrapped(user: Any) -> Any:
    """The user object itself, behind Channels' (and Django's) lazy wrappers: the
    object Django caches permissions on."""
    while isinstance(user, LazyObject):
        lazy: Any = user  # its _wrapped and _setup() are not in Django's type stubs
        if lazy._wrapped is empty:
            lazy._setup()
        user = lazy._wrapped
    return user


def _session_key(scope: dict[str, Any]) -> str | None:
    session = scope.get("session")
    return getattr(session, "session_key", None) if session is not None else None


def _authenticate(credentials: Any, method: str) -> tuple[Any, Any, Any]:
    """Try AUTHENTICATION_CLASSES in order (``method`` is ``authenticate`` for an ASGI
    scope, ``authenticate_request`` for an HttpRequest); apply the anonymous rule.
    ``(user, auth, authenticator)``; raises NotAuthenticated/AuthenticationFailed."""
    for authentication_class in api_settings.AUTHENTICATION_CLASSES:
        authenticator = authentication_class()
        result = getattr(authenticator, method)(credentials)
        if result is not None:
            user, auth = result
            break
    else:
        user, auth, authenticator = AnonymousUser(), None, None
    if not user.is_authenticated and not api_settings.ANONYMOUS_CONNECTION_ALLOWED:
        raise NotAuthenticated()
    return user, auth, authenticator


def open_websocket(scope: dict[str, Any], **state: Any) -> Connection:
    """Authenticate a WebSocket handshake (worker thread); raises to refuse it."""
    user, auth, authenticator = _authenticate(scope, "authenticate")
    return Connection(user=user, auth=auth, authenticator=authenticator, scope=scope, **state)


def open_http(request: Any) -> Connection:
    """Authenticate one HTTP API request with the same classes and the same rule; its
    rate is its user's (or, signed out, its client address's) across requests."""
    user, auth, authenticator = _authenticate(request, "authenticate_request")
    client = (
        ("user", user.pk) if user.is_authenticated else ("addr", request.META.get("REMOTE_ADDR"))
    )
    return Connection(
        user=user,
        auth=auth,
        authenticator=authenticator,
        transport="http",
        http_request=request,
        throttle=http_rate_limits.for_client(api_settings.RATE_LIMIT, client),
    )
