"""The WebSocket Origin rule for ambient credentials: session handshakes same-site, tokens from anywhere."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.http.cookie import parse_cookie

from syncbind.authentication import TOKEN_SUBPROTOCOL_PREFIX, TokenAuthentication, origin_allowed
from syncbind.settings import api_settings


class SessionOriginValidator(OriginValidator):
    """Wrap the ``"websocket"`` routing: ``SessionOriginValidator(AuthMiddlewareStack(...))``.

    A browser sends the site's cookies with a WebSocket handshake whatever page
    opened it, so a session cookie proves nothing about who wrote the page;
    Channels' ``AllowedHostsOriginValidator`` therefore refuses every other
    origin. A token, though, is offered by the page's own code (as a
    subprotocol), never by the browser on its own: a page on another origin, a
    mobile web view or a program holding one may connect from anywhere.

    A handshake whose Origin is this site's (the socket's scheme, host and port,
    or one of ``CSRF_TRUSTED_ORIGINS``: Django's CSRF rule, as
    :func:`~syncbind.authentication.origin_allowed` reads it), or that has no
    Origin (not a browser), passes unchanged. One from another origin:

    - carrying the session cookie and no token: refused (HTTP 403), as it
      could only authenticate by the visitor's session;
    - otherwise: passed on without its ``Cookie`` header, so nothing behind it
      (``AuthMiddlewareStack``, your ``connect()``) sees the visitor's session;
      it authenticates by its token, or is anonymous.

    A subclass of Channels' ``OriginValidator``, so the deploy check
    ``syncbind.W011`` counts the routing behind it as guarded.
    """

    def __init__(self, application: Any) -> None:
        super().__init__(application, allowed_origins=[])

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket" or origin_allowed(scope):
            return await self.application(scope, receive, send)
        if self.get_session_cookie(scope) is not None and not self.offers_token(scope):
            return await _refuse_handshake(scope, receive, send)
        headers = [(name, value) for name, value in scope.get("headers", ()) if name != b"cookie"]
        return await self.application({**scope, "headers": headers}, receive, send)

    def get_session_cookie(self, scope: dict[str, Any]) -> str | None:
        """The session cookie the handshake carries (``SESSION_COOKIE_NAME``), if any."""
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                found = parse_cookie(value.decode("latin-1")).get(settings.SESSION_COOKIE_NAME)
                if found:
                    return found
        return None

    def offers_token(self, scope: dict[str, Any]) -> bool:
        """Whether the handshake offers a token: as a ``syncbind.token.`` subprotocol, or
        in the URL parameter of a ``TokenAuthentication`` class that reads one
        (``query_param``). Override for credentials of your own that are not ambient."""
        if any(p.startswith(TOKEN_SUBPROTOCOL_PREFIX) for p in scope.get("subprotocols", ())):
            return True
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return any(
            issubclass(cls, TokenAuthentication) and cls.query_param in query
            for cls in api_settings.AUTHENTICATION_CLASSES
        )


async def _refuse_handshake(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer a WebSocket handshake with a refusal (HTTP 403) and end.

    Channels' ``WebsocketDenier`` is a consumer: it opens a channel on the layer
    and waits on it until the client goes, a Redis receive for every refused
    handshake (what an attacker's flood of cross-site attempts would cost), and a
    receive that on Python 3.11 may outlive its cancel (:mod:`syncbind._compat.cpython`).
    A refusal needs neither.
    """
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})
