"""Who is connecting. Each class returns ``(user, auth)`` or None (not mine).

``AUTHENTICATION_CLASSES`` are tried in order at the WebSocket handshake (and
for each HTTP request); the first that returns a user wins, none means
anonymous. Raise :class:`~syncbind.exceptions.AuthenticationFailed` to refuse
credentials that were given but are wrong. ``still_valid(connection)`` is
asked again while a WebSocket stays open (see :mod:`syncbind._auth.connection`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib import import_module
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.http import is_same_domain

from syncbind._live.credentials import announce, user_key
from syncbind.exceptions import AuthenticationFailed, PermissionDenied
from syncbind.settings import api_settings

if TYPE_CHECKING:
    from syncbind._auth.connection import Connection

TOKEN_SALT = "syncbind.token"
TOKEN_SUBPROTOCOL_PREFIX = "syncbind.token."


class BaseAuthentication:
    def authenticate(self, scope: dict[str, Any]) -> tuple[Any, Any] | None:
        """Called once per WebSocket connection, in a worker thread, with the ASGI scope."""
        raise NotImplementedError

    def authenticate_request(self, request: Any) -> tuple[Any, Any] | None:
        """Called for each HTTP API request with the Django HttpRequest. Not supported
        by default: return None so the next class is tried."""
        return None

    def still_valid(self, connection: Connection) -> bool:
        """Whether an open connection this class admitted may go on; called (worker
        thread) every USER_REFRESH_INTERVAL and when the user's credentials change,
        after its user was read again (an inactive user is refused before this)."""
        return True

    def still_valid_many(self, connections: list[Connection], users: list[Any]) -> list[bool]:
        """``still_valid`` for many connections this class admitted, at once (the
        recipients of a server push); ``users`` are their users just read again. One
        bool per connection. Override to check them in fewer queries than one each."""
        return [self.still_valid(connection) for connection in connections]


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Whether a browser handshake's Origin is this site (the socket's scheme, its Host
    and port) or one of ``CSRF_TRUSTED_ORIGINS``: Django's CSRF rule, for WebSocket
    handshakes.

    Browsers send an Origin with every WebSocket handshake, and the session
    cookie with it, whatever site opened it; refusing other origins is what
    stops another site from using a visitor's session (cross-site WebSocket
    hijacking). A handshake without an Origin is not from a browser. The
    scheme counts as in Django's CSRF check: a ``wss://`` socket is opened by
    ``https://`` pages, a ``ws://`` one by ``http://`` pages, so a plain-HTTP
    page (anyone on the network can write one) does not pass for the site.
    """
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if not parts.hostname:
        return False
    if _same_site(parts, scope):
        return True
    netloc = parts.netloc.lower()
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        trusted_parts = urlsplit(trusted)
        pattern = trusted_parts.netloc.lower()
        # As Django's CSRF check reads them: "https://*.example.com" is any subdomain.
        pattern = pattern[1:] if pattern.startswith("*.") else pattern
        if trusted_parts.scheme == parts.scheme and is_same_domain(netloc, pattern):
            return True
    return False


