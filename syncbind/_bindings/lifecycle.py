"""One request's lifecycle on its binding, as DRF's ``APIView.dispatch`` runs a view's.

:meth:`Lifecycle.dispatch` is called once per message, in a worker thread, on
a binding made for that message. Its override points:

- :meth:`~Lifecycle.initial`: before the handler: the connection's
  credentials (see :mod:`syncbind._auth.connection`), then the permission classes;
- :meth:`~Lifecycle.get_handler`: the action or ``@event`` method;
- :meth:`~Lifecycle.handle_exception`: any exception → the error reply,
  through ``EXCEPTION_HANDLER``.
"""

from __future__ import annotations

import inspect
from typing import Any

from asgiref.sync import async_to_sync
from django.db import router, transaction

from syncbind._bindings.events import EventSpec
from syncbind._wire import protocol
from syncbind.exceptions import UnknownEvent
from syncbind.settings import api_settings


def error_reply_for(exc: BaseException, request: Any, binding: Any = None) -> dict[str, Any]:
    """The error reply for ``exc`` raised while handling ``request``, through
    ``EXCEPTION_HANDLER`` (``binding`` is None when none could be made)."""
    error = api_settings.EXCEPTION_HANDLER(exc, {"request": request, "binding": binding})
    message = request.message
    return protocol.error_reply(error, message.event, message.request_id)


class Lifecycle:
    """The ``dispatch()`` half of a binding (part of ``BindingBase``)."""

    request: Any
    action: str | None

    def get_handler(self) -> tuple[Any, EventSpec]:
        """The bound method that handles this message's action, and its ``@event`` spec."""
        found = self.get_event(self.action or "")  # type: ignore[attr-defined]
        if found is None:
            raise UnknownEvent.no_event(self.get_stream(), self.action or "")  # type: ignore[attr-defined]
        attr, spec = found
        return getattr(self, attr), spec

    def is_async_event(self) -> bool:
        """Whether the handler is ``async def`` (an async transport awaits it on its loop)."""
        try:
            handler, _spec = self.get_handler()
        except UnknownEvent:
            return False
        return inspect.iscoroutinefunction(handler)

    def initial(self) -> None:
        """Called before the handler: may the request be served at all?

        Checks the connection's credentials (they may have ended since it
        opened) and the permission classes; raises to refuse.
        """
        connection = self.request.connection
        if connection is not None and hasattr(connection, "check"):
            connection.check()
        self.check_permissions(self.request)  # type: ignore[attr-defined]

    def handle_exception(self, exc: BaseException) -> dict[str, Any]:
        """Turn an exception raised while handling the message into its error reply."""
        return error_reply_for(exc, self.request, self)

    def dispatch(self) -> dict[str, Any]:
        """Handle the message to completion: ``initial()``, the handler (inside
        ``transaction.atomic()`` when its ``@event`` says so), the reply, encoded
        within the same transaction (see :class:`~syncbind._wire.protocol.Reply`). Sync."""
        request = self.request
        try:
            self.initial()
            handler, spec = self.get_handler()
            if inspect.iscoroutinefunction(handler):
                return protocol.reply(
                    request.message, async_to_sync(handler)(request), request.meta
                )
            if spec.atomic:
                using = router.db_for_write(self.get_model())  # type: ignore[attr-defined]
                # Encoded before the commit: a reply that cannot be sent undoes the event.
                with transaction.atomic(using=using):
                    return protocol.reply(request.message, handler(request), request.meta)
            return protocol.reply(request.message, handler(request), request.meta)
        except Exception as exc:
            return self.handle_exception(exc)

    async def adispatch(self) -> dict[str, Any]:
        """``dispatch()`` for an ``async def`` event awaited on the event loop: the
        checks (which may query the database) run in the worker pool."""
        from syncbind._workers.executor import run_in_pool

        request = self.request
        try:
            await run_in_pool(self.initial)
            handler, _spec = self.get_handler()
            return protocol.reply(request.message, await handler(request), request.meta)
        except Exception as exc:
            return self.handle_exception(exc)
