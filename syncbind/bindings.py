"""Bindings: the policy of one model's stream, as DRF's ``GenericAPIView`` is a view's.

Policies are class attributes with a matching ``get_*()`` hook, and the hook is
the one way in: the rows (``get_queryset``, ``get_object``), the output
(``get_serializer``), lists (filters, search, ordering, pages) and live
subscriptions (what a subscription is keyed by, how a read subscribes before it
reads). :class:`BindingBase` holds them over :class:`~._bindings.lifecycle.Lifecycle`
(``dispatch()`` and the permission checks); :class:`SyncBinding` adds one mixin per
action (:mod:`syncbind.mixins`). A binding instance is made per message, so
``self.request`` and ``self.action`` are there for the hooks.

A subscription is keyed by what it reads and by the shape of what it is sent
(:mod:`syncbind._live.keys`): the binding's read is compiled once, with the
subscriber's request, and the same compiled read is executed for the reply and
kept for pushes. A binding that reads another way (its own ``get_object()`` or
``get_page()``) says so with ``compiled_reads = False``: its subscriptions are
keyed per user and evaluated by calling that method again.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models, router

from syncbind import _capture as capture
from syncbind import filters, pagination
from syncbind._bindings.events import MARK, EventSpec
from syncbind._bindings.lifecycle import Lifecycle
from syncbind._bindings.registry import registry
from syncbind._bindings.request import KEEP as KEEP  # public: syncbind.KEEP
from syncbind._capture.tables import read_tables
from syncbind._live import versions
from syncbind._live.keys import INSTANCE, PAGE, SubscriptionKey
from syncbind._reads import compiler, execution
from syncbind._wire import parameters, protocol, values
from syncbind._wire.protocol import UNCHANGED_DATA, Message, join_event
from syncbind.drf import DRFSerializerAdapter
from syncbind.exceptions import NotFound, ValidationError
from syncbind.mixins import (
    CreateMixin,
    DeleteMixin,
    DescribeMixin,
    ListMixin,
    RetrieveMixin,
    SaveMixin,
    SearchMixin,
    SubscribeMixin,
    UpdateMixin,
)
from syncbind.permissions import READ_ACTIONS
from syncbind.serializers import ModelSerializer
from syncbind.settings import api_settings

if TYPE_CHECKING:
    from syncbind._bindings.request import Request
    from syncbind._live.subscriptions import Subscription

logger = logging.getLogger("syncbind.live")

_logged: set[tuple[type, str]] = set()


def _log_once(binding_class: type[BindingBase], message: str) -> None:
    if (binding_class, message) not in _logged:
        _logged.add((binding_class, message))
        logger.debug("syncbind: pushes of %s %s", binding_class.get_stream(), message)


def lock_row(queryset: models.QuerySet, pk: Any) -> models.QuerySet:
    """``queryset``, reading row ``pk`` locked until the transaction ends (writes).

    Two writes of one row then happen one after the other: the second reads
    what the first committed (no lost update, and a row deleted meanwhile is
    ``not_found`` rather than written back). Databases without row locks
    (SQLite serialises its writers) and reads outside a transaction are left
    as they are.
    """
    connection = connections[queryset.db]
    if not (connection.features.has_select_for_update and connection.in_atomic_block):
        return queryset
    if queryset.query.distinct or queryset.query.combinator:
        # FOR UPDATE cannot apply to these: lock the row on its own first.
        list(queryset.model._base_manager.select_for_update().filter(pk=pk).values_list("pk"))
        return queryset
    of = ("self",) if connection.features.has_select_for_update_of else ()
    return queryset.select_for_update(of=of)


class BindingBase(DescribeMixin, Lifecycle):
    """The base of every binding: its rows, output, lists and live subscriptions, over
    the lifecycle and permission checks of :class:`~._bindings.lifecycle.Lifecycle`,
    and the ``describe`` event every binding answers.

    Subclasses set ``model`` and one of ``fields`` / ``exclude`` /
    ``serializer_class``; every other policy has a default.
    """

    model: ClassVar[type[models.Model] | None] = None
    queryset: ClassVar[models.QuerySet | None] = None
    stream: ClassVar[str | None] = None

    fields: ClassVar[Any] = None
    exclude: ClassVar[Any] = None
    read_only_fields: ClassVar[Any] = ()
    serializer_class: ClassVar[Any] = None
    form_class: ClassVar[Any] = None

    # -- lists ----------------------------------------------------------------------

    filterset_fields: ClassVar[Any] = None
    filterset_class: ClassVar[Any] = None
    search_fields: ClassVar[Any] = ()
    ordering_fields: ClassVar[Any] = ()
    ordering: ClassVar[Any] = None
    page_size: ClassVar[int | None] = None
    _filterset: ClassVar[Any] = None

    # -- live subscriptions -----------------------------------------------------------

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

    #: ``{"restock": {"data": {JSON Schema}, "reply": {JSON Schema}}}``: the shapes of
    #: custom events, which the binding's code alone knows (any object and any reply
    #: otherwise). ``{"$ref": "#/schemas/row"}`` names the stream's row, and so on.
    event_schemas: ClassVar[dict[str, dict[str, Any]]] = {}

    # Filled by __init_subclass__: event name -> (method name, spec).
    events: ClassVar[dict[str, tuple[str, EventSpec]]] = {}
    _serializer: ClassVar[Any] = None

    def __init__(self, request: Any = None, action: str | None = None) -> None:
        self.request = request
        self.action = action

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        events: dict[str, tuple[str, EventSpec]] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                spec = getattr(value, MARK, None)
                if isinstance(spec, EventSpec):
                    events[spec.name] = (attr, spec)
        cls.events = events
        # Per-class caches, reset so a subclass never reuses its parent's.
        cls._serializer = None
        cls._filterset = None

    # -- identity -------------------------------------------------------------
    @classmethod
    def get_model(cls) -> type[models.Model]:
        if cls.model is not None:
            return cls.model
        if cls.queryset is not None:
            return cls.queryset.model
        raise TypeError(f"{cls.__name__} sets neither model nor queryset.")

    @classmethod
    def get_stream(cls) -> str:
        """The stream name: ``stream`` or ``"<app_label>.<ObjectName>"``."""
        if cls.stream:
            return cls.stream
        opts = cls.get_model()._meta
        return f"{opts.app_label}.{opts.object_name}"

    @classmethod
    def get_event(cls, name: str) -> tuple[str, EventSpec] | None:
        return cls.events.get(name)

    @classmethod
    def for_action(cls, request: Request, action: str) -> Self:
        """This binding for ``action`` of its stream, with no data, on ``request``'s
        connection and user: what its permission classes and scoping hooks decide for
        that action (a describe decided as a retrieve, a related stream's rows)."""
        stream = cls.get_stream()
        tag = request.message.tag if request.message.stream == stream else None
        message = Message(event=join_event(stream, action, tag), stream=stream, action=action)
        return cls(request=request.with_message(message), action=action)

    # -- data -------------------------------------------------------------------
    def get_queryset(self) -> models.QuerySet:
        """The rows ``self.request.user`` may read; called for every read, write and push.

        Override to scope by user
        (``return super().get_queryset().filter(owner=self.request.user)``).
        A row outside it is ``not_found``, and pushes apply it per subscriber.
        """
        if self.queryset is not None:
            return self.queryset.all()
        return self.get_model()._default_manager.all()

    def get_lookup_value(self) -> Any:
        """The primary key named by ``request.data["id"]``, checked by the pk field."""
        request = self.request
        if "id" not in request.data or request.data["id"] is None:
            raise ValidationError({"id": ["This field is required."]})
        value = request.data["id"]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValidationError({"id": ["Invalid id."]})
        model = self.get_model()
        try:
            pk = model._meta.pk.to_python(value)
        except Exception:
            raise ValidationError({"id": ["Invalid id."]}) from None
        ops = connections[router.db_for_read(model)].ops
        problem = values.out_of_range(model._meta.pk, [pk], ops)
        if problem:
            raise ValidationError({"id": [problem]})
        return pk

    def get_object(self) -> models.Model:
        """The row named by ``data["id"]`` within get_queryset, object permissions checked."""
        request = self.request
        queryset = self.read_queryset(self.get_queryset())
        pk = self.get_lookup_value()
        if self.action not in READ_ACTIONS:
            queryset = lock_row(queryset, pk)
        try:
            obj = queryset.get(pk=pk)
        except (queryset.model.DoesNotExist, OverflowError):
            raise NotFound() from None
        self.check_object_permissions(request, obj)
        return obj

    def get_object_read(self, pk: Any) -> compiler.ObjectRead:
        """The compiled read of row ``pk`` (what ``get_object`` reads, for subscriptions)."""
        return compiler.object_read(self.read_queryset(self._queryset()), pk)

    def read_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        """``queryset`` as reads read it: with the joins and prefetches the output needs,
        and the related rows it shows marked for this user (``get_related_queryset``)."""
        serializer = self.get_serializer()
        queryset = serializer.optimize(queryset)
        if isinstance(serializer, ModelSerializer):
            queryset = serializer.mark_related(queryset, self.get_related_queryset)
        return queryset

    def _queryset(self) -> models.QuerySet:
        queryset = self.get_queryset()
        if not isinstance(queryset, models.QuerySet):
            raise TypeError(
                f"{type(self).__qualname__}.get_queryset() must return a QuerySet, "
                f"not {type(queryset).__name__}."
            )
        return queryset

    def get_serializer(self) -> ModelSerializer | DRFSerializerAdapter:
        """The serializer: a DRF ``serializer_class`` adapter (made per binding, as it
        carries the request in its context), or the native serializer built from
        ``fields``/``exclude``/``read_only_fields`` once per class and shared."""
        if self.serializer_class is not None:
            return DRFSerializerAdapter(self.serializer_class, self)
        cls = type(self)
        if cls._serializer is None:
            cls._serializer = ModelSerializer(
                self.get_model(),
                fields=self.fields,
                exclude=self.exclude,
                read_only_fields=self.read_only_fields,
                **({"form_class": self.form_class} if self.form_class else {}),
            )
        return cls._serializer

    def get_related_queryset(self, field: Any, queryset: models.QuerySet) -> models.QuerySet:
        """The rows a relation may name in this request's writes and filters, and show in
        its related output fields.

        Called with the field (None for a filter) and the rows it would accept, for
        every foreign key and many-to-many field a write sets, every filter on a
        relation, and every foreign key a related output field (``"project__name"``)
        follows. By default: those rows narrowed to what the related model's own
        binding lists to this request's user (:meth:`related_rows`), so another
        user's project is refused exactly like a project that does not exist;
        ``queryset`` itself when no binding serves that model. Override to choose
        otherwise (returning ``queryset`` itself narrows nothing).
        """
        binding_class = registry.for_model(queryset.model)
        if binding_class is None:
            return queryset
        return queryset.filter(pk__in=self.related_rows(binding_class).values("pk"))

    def related_rows(self, binding_class: type[BindingBase]) -> models.QuerySet:
        """The rows of ``binding_class``'s stream this request's user may read: through
        every hook that scopes them, ``get_queryset()`` then ``filter_queryset()``, as
        for a ``list`` of that stream carrying no parameters (every page of it)."""
        related = binding_class.for_action(self.request, "list")
        return related.filter_queryset(related._queryset())

    # -- lists --------------------------------------------------------------------
    def get_filterset_class(self):
        """``filterset_class``, or a FilterSet built from ``filterset_fields``, or None."""
        if self.filterset_class is not None:
            return self.filterset_class
        cls = type(self)
        if cls._filterset is None and self.filterset_fields:
            cls._filterset = filters.build_filterset_class(self.get_model(), self.filterset_fields)
        return cls._filterset

    def get_search_fields(self) -> list[str]:
        return list(self.search_fields)

    def get_ordering_fields(self) -> list[str]:
        return list(self.ordering_fields)

    def get_default_ordering(self) -> list[str]:
        ordering = self.ordering or self.get_model()._meta.ordering or ["pk"]
        return [ordering] if isinstance(ordering, str) else list(ordering)

    def filter_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        """Apply the request's ``filters``, ``query`` (search only) and ``ordering``."""
        request = self.request
        data = request.data
        queryset = filters.apply_filters(
            self.get_filterset_class(),
            queryset,
            data.get("filters"),
            request,
            related=lambda choices: self.get_related_queryset(None, choices),
        )
        if request.action == "search" or data.get("query"):
            queryset = filters.apply_search(queryset, self.get_search_fields(), data.get("query"))
        terms = filters.parse_ordering(data.get("ordering"), self.get_ordering_fields())
        return filters.apply_ordering(queryset, terms or self.get_default_ordering())

    def get_page_size(self) -> int:
        return self.page_size or api_settings.DEFAULT_PAGE_SIZE

    def get_page_read(self) -> compiler.PageRead:
        """The compiled read of the page ``request.data`` describes."""
        parameters.check_parameters(self.request.data, parameters.LIST)
        params = pagination.parse_page_params(
            self.request.data, self.get_page_size(), api_settings.MAX_PAGE_SIZE
        )
        queryset = self.read_queryset(self.filter_queryset(self._queryset()))
        return compiler.page_read(queryset, params.page, params.limit)

    def get_page(self) -> dict[str, Any]:
        """The page described by ``request.data``: ``{"page", "limit", "count", "rows"}``."""
        read = self.get_page_read()
        return self.page_data(read, execution.execute_one(read))

    def page_data(
        self, read: compiler.PageRead, result: compiler.PageResult, serialize_many: Any = None
    ) -> dict[str, Any]:
        """The reply data of a page read (for requests and pushes alike)."""
        serialized = (serialize_many or self.get_serializer().serialize_many)(result.rows)
        return {"page": read.page, "limit": read.limit, "count": result.count, "rows": serialized}

    # -- live subscriptions -------------------------------------------------------
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

    # -- descriptions ---------------------------------------------------------------
    def get_event_schemas(self) -> dict[str, dict[str, Any]]:
        return dict(self.event_schemas)

    # -- writes ---------------------------------------------------------------------
    def validate(self, data: dict[str, Any], instance: models.Model | None = None) -> Any:
        """Validate a write of ``data`` (a create when ``instance`` is None) with the
        serializer; related values and uniqueness are checked as this user sees them."""
        return self.get_serializer().validate(
            data,
            instance=instance,
            partial=instance is not None,
            related=self.get_related_queryset,
            visible=self.get_queryset(),
        )

    def write_result(self, instance: models.Model) -> dict[str, Any]:
        """The reply of create/update/save."""
        serializer = self.get_serializer()
        if isinstance(serializer, ModelSerializer):
            # Its relations may have changed since it was read: shown as a read would.
            serializer.mark_row(instance, self.get_related_queryset)
        return {
            "success": True,
            "id": serializer.serialize_pk(instance.pk),
            "row": serializer.serialize(instance),
        }


class SyncBinding(
    RetrieveMixin,
    ListMixin,
    SearchMixin,
    CreateMixin,
    UpdateMixin,
    SaveMixin,
    DeleteMixin,
    SubscribeMixin,
    BindingBase,
):
    """A model bound to a stream with every event: retrieve, list, search,
    create, update, save, delete, subscribe, unsubscribe, plus the binding's
    own ``@event`` methods."""


class ReadOnlyBinding(RetrieveMixin, ListMixin, SearchMixin, SubscribeMixin, BindingBase):
    """retrieve, list, search, subscribe and unsubscribe only."""
