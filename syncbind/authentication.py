"""Who is connecting. Each class returns ``(user, auth)`` or None (not mine).

``AUTHENTICATION_CLASSES`` are tried in order at the WebSocket handshake (and
for each HTTP request); the first that returns a user wins, none means
anonymous. Raise :class:`~syncbind.exceptions.AuthenticationFailed` to refuse
credentials that were given but are wrong.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from django.contrib.auth import get_user_model
from django.core import signing
from django.middleware.csrf import CsrfViewMiddleware

from .exceptions import AuthenticationFailed, PermissionDenied
from .settings import api_settings

TOKEN_SALT = "syncbind.token"


class BaseAuthentication:
    def authenticate(self, scope: dict[str, Any]) -> tuple[Any, Any] | None:
        """Called once per WebSocket connection, in a worker thread, with the ASGI scope."""
        raise NotImplementedError

    def authenticate_request(self, request: Any) -> tuple[Any, Any] | None:
        """Called for each HTTP API request with the Django HttpRequest. Not supported
        by default: return None so the next class is tried."""
        return None


class SessionAuthentication(BaseAuthentication):
    """The Django session user, as Channels' ``AuthMiddlewareStack`` put it in the scope."""

    def authenticate(self, scope):
        user = scope.get("user")
        if user is not None and user.is_authenticated:
            return user, None
        return None

    def authenticate_request(self, request):
        # The user AuthenticationMiddleware attached; unsafe methods need the CSRF token,
        # as in any Django view (the API views themselves are csrf_exempt for tokens).
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        enforce_csrf(request)
        return user, None


class _CSRFCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason


def enforce_csrf(request: Any) -> None:
    """Refuse an unsafe HTTP request authenticated by session without a valid CSRF token."""
    check = _CSRFCheck(lambda req: None)
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason:
        raise PermissionDenied(f"CSRF failed: {reason}")


class TokenAuthentication(BaseAuthentication):
    """A ``?token=`` query parameter (browsers cannot set WebSocket headers).

    By default the token is one made by :func:`make_token`: signed with
    SECRET_KEY, naming the user, valid for ``TOKEN_MAX_AGE`` seconds. Override
    :meth:`get_user` to look tokens up elsewhere (DRF's authtoken, an API-key
    table): return the user, or raise AuthenticationFailed.
    """

    query_param = "token"

    keyword = "Token"

    def authenticate(self, scope):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        values = query.get(self.query_param)
        return self._check(values[0]) if values else None

    def authenticate_request(self, request):
        """``Authorization: Token <token>``, or the ``?token=`` parameter."""
        header = request.META.get("HTTP_AUTHORIZATION", "").split()
        if len(header) == 2 and header[0] == self.keyword:
            return self._check(header[1])
        token = request.GET.get(self.query_param)
        return self._check(token) if token else None

    def _check(self, token: str) -> tuple[Any, str]:
        user = self.get_user(token)
        if user is None or not user.is_active:
            raise AuthenticationFailed("Invalid token.")
        return user, token

    def get_user(self, token: str) -> Any:
        """Return the user ``token`` belongs to; raise AuthenticationFailed if none."""
        try:
            user_pk = signing.loads(token, salt=TOKEN_SALT, max_age=api_settings.TOKEN_MAX_AGE)
        except signing.SignatureExpired:
            raise AuthenticationFailed("Token expired.") from None
        except signing.BadSignature:
            raise AuthenticationFailed("Invalid token.") from None
        try:
            return get_user_model()._default_manager.get(pk=user_pk)
        except (get_user_model().DoesNotExist, ValueError, TypeError):
            raise AuthenticationFailed("Invalid token.") from None


def make_token(user: Any) -> str:
    """A signed, expiring token for ``user``, accepted by TokenAuthentication."""
    return signing.dumps(user.pk, salt=TOKEN_SALT)
