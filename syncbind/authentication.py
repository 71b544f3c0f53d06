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

from .exceptions import AuthenticationFailed
from .settings import api_settings

TOKEN_SALT = "syncbind.token"


class BaseAuthentication:
    def authenticate(self, scope: dict[str, Any]) -> tuple[Any, Any] | None:
        """Called once per connection, in a worker thread, with the ASGI scope."""
        raise NotImplementedError


class SessionAuthentication(BaseAuthentication):
    """The Django session user, as Channels' ``AuthMiddlewareStack`` put it in the scope."""

    def authenticate(self, scope):
        user = scope.get("user")
        if user is not None and user.is_authenticated:
            return user, None
        return None


class TokenAuthentication(BaseAuthentication):
    """A ``?token=`` query parameter (browsers cannot set WebSocket headers).

    By default the token is one made by :func:`make_token`: signed with
    SECRET_KEY, naming the user, valid for ``TOKEN_MAX_AGE`` seconds. Override
    :meth:`get_user` to look tokens up elsewhere (DRF's authtoken, an API-key
    table): return the user, or raise AuthenticationFailed.
    """

    query_param = "token"

    def authenticate(self, scope):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        values = query.get(self.query_param)
        if not values:
            return None
        user = self.get_user(values[0])
        if user is None or not user.is_active:
            raise AuthenticationFailed("Invalid token.")
        return user, values[0]

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
