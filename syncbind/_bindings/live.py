"""What a binding adds for live subscriptions: the hooks that decide them, and how a
retrieve or a page subscribes before it reads.

A subscription is keyed by what it reads and by the shape of what it is sent
(see :mod:`syncbind._live.keys`): the binding's read is compiled once, with the
subscriber's request, and the same compiled read is executed for the reply and
kept for pushes; the serializer that request chose names the shape. A binding that
reads another way (its own ``get_object()`` or ``get_page()``) says so with
``compiled_reads = False``: its subscriptions are keyed per user and evaluated by
calling that method again (a debug log line on ``syncbind.live`` says so, once per
binding).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from django.core.exceptions import ImproperlyConfigured

from syncbind import _capture as capture
from syncbind._capture.tables import read_tables
from syncbind._live import versions
from syncbind._live.keys import INSTANCE, PAGE, SubscriptionKey
from syncbind._reads import compiler, execution
from syncbind._wire import parameters, protocol
from syncbind._wire.protocol import UNCHANGED_DATA
from syncbind.exceptions import NotFound, ValidationError
from syncbind.settings import api_settings

if TYPE_CHECKING:
    # The parts of a binding call each other's hooks: see syncbind._bindings.surface.
    from syncbind._bindings.surface import Binding
    from syncbind._live.subscriptions import Subscription
else:
    Binding = object


logger = logging.getLogger("syncbind.live")

_logged: set[tuple[type, str]] = set()

#: What ``get_auto_subscribe()`` answers for a read that asks to keep its subscription
#: (``"subscribe": true``): a live view, which no other read evicts.
KEEP: Final = "keep"


def _log_once(binding_class: type[Binding], message: str) -> None:
    if (binding_class, message) not in _logged:
        _logged.add((binding_class, message))
        logger.debug("syncbind: pushes of %s %s", binding_class.get_stream(), message)


class LiveBindingMixin(Binding):
    """Live-subscription policy of a binding (part of ``BindingBase``)."""

    #: retrieve/list/search subscribe (None: the AUTO_SUBSCRIBE setting).
    auto_subscribe: ClassVar[bool | None] = None
    #: What pushed data depends on besides the rows read: "shared" (nothing), "user"
    #: (the subscriber), or None: "shared" when ``get_serializer()``'s output depends on
    #: the row alone (its ``output_per_user`` is False, as syncbind's ModelSerializer's
    #: is), else "user" (a DRF serializer, or any serializer that does not say).
    subscription_scope: ClassVar[str | None] = None
    #: Row subscribers receive saves (False: only deletes).
    post_save_retrieve: ClassVar[bool] = True
    #: Replies and pushes come from the compiled reads (``get_object_read()``,
    #: ``get_page_read()``), shared between subscribers and batched. False: this binding
    #: reads its own way (its own ``get_object()``/``get_page()``), so each subscriber's
    #: push calls that method again, per user. ``manage.py check`` (syncbind.E004) refuses
    #: a binding that overrides either method and leaves this True.
    compiled_reads: ClassVar[bool] = True

    def get_auto_subscribe(self) -> bool | Literal["keep"]:
        """Whether retrieve/list/search subscribe, and how.

        The request's ``"subscribe": true`` answers :data:`KEEP`: the read subscribes
        and its subscription is kept (like a ``subscribe`` event's, never evicted by
        other reads), whatever ``auto_subscribe`` says. ``"subscribe": false`` opts
        out. Without it, ``auto_subscribe``, then the AUTO_SUBSCRIBE setting: True
        makes a subscription the oldest of which may end to make room for newer ones.
        """
        if "subscribe" in self.request.data:
            asked = self.request.data["subscribe"]
            if not isinstance(asked, bool):
                raise ValidationError({"subscribe": ["Must be true or false."]})
            return KEEP if asked else False
        if self.auto_subscribe is not None:
            return self.auto_subscribe
        return bool(api_settings.AUTO_SUBSCRIBE)

    def get_subscription_scope(self) -> Hashable | None:
        """What the pushed data depends on besides the rows it reads; called when a
        subscription is made. None: nothing, so every subscriber whose read is the
        same (same compiled SQL and parameters) shares one evaluation per change.

        Scoping rows needs nothing here: ``get_queryset`` and ``filter_queryset``
        are part of the read. This is for output that depends on who asks, e.g. a
        DRF serializer reading ``request.user`` (return ``("user", user.pk)``, what
        ``subscription_scope = "user"`` does) or the request's language.
        """
        scope = self.subscription_scope
        if scope is None:
            per_user = getattr(self.get_serializer(), "output_per_user", True)
            scope = "user" if per_user else "shared"
        if scope == "shared":
            return None
        if scope == "user":
            return ("user", getattr(self.request.user, "pk", None))
        raise ImproperlyConfigured(
            f"{type(self).__qualname__}.subscription_scope must be 'shared', 'user' or None."
        )

    def get_serializer_identity(self) -> Hashable:
        """The shape of this request's output: the ``identity`` of the serializer
        ``get_serializer()`` chooses for it; called when a subscription is made
        (and when the user is re-read) and before each push is serialized.

        Subscribers share a serialization only when their identities are equal,
        so a binding whose ``get_serializer()`` gives staff more fields pushes
        each user the fields of their own reply. A serializer with no
        ``identity`` is not shared between users.
        """
        serializer = self.get_serializer()
        identity = getattr(serializer, "identity", None)
        if identity is None:
            return ("per-user", type(serializer), getattr(self.request.user, "pk", None))
        return identity

    @classmethod
    def get_compiled_reads(cls) -> bool:
        """Whether replies and pushes come from the compiled reads (see ``compiled_reads``)."""
        return cls.compiled_reads

    def get_subscription_key(
        self, kind: str, pk: Any = None
    ) -> tuple[SubscriptionKey, compiler.Read | None]:
        """The key and compiled read of a subscription to row ``pk`` or to the page
        the request describes. Called when subscribing (and when the user is re-read)."""
        stream = self.get_stream()
        scope = self.get_subscription_scope()
        shape = self.get_serializer_identity()
        if not self.get_compiled_reads():
            _log_once(type(self), "are evaluated per user: compiled_reads is False")
            user = ("per-user", getattr(self.request.user, "pk", None))
            if kind == INSTANCE:
                return SubscriptionKey(stream, INSTANCE, pk, user, scope, shape), None
            data = self.request.data
            params = tuple((name, repr(data.get(name))) for name in parameters.PAGE)
            page_read = (*user, self._page_action(), params)
            return SubscriptionKey(stream, PAGE, None, page_read, scope, shape), None
        read: compiler.Read
        if kind == INSTANCE:
            read = self.get_object_read(pk)
            key = SubscriptionKey(stream, INSTANCE, pk, read.identity, scope, shape)
        else:
            read = self.get_page_read()
            page_read = (self._page_action(), *read.identity)
            key = SubscriptionKey(stream, PAGE, None, page_read, scope, shape)
        if read.unbatchable:
            _log_once(type(self), f"are evaluated one key at a time: {read.unbatchable}")
        return key, read

    def _page_action(self) -> str:
        request = self.request
        return "search" if request.action == "search" or request.data.get("query") else "list"

    @contextmanager
    def subscribing(
        self, kind: str, pk: Any = None, *, event: str | None = None, explicit: bool = False
    ) -> Iterator[tuple[Subscription | None, compiler.Read | None]]:
        """Subscribe the connection for the duration of the first read.

        Subscribing comes before the read, so no change committed meanwhile is
        missed; if the read fails the subscription is dropped (or, when it renewed
        one to the same key, left as it was). Yields
        ``(subscription, read)``; the subscription is None over HTTP.
        """
        request = self.request
        subscriptions = getattr(request.connection, "subscriptions", None)
        if subscriptions is None:
            yield None, None
            return
        # The reader of a captured table runs before the key is compiled: the choices its
        # filters validate are kept against its positions (capture.choices).
        capture.follow(self.get_model())
        key, read = self.get_subscription_key(kind, pk)
        if kind == INSTANCE:
            sub = subscriptions.subscribe(
                key,
                type(self),
                read,
                request.message.event_for("retrieve"),
                request,
                "retrieve",
                delete_event=request.message.event_for("delete"),
                explicit=explicit,
            )
        else:
            action = self._page_action()
            push_event = event or request.message.event_for(action)
            sub = subscriptions.subscribe(
                key, type(self), read, push_event, request, action, explicit=explicit
            )
        subscriptions.hub.reading(sub)
        try:
            yield sub, read
        except BaseException:
            subscriptions.read_failed(sub)
            raise

    def resumed(self, sub: Subscription | None, read: compiler.Read | None) -> bool:
        """Say in the reply which version of the data it reflects, and, for a client
        resuming with the version it holds (``"version"`` in its request), whether what
        the subscription reads changed since: True when it did not (the reply then
        carries no data, and no row is read)."""
        if sub is None:
            return False  # no subscription (HTTP): no version to give
        request = self.request
        model = self.get_model()
        position = capture.version_for(model)  # before the read: the read reflects it
        version = versions.sign(position, request.user, sub.key)
        if version is not None:
            request.meta["version"] = version
        held = request.message.version
        if held is None:
            return False
        verdict = protocol.EXPIRED
        # Only a version this user was given for this very key can vouch for the data.
        held_position = versions.position_of(held, request.user, sub.key)
        if position is not None and held_position is not None:
            verdict = capture.resume(model, read_tables(model, read), held_position)
        request.meta["resume"] = verdict
        if verdict != protocol.UNCHANGED:
            return False
        sub.resumed()
        return True

    def live_object(self, pk: Any, explicit: bool = False) -> tuple[Any, Any]:
        """Subscribe to row ``pk``, then read it: ``(instance, serialized row)``.
        ``explicit``: kept (a subscribe event's, or a read's with ``"subscribe": true``),
        not a read's by itself (the oldest of which may end). A client resuming a row
        that did not change gets ``(None, UNCHANGED_DATA)``."""
        with self.subscribing(INSTANCE, pk, explicit=explicit) as (sub, read):
            if self.resumed(sub, read):
                return None, UNCHANGED_DATA
            if read is None:
                obj = self.get_object()
            else:
                obj = execution.execute_one(read)
                if obj is None:
                    raise NotFound()
                self.check_object_permissions(self.request, obj)
            data = self.get_serializer().serialize(obj)
            if sub is not None:
                sub.sent(data)
        return obj, data

    def live_page(self, force: bool = False) -> dict[str, Any]:
        """The page, subscribing the connection to it first (list, search, subscribe;
        ``force``: a subscribe event's, kept rather than the oldest to go)."""
        subscribing = KEEP if force else self.get_auto_subscribe()
        if not subscribing:
            return self.get_page()
        with self.subscribing(PAGE, explicit=subscribing == KEEP) as (sub, read):
            if self.resumed(sub, read):
                return UNCHANGED_DATA  # type: ignore[return-value]
            if read is None:
                data = self.get_page()
                pks: Any = ()
            else:
                assert isinstance(read, compiler.PageRead)  # what get_page_read() compiles
                result = execution.execute_one(read)
                data = self.page_data(read, result)
                pks = [obj.pk for obj in result.rows]
            if sub is not None:
                sub.sent(data, pks)
        return data