_PAGE_SCHEMES = {"ws": "http", "wss": "https"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def socket_scheme(scope: dict[str, Any]) -> str | None:
    """The scheme of the pages this socket belongs with ("http" for ws, "https" for wss),
    as Django's ``request.scheme``: ``SECURE_PROXY_SSL_HEADER`` when set and present,
    else the scope's "scheme" (the server's, from its TLS or its forwarded-headers
    handling); None when the server does not say."""
    if settings.SECURE_PROXY_SSL_HEADER:
        name, secure = settings.SECURE_PROXY_SSL_HEADER
        header = name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
        value = _header(scope, header)
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure else "http"
    return _PAGE_SCHEMES.get(scope.get("scheme", ""))


def _same_site(origin: Any, scope: dict[str, Any]) -> bool:
    """Whether ``origin`` (split) has the socket's scheme (where known), host and port."""
    scheme = socket_scheme(scope)
    if scheme is not None and origin.scheme != scheme:
        return False
    host = _header(scope, b"x-forwarded-host") if settings.USE_X_FORWARDED_HOST else None
    host = (host or _header(scope, b"host") or "").split(",")[0].strip()
    if not host:
        return False
    served = urlsplit(f"//{host}")
    try:
        default = _DEFAULT_PORTS.get(origin.scheme)
        origin_port, host_port = origin.port or default, served.port or default
    except ValueError:  # a port that is not a number
        return False
    return origin.hostname == served.hostname and origin_port == host_port


class SessionAuthentication(BaseAuthentication):
    """The Django session user, as Channels' ``AuthMiddlewareStack`` put it in the scope.

    A handshake whose Origin is another site's is refused (see :func:`origin_allowed`).
    While the socket is open, its session must still exist and still be the user's
    (logging out, or changing the password elsewhere, ends it).
    """

    def authenticate(self, scope):
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            return None
        if not origin_allowed(scope):
            raise AuthenticationFailed("Cross-site WebSocket handshake refused.")
        return user, None

    def authenticate_request(self, request):
        # The user AuthenticationMiddleware attached; unsafe methods need the CSRF token,
        # as in any Django view (the API views themselves are csrf_exempt for tokens).
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        enforce_csrf(request)
        return user, None

    def still_valid(self, connection):
        return self.still_valid_many([connection], [connection.user])[0]

    def still_valid_many(self, connections, users):
        """Each connection's session still exists, names its user (who logged in with a
        backend still configured) and carries the user's current password hash; the
        sessions are read in one query when the session engine keeps them in the
        database. A connection without a session (a user put in the scope by other
        code, or tests) holds."""
        keys = [_session_key(connection) for connection in connections]
        sessions = _load_sessions({key for key in keys if key is not None})
        return [
            key is None or _session_holds(sessions.get(key, {}), user)
            for key, user in zip(keys, users, strict=True)
        ]


def _session_key(connection: Connection) -> str | None:
    session = connection.scope.get("session")
    return getattr(session, "session_key", None) if session is not None else None


def _load_sessions(keys: set[str]) -> dict[str, dict[str, Any]]:
    """The data of the sessions ``keys`` that exist and have not expired."""
    if not keys:
        return {}

    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    get_model_class = getattr(store_class, "get_model_class", None)
    if get_model_class is None:  # not kept in the database: read one by one
        return {key: store_class(key).load() for key in keys}
    rows = get_model_class()._default_manager.filter(
        session_key__in=keys, expire_date__gt=timezone.now()
    )
    return {row.session_key: store_class(row.session_key).decode(row.session_data) for row in rows}


def _session_holds(data: dict[str, Any], user: Any) -> bool:
    """Whether session ``data`` still logs ``user`` in (what ``auth.get_user`` checks)."""
    if data.get(auth.BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS:
        return False
    try:
        if user._meta.pk.to_python(data.get(auth.SESSION_KEY)) != user.pk:
            return False
    except (DjangoValidationError, TypeError, ValueError):
        return False
    if not hasattr(user, "get_session_auth_hash"):
        return True
    session_hash = data.get(auth.HASH_SESSION_KEY)
    if not session_hash:
        return False
    hashes = [user.get_session_auth_hash()]
    fallback = getattr(user, "_get_session_auth_hash", None)
    if fallback is not None:
        # A session made before a SECRET_KEY rotation holds, as auth.get_user lets it.
        hashes += [fallback(secret=secret) for secret in settings.SECRET_KEY_FALLBACKS]
    return any(constant_time_compare(session_hash, known) for known in hashes)


def _unused_response(request: HttpRequest) -> HttpResponse:
    # The middleware's response and view callables: the check calls neither (the view is
    # read only for a csrf_exempt mark, which this one does not have).
    return HttpResponse()


class _CSRFCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason


def enforce_csrf(request: Any) -> None:
    """Refuse an unsafe HTTP request authenticated by session without a valid CSRF token."""
    check = _CSRFCheck(_unused_response)
    check.process_request(request)
    reason = check.process_view(request, _unused_response, (), {})
    if reason:
        raise PermissionDenied(f"CSRF failed: {reason}")


def _signer() -> signing.TimestampSigner:
    # "." keeps the token within the characters a WebSocket subprotocol may use.
    return signing.TimestampSigner(salt=TOKEN_SALT, sep=".")


def _fingerprint(user: Any) -> str:
    # Changes with the password (as the session hash does): a new password revokes tokens.
    return salted_hmac(TOKEN_SALT, user.get_session_auth_hash(), algorithm="sha256").hexdigest()[
        :20
    ]


def make_token(user: Any) -> str:
    """A signed, expiring token for ``user``, accepted by TokenAuthentication.

    It names the user, when it was made and the user's password (by a hash of
    its hash), and is valid for ``TOKEN_MAX_AGE`` seconds, until the password
    changes, or until :func:`revoke_tokens` is called for the user.
    """
    # The key as text: a UUID (or any other) primary key signs as JSON.
    payload = {"u": user_key(user), "t": int(time.time() * 1000), "h": _fingerprint(user)}
    return _signer().sign_object(payload, compress=False)


def revoke_tokens(user: Any) -> None:
    """Make every token of ``user`` made until now invalid, and close the connections
    they opened (after the transaction commits). Later tokens work."""
    # Lazy: this module is named in settings and imports no models (as DRF's).
    from syncbind.models import TokenRevocation

    TokenRevocation.objects.update_or_create(
        user_id=user.pk, defaults={"revoked_at": datetime.now(tz=UTC)}
    )

    transaction.on_commit(lambda: announce(user.pk))


class TokenAuthentication(BaseAuthentication):
    """A token made by :func:`make_token` (or looked up by an overridden :meth:`get_user`).

    Over WebSocket it comes as a subprotocol: the client offers ``"syncbind"`` and
    ``"syncbind.token.<token>"`` (``new WebSocket(url, ["syncbind",
    "syncbind.token." + token])``; syncbind.js does it), and the server accepts
    ``"syncbind"``. Over HTTP it is the ``Authorization: Token <token>`` header.
    Tokens in URLs end up in access logs: ``?token=`` is read only when
    ``query_param`` is set (e.g. ``"token"``) in a subclass.
    """

    query_param: str | None = None
    keyword = "Token"

    def authenticate(self, scope):
        token = None
        for subprotocol in scope.get("subprotocols", ()):
            if subprotocol.startswith(TOKEN_SUBPROTOCOL_PREFIX):
                token = subprotocol[len(TOKEN_SUBPROTOCOL_PREFIX) :]
                break
        if token is None and self.query_param:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            values = query.get(self.query_param)
            token = values[0] if values else None
        return self._check(token) if token else None

    def authenticate_request(self, request):
        """``Authorization: Token <token>`` (or ``query_param``, when set)."""
        header = request.META.get("HTTP_AUTHORIZATION", "").split()
        if len(header) == 2 and header[0] == self.keyword:
            return self._check(header[1])
        token = request.GET.get(self.query_param) if self.query_param else None
        return self._check(token) if token else None

    def _check(self, token: str) -> tuple[Any, str]:
        user = self.get_user(token)
        if user is None or not user.is_active:
            raise AuthenticationFailed("Invalid token.")
        return user, token

    def still_valid(self, connection):
        try:
            user = self.get_user(connection.auth, open_connection=True)
        except AuthenticationFailed:
            return False
        return user is not None and user.pk == connection.user.pk

    def get_user(self, token: str, *, open_connection: bool = False) -> Any:
        """The user ``token`` belongs to; raise AuthenticationFailed if none. Override to
        look tokens up elsewhere (DRF's authtoken table, an API-key model).

        ``open_connection`` is True when the token is checked again for a connection it
        opened: an open connection outlives its token's age (``TOKEN_MAX_AGE`` applies to
        handshakes and HTTP requests), while a new password or a revocation ends it."""
        return self.verify(token, expired_ok=open_connection)

    def verify(self, token: str, expired_ok: bool = False) -> Any:
        """Check a :func:`make_token` token: signature, age, password, revocation."""
        max_age = None if expired_ok else api_settings.TOKEN_MAX_AGE
        try:
            payload = _signer().unsign_object(token, max_age=max_age)
        except signing.SignatureExpired:
            raise AuthenticationFailed("Token expired.") from None
        except signing.BadSignature:
            raise AuthenticationFailed("Invalid token.") from None
        if not isinstance(payload, dict) or not {"u", "t", "h"} <= payload.keys():
            raise AuthenticationFailed("Invalid token.")
        model = get_user_model()
        try:
            user = model._default_manager.get(pk=payload["u"])
        except (model.DoesNotExist, ValueError, TypeError):
            raise AuthenticationFailed("Invalid token.") from None
        if not constant_time_compare(str(payload["h"]), _fingerprint(user)):
            raise AuthenticationFailed("Token revoked.")
        # Lazy: this module is named in settings and imports no models (as DRF's).
        from syncbind.models import TokenRevocation

        issued = datetime.fromtimestamp(int(payload["t"]) / 1000, tz=UTC)
        if TokenRevocation.objects.filter(user_id=user.pk, revoked_at__gte=issued).exists():
            raise AuthenticationFailed("Token revoked.")
        return user
