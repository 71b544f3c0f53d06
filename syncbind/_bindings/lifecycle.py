"""One request's lifecycle on its binding, as DRF's ``APIView.dispatch`` runs a view's.

:meth:`Lifecycle.dispatch` is called once per message, in a worker thread, on
a binding made for that message. Its override points:

- :meth:`~Lifecycle.initial`: before the handler: the connection's
  credentials (see :mod:`syncbind._auth.connection`), then the permission classes
  (:meth:`~Lifecycle.get_permissions`, :meth:`~Lifecycle.check_permissions`,
  :meth:`~Lifecycle.check_object_permissions`, as DRF's ``APIView`` has them);
- :meth:`~Lifecycle.get_handler`: the action or ``@event`` method;
- :meth:`~Lifecycle.handle_exception`: any exception → the error reply,
  through ``EXCEPTION_HANDLER``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.db import aclose_old_connections
from django.db import router, transaction

from syncbind._auth.decide import authorize
from syncbind._bindings.events import EventSpec
from syncbind._wire import protocol
from syncbind.drf import DRFPermission
from syncbind.exceptions import NotAuthenticated, PermissionDenied, UnknownEvent
from syncbind.permissions import BasePermission
from syncbind.settings import api_settings

if TYPE_CHECKING:
    from syncbind._auth.connection import Connection
    from syncbind._bindings.request import Request

    # The parts of a binding call each other's hooks: see syncbind._bindings.surface.
    from syncbind._bindings.surface import Binding
else:
    Binding = object


def error_reply_for(
    exc: BaseException, request: Request, binding: Binding | None = None
) -> dict[str, Any]:
    """The error reply for ``exc`` raised while handling ``request``, through
    ``EXCEPTION_HANDLER`` (``binding`` is None when none could be made)."""
    error = api_settings.EXCEPTION_HANDLER(exc, {"request": request, "binding": binding})
    message = request.message
    return protocol.error_reply(error, message.event, message.request_id)


class Lifecycle(Binding):
    """The ``dispatch()`` half of a binding, with its permission checks (the base of
    ``BindingBase``)."""

    permission_classes: Any = None

    def get_permission_classes(self) -> tuple:
        """The ``@event``'s ``permission_classes``, else the binding's, else
        ``DEFAULT_PERMISSION_CLASSES``."""
        spec = self.get_event(self.action) if self.action else None
        if spec is not None and spec[1].permission_classes is not None:
            return tuple(spec[1].permission_classes)
        if self.permission_classes is not None:
            return tuple(self.permission_classes)
        return tuple(api_settings.DEFAULT_PERMISSION_CLASSES)

    def get_permissions(self) -> list:
        """Instances of the permission classes that apply to this event.

        DRF permission classes are wrapped so that they see a DRF-like view.
        """
        permissions = []
        for permission_class in self.get_permission_classes():
            permission = permission_class()
            if not isinstance(permission, BasePermission):  # a DRF permission class
                permission = DRFPermission(permission)
            permissions.append(permission)
        return permissions

    def check_permissions(self, request: Request) -> None:
        """Called before every event; raises not_authenticated / permission_denied."""
        for permission in self.get_permissions():
            if not permission.has_permission(request, self):
                self.permission_denied(request, permission)

    def check_object_permissions(self, request: Request, obj: Any) -> None:
        """Called for every event that touches a row, and for every push of one."""
        for permission in self.get_permissions():
            if not permission.has_object_permission(request, self, obj):
                self.permission_denied(request, permission)

    def permission_denied(self, request: Request, permission: Any = None) -> None:
        if not (request.user and request.user.is_authenticated):
            raise NotAuthenticated()
        raise PermissionDenied(getattr(permission, "message", None))

    def get_handler(self) -> tuple[Any, EventSpec]:
        """The bound method that handles this message's action, and its ``@event`` spec."""
        found = self.get_event(self.action or "")
        if found is None:
            raise UnknownEvent.no_event(self.get_stream(), self.action or "")
        attr, spec = found
        return getattr(self, attr), spec

    def initial(self) -> None:
        """Called before the handler: may the request be served at all?

        Reads the user again when ``USER_REFRESH_INTERVAL`` has passed, then asks
        :func:`syncbind._auth.decide.authorize` (credentials, permission classes);
        raises to refuse.
        """
        connection = self.request.connection
        if connection is not None:
            connection.refresh_if_due()
        authorize(self, self.request)

    def handle_exception(self, exc: BaseException) -> dict[str, Any]:
        """Turn an exception raised while handling the message into its error reply."""
        return error_reply_for(exc, self.request, self)

    def dispatch(self) -> dict[str, Any]:
        """Handle the message to completion: ``initial()``, the handler (inside
        ``transaction.atomic()`` when its ``@event`` says so), the reply, encoded
        within the same transaction (see :class:`~syncbind._wire.protocol.Reply`).

        The one entry for every event, on every transport, in a worker thread. An
        ``async def`` event is awaited on its connection's event loop (:func:`awaited`)."""
        request = self.request
        try:
            self.initial()
            handler, spec = self.get_handler()
            if inspect.iscoroutinefunction(handler):
                return protocol.reply(
                    request.message, awaited(handler(request), request.connection), request.meta
                )
            if spec.atomic:
                using = router.db_for_write(self.get_model())
                # Encoded before the commit: a reply that cannot be sent undoes the event.
                with transaction.atomic(using=using):
                    return protocol.reply(request.message, handler(request), request.meta)
            return protocol.reply(request.message, handler(request), request.meta)
        except Exception as exc:
            return self.handle_exception(exc)


def awaited(coroutine: Coroutine[Any, Any, Any], connection: Connection | None) -> Any:
    """Await an ``async def`` event's ``coroutine`` from a worker thread: on the event
    loop of the socket it came on (where its channel layer and Django's async ORM
    live), or, over HTTP, on a loop of asgiref's."""
    loop = getattr(getattr(connection, "consumer", None), "loop", None)
    if loop is None or not loop.is_running():
        return async_to_sync(_on_loop)(coroutine)
    return asyncio.run_coroutine_threadsafe(_on_loop(coroutine), loop).result()


async def _on_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    # Django's async ORM runs on asgiref's shared thread; close its stale connections
    # first, as Channels does before each message it dispatches there.
    await aclose_old_connections()
    return await coroutine
