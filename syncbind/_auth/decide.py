"""May a connection be served this? One answer for a request, a change push and a server push.

Every path asks :func:`authorize` (or :func:`permits`) with a binding made for
the connection's request: a request before its handler (``Lifecycle.initial``),
each subscriber of an evaluated key before its frame (``_live.delivery``), and
each recipient of a server push at delivery (``_live.server_push``). How the
user is read again before that (``USER_REFRESH_INTERVAL``, credential
messages) differs by path; what is decided does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from syncbind.exceptions import AuthenticationFailed, SyncbindError

if TYPE_CHECKING:
    from syncbind._bindings.request import Request
    from syncbind._bindings.surface import Binding

#: No row to decide on: the permission classes alone.
NO_ROW: Final = object()

DESCRIBE: Final = "describe"


def authorize(binding: Binding, request: Request, obj: Any = NO_ROW) -> None:
    """Raise unless ``request``'s connection may be served ``binding``'s action: its
    credentials still hold, the permission classes pass and, for row ``obj``, the
    object permissions. ``describe`` is decided exactly as a ``retrieve`` (with no
    row: there is none to describe)."""
    connection = request.connection
    if connection is not None and not connection.valid:
        raise AuthenticationFailed("Your credentials are no longer valid; connect again.")
    if binding.action == DESCRIBE:
        # What custom permission classes see for a describe: a retrieve with no data.
        binding = type(binding).for_action(request, "retrieve")
        request = binding.request
    binding.check_permissions(request)
    if obj is not NO_ROW:
        binding.check_object_permissions(request, obj)


def permits(binding: Binding, request: Request, obj: Any = NO_ROW) -> bool:
    """:func:`authorize` as a yes or no, for pushes: a refused push sends nothing."""
    try:
        authorize(binding, request, obj)
    except SyncbindError:
        return False
    return True
