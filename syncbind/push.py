"""Server push: send an event from any code to connections, in every process.

::

    from syncbind import push

    push.to_user(user, "shop.Order.shipped", {"id": order.pk})       # all of a user's sockets
    push.to_group("team.7", "chat.Message.posted", {"text": "hi"})  # sockets that joined it
    push.to_stream("shop.Product", "shop.Product.restocked", {"id": 3})  # its subscribers
    await push.ato_user(user, ...)                                   # from async code

The frame is a push like any other, ``{"event": ..., "data": ...}`` without a
``request_id``. From sync code it is sent after the current transaction
commits (at once outside one; ``on_commit=False`` to send at once anyway).
One message goes to every process (the ``syncbind.connections`` group), and
each process's hub hands it to its own connections.

Connections join named groups with :meth:`~syncbind._auth.connection.Connection.join`
(in an ``@event`` method, after checking the user may) or from a consumer's
``get_push_groups()``.

**Who receives it** is decided again at delivery, for each recipient (see
:mod:`syncbind._live.server_push`): a connection whose credentials ended since it was
last checked (user deleted or deactivated, session gone, token revoked) is
closed instead; when ``event`` names a bound stream (``"shop.Product.restocked"``)
the connection must pass that binding's permission classes for that action;
and a ``to_stream`` push whose data is about a row (a dict with an ``"id"``)
reaches only the subscribers who may read that row. Other event names
(``"chat.posted"`` with no such stream) are sent as they are: choose the group
or user with care. The built-in actions (``retrieve``, ``list``, ``delete``...)
are refused here: their frames mean a row or a page the client reads as such.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction

from syncbind._bindings.registry import registry
from syncbind._bindings.request import BUILTIN_ACTIONS
from syncbind._live import messages
from syncbind._live.changes import send
from syncbind._live.credentials import user_key
from syncbind._live.keys import CONNECTIONS_GROUP
from syncbind._wire import protocol

__all__ = ["ato_group", "ato_stream", "ato_user", "to_group", "to_stream", "to_user"]


def _stream_name(stream: Any) -> str:
    if isinstance(stream, str):
        return stream

    binding = registry.for_model(stream)
    if binding is None:
        raise ValueError(f"No binding serves {stream!r}.")
    return binding.get_stream()


def _check_event(event: str) -> None:
    """Refuse, at the call, a malformed event name or a built-in action's."""
    _stream, action, _tag = protocol.parse_event(event)  # refused here, not at every hub
    if action in BUILTIN_ACTIONS:
        raise ValueError(
            f"{event!r} names the built-in action {action!r}: a push of it would look like "
            "a row or a page the client subscribed to. Name the event otherwise."
        )


def _row_id(data: Any) -> Any:
    """The primary key a push's ``data`` is about (its ``"id"``), or None."""
    if not isinstance(data, dict) or "id" not in data:
        return None
    pk = data["id"]
    if pk is None:
        raise ValueError('data["id"] is None: a push about a row names its primary key.')
    if isinstance(pk, bool) or not isinstance(pk, int | str):
        # Sent as the hub reads it back, through the binding's primary-key field.
        pk = str(pk)
    return pk


def _message(target: list[Any], event: str, data: Any) -> dict[str, Any]:
    _check_event(event)
    return messages.push(target, event, protocol.encode(protocol.push(event, data)))


def _send(message: dict[str, Any], on_commit: bool, using: str | None) -> None:
    def deliver() -> None:
        send(CONNECTIONS_GROUP, message, f"a push of {message['event']}")

    if on_commit:
        transaction.on_commit(deliver, using=using)
    else:
        deliver()


def to_user(
    user: Any, event: str, data: Any = None, *, on_commit: bool = True, using: str | None = None
) -> None:
    """Send ``event`` to every open connection of ``user`` (a user or its primary key)."""
    _send(_message(["user", user_key(user)], event, data), on_commit, using)


def to_group(
    name: str, event: str, data: Any = None, *, on_commit: bool = True, using: str | None = None
) -> None:
    """Send ``event`` to every connection that joined the group ``name``."""
    _send(_message(["group", str(name)], event, data), on_commit, using)


def to_stream(
    stream: Any, event: str, data: Any = None, *, on_commit: bool = True, using: str | None = None
) -> None:
    """Send ``event`` to every connection subscribed to something on ``stream`` (a
    stream name, or a model a binding serves). When ``data`` is about a row (a dict
    with an ``"id"``), only to those of them who may read that row."""
    message = _message(["stream", _stream_name(stream)], event, data)
    message["row"] = _row_id(data)
    _send(message, on_commit, using)


async def ato_user(user: Any, event: str, data: Any = None) -> None:
    """``to_user`` from async code (sent at once)."""
    await sync_to_async(to_user, thread_sensitive=False)(user, event, data, on_commit=False)


async def ato_group(name: str, event: str, data: Any = None) -> None:
    """``to_group`` from async code (sent at once)."""
    await sync_to_async(to_group, thread_sensitive=False)(name, event, data, on_commit=False)


async def ato_stream(stream: Any, event: str, data: Any = None) -> None:
    """``to_stream`` from async code (sent at once)."""
    await sync_to_async(to_stream, thread_sensitive=False)(stream, event, data, on_commit=False)
