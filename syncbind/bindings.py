"""Bindings: the policy of one model's stream, DRF ``GenericAPIView`` style.

Policies are class attributes with a matching ``get_*()`` hook, and the hook is
the one way in. :class:`SyncBinding` is the base plus one mixin per action.
A binding instance is made per message, so ``self.request`` and
``self.action`` are there for the hooks.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, ClassVar

from django.db import models

from . import filters, pagination
from .decorators import MARK, EventSpec
from .deprecation import accepts_legacy_request, adapt_legacy_hooks
from .exceptions import NotFound, ValidationError
from .live import keys
from .mixins import (
    CreateMixin,
    DeleteMixin,
    ListMixin,
    RetrieveMixin,
    SaveMixin,
    SearchMixin,
    SubscribeMixin,
    UpdateMixin,
)
from .permissions import BasePermission, overrides_object_permission
from .serializers import ModelSerializer
from .settings import api_settings


class BindingBase:
    """The base of every binding: queryset, object lookup, serializer, permissions.

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

    filter_fields: ClassVar[Any] = None
    filterset_class: ClassVar[Any] = None
    search_fields: ClassVar[Any] = ()
    ordering_fields: ClassVar[Any] = ()
    ordering: ClassVar[Any] = None

    permission_classes: ClassVar[Any] = None
    page_size: ClassVar[int | None] = None

    post_save_retrieve: ClassVar[bool] = True
    auto_subscribe: ClassVar[bool | None] = None

    # Filled by __init_subclass__: event name -> (method name, spec).
    events: ClassVar[dict[str, tuple[str, EventSpec]]] = {}
    _serializer: ClassVar[Any] = None
    _filterset: ClassVar[Any] = None

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
        adapt_legacy_hooks(cls)
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

    # -- data -------------------------------------------------------------------
    @accepts_legacy_request(0)
    def get_queryset(self) -> models.QuerySet:
        """The rows ``self.request.user`` may read; called for every read, write and push.

        Override to scope by user
        (``return super().get_queryset().filter(owner=self.request.user)``).
        A row outside it is ``not_found``, and pushes apply it per subscriber.
        """
        if self.queryset is not None:
            return self.queryset.all()
        return self.get_model()._default_manager.all()

    @accepts_legacy_request(0)
    def get_lookup_value(self) -> Any:
        """The primary key named by ``request.data["id"]``, checked by the pk field."""
        request = self.request
        if "id" not in request.data or request.data["id"] is None:
            raise ValidationError({"id": ["This field is required."]})
        value = request.data["id"]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValidationError({"id": ["Invalid id."]})
        try:
            return self.get_model()._meta.pk.to_python(value)
        except Exception:
            raise ValidationError({"id": ["Invalid id."]}) from None

    @accepts_legacy_request(0)
    def get_object(self) -> models.Model:
        """The row named by ``data["id"]`` within get_queryset, object permissions checked."""
        request = self.request
        pk = self.get_lookup_value()
        queryset = self.get_serializer().optimize(self.get_queryset())
        try:
            obj = queryset.get(pk=pk)
        except (queryset.model.DoesNotExist, OverflowError):
            raise NotFound() from None
        self.check_object_permissions(request, obj)
        return obj

    def get_serializer(self) -> ModelSerializer:
        """The serializer: a DRF ``serializer_class`` adapter (made per binding, as it
        carries the request in its context), or the native serializer built from
        ``fields``/``exclude``/``read_only_fields`` once per class and shared."""
        if self.serializer_class is not None:
            from .drf import DRFSerializerAdapter

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

    def write_result(self, instance: models.Model) -> dict[str, Any]:
        """The reply of create/update/save."""
        serializer = self.get_serializer()
        return {
            "success": True,
            "id": serializer.serialize_pk(instance.pk),
            "row": serializer.serialize(instance),
        }

    # -- lists ------------------------------------------------------------------
    def get_filterset_class(self):
        """``filterset_class``, or a FilterSet built from ``filter_fields``, or None."""
        if self.filterset_class is not None:
            return self.filterset_class
        cls = type(self)
        if cls._filterset is None and self.filter_fields:
            cls._filterset = filters.build_filterset_class(self.get_model(), self.filter_fields)
        return cls._filterset

    def get_search_fields(self) -> list[str]:
        return list(self.search_fields)

    def get_ordering_fields(self) -> list[str]:
        return list(self.ordering_fields)

    def get_default_ordering(self) -> list[str]:
        ordering = self.ordering or self.get_model()._meta.ordering or ["pk"]
        return [ordering] if isinstance(ordering, str) else list(ordering)

    @accepts_legacy_request(1)
    def filter_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        """Apply the request's ``filters``, ``query`` (search only) and ``ordering``."""
        request = self.request
        data = request.data
        queryset = filters.apply_filters(
            self.get_filterset_class(), queryset, data.get("filters"), request
        )
        if request.action == "search" or data.get("query"):
            queryset = filters.apply_search(queryset, self.get_search_fields(), data.get("query"))
        terms = filters.parse_ordering(data.get("ordering"), self.get_ordering_fields())
        return filters.apply_ordering(queryset, terms or self.get_default_ordering())

    def get_page_size(self) -> int:
        return self.page_size or api_settings.DEFAULT_PAGE_SIZE

    def get_live_page(self, request: Any, force: bool = False) -> dict[str, Any]:
        """The page, subscribing the connection to it first (list, search, subscribe)."""
        if not (force or self.get_auto_subscribe()):
            return self.get_page()
        with self.subscribing(request, page=True) as sub:
            data = self.get_page()
            if sub is not None:
                sub.sent(data)
        return data

    @accepts_legacy_request(0)
    def get_page(self) -> dict[str, Any]:
        """The page described by ``request.data``: ``{"page", "limit", "count", "rows"}``."""
        request = self.request
        params = pagination.parse_page_params(
            request.data, self.get_page_size(), api_settings.MAX_PAGE_SIZE
        )
        serializer = self.get_serializer()
        queryset = serializer.optimize(self.filter_queryset(self.get_queryset()))
        count, rows = pagination.paginate(queryset, params)
        return {
            "page": params.page,
            "limit": params.limit,
            "count": count,
            "rows": serializer.serialize_many(rows),
        }

    # -- permissions --------------------------------------------------------------
    def get_permission_classes(self) -> tuple:
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
            if not isinstance(permission, BasePermission):
                from .drf import DRFPermission

                permission = DRFPermission(permission)
            permissions.append(permission)
        return permissions

    def check_permissions(self, request: Any) -> None:
        """Called before every event; raises not_authenticated / permission_denied."""
        for permission in self.get_permissions():
            if not permission.has_permission(request, self):
                self.permission_denied(request, permission)

    def check_object_permissions(self, request: Any, obj: models.Model) -> None:
        """Called by get_object for every event that touches a row."""
        for permission in self.get_permissions():
            if not permission.has_object_permission(request, self, obj):
                self.permission_denied(request, permission)

    def permission_denied(self, request: Any, permission: Any = None) -> None:
        from .exceptions import NotAuthenticated, PermissionDenied

        if not (request.user and request.user.is_authenticated):
            raise NotAuthenticated()
        raise PermissionDenied(getattr(permission, "message", None))

    # -- live subscriptions ----------------------------------------------------------
    @accepts_legacy_request(0)
    def get_auto_subscribe(self) -> bool:
        """Whether retrieve/list/search subscribe: the request's ``"subscribe": false``
        opts out, then ``auto_subscribe``, then the AUTO_SUBSCRIBE setting."""
        if self.request.data.get("subscribe") is False:
            return False
        if self.auto_subscribe is not None:
            return self.auto_subscribe
        return api_settings.AUTO_SUBSCRIBE

    @accepts_legacy_request(0)
    def get_subscription_scope(self) -> Any:
        """Who shares evaluations of this request's subscription.

        None (the default when the binding keeps the stock ``get_queryset``, has
        no DRF ``serializer_class`` — whose output may read ``request.user`` — and
        no permission checks single objects) means every subscriber of the same
        row or page sees the same data, so one evaluation per change serves them
        all. Otherwise the scope is the user. Override when you know better, e.g.
        return ``request.user.groups...`` for a queryset that depends on a group.
        """
        if (
            type(self).get_queryset is not BindingBase.get_queryset
            or self.serializer_class is not None
            or any(overrides_object_permission(permission) for permission in self.get_permissions())
        ):
            return ("user", getattr(self.request.user, "pk", None))
        return None

    @contextmanager
    def subscribing(
        self, request: Any, pk: Any = None, *, page: bool = False, event: str | None = None
    ):
        """Subscribe ``request``'s connection, for the duration of the first read.

        Subscribing happens before the read, so no change committed meanwhile is
        missed; if the read fails the subscription is dropped. Yields the
        subscription (call ``sent(data)`` with the reply data) or None when the
        transport has no live subscriptions (HTTP).
        """
        subscriptions = getattr(request.connection, "subscriptions", None)
        if subscriptions is None:
            yield None
            return
        stream = self.get_stream()
        scope = self.get_subscription_scope()
        if page:
            action = "search" if request.action == "search" or request.data.get("query") else "list"
            key = keys.page_key(stream, request.data, action, scope)
            sub = subscriptions.subscribe(key, event or request.message.event_for(action), request)
        else:
            key = keys.instance_key(stream, pk, scope)
            sub = subscriptions.subscribe(
                key,
                request.message.event_for("retrieve"),
                request,
                delete_event=request.message.event_for("delete"),
            )
        try:
            yield sub
        except BaseException:
            subscriptions.discard(sub)
            raise


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
