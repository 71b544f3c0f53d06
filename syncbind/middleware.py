"""The session and user of a WebSocket handshake, with the user read in syncbind's worker pool.

Channels' ``AuthMiddlewareStack`` reads every handshake's session and user
with ``database_sync_to_async``, on asgiref's one thread-sensitive thread:
when many clients connect at once (a restart), their handshakes wait for
each other there, one after the other, before any consumer runs.
:func:`AuthMiddlewareStack` here is the same stack (cookies, session, user)
for syncbind's consumers, except that ``scope["user"]`` is read when first
looked at: by ``SessionAuthentication``, in the worker that opens the
connection, alongside the other handshakes. The user is Channels' own
``get_user`` answer (the session's backend must be configured, the
backend's ``get_user`` refuses inactive users, the session's auth hash
must match the user's), so the checks are the same.

It suits consumers that read the user from synchronous code, as syncbind's
do. Code running on the event loop must not touch ``scope["user"]`` before
a worker has: reading it there would query the database from async code
(Django raises ``SynchronousOnlyOperation``); keep Channels' stack for
such consumers.
"""

from __future__ import annotations

import inspect
from typing import Any

from channels.auth import get_user
from channels.middleware import BaseMiddleware
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.utils.functional import SimpleLazyObject

# The function Channels' get_user wraps: read in the calling thread, same checks.
_read_user = inspect.unwrap(get_user)


def session_user(session: Any) -> Any:
    """The user ``session`` logs in, or AnonymousUser, as Channels reads it (the calling
    thread; database access)."""
    return _read_user({"session": session})


class LazyAuthMiddleware(BaseMiddleware):
    """Puts ``scope["user"]``, read from ``scope["session"]`` when first looked at."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if "session" not in scope:
            raise ValueError(
                "syncbind's LazyAuthMiddleware needs the session: put it inside "
                "Channels' SessionMiddleware (AuthMiddlewareStack does)."
            )
        scope = dict(scope)
        if "user" not in scope:
            session = scope["session"]
            scope["user"] = SimpleLazyObject(lambda: session_user(session))
        return await self.inner(scope, receive, send)


def AuthMiddlewareStack(inner: Any) -> Any:  # noqa: N802 - named as Channels' stack it replaces
    """Cookies, session and a user read in syncbind's worker pool (see the module
    docstring): ``AuthMiddlewareStack(URLRouter([path("ws/", BindingConsumer.as_asgi())]))``."""
    return CookieMiddleware(SessionMiddleware(LazyAuthMiddleware(inner)))
