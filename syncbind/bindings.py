"""Bindings: the policy of one model's stream, DRF ``GenericAPIView`` style.

Policies are class attributes with a matching ``get_*()`` hook, and the hook is
the one way in. :class:`SyncBinding` is the base plus one mixin per action.
A binding instance is made per message, so ``self.request`` and
``self.action`` are there for the hooks.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import connections, models

from . import filters, pagination, reads
from .decorators import MARK, EventSpec
from .deprecation import accepts_legacy_request, adapt_legacy_attributes, adapt_legacy_hooks
from .exceptions import NotFound, ValidationError
from .lifecycle import Lifecycle
from .live.binding import LiveBindingMixin, default_read
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
from .permissions import READ_ACTIONS, BasePermission
from .serializers import ModelSerializer
from .settings import api_settings


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


class BindingBase(Lifecycle, LiveBindingMixin):
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

    filterset_fields: ClassVar[Any] = None
    filterset_class: ClassVar[Any] = None
    search_fields: ClassVar[Any] = ()
    ordering_fields: ClassVar[Any] = ()
    ordering: ClassVar[Any] = None

    permission_classes: ClassVar[Any] = None
    page_size: ClassVar[int | None] = None

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
        adapt_legacy_attributes(cls)
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

    @default_read
    @accepts_legacy_request(0)
    def get_object(self) -> models.Model:
        """The row named by ``data["id"]`` within get_queryset, object permissions checked."""
        request = self.request
        queryset = self.get_serializer().optimize(self.get_queryset())
        pk = self.get_lookup_value()
        if self.action not in READ_ACTIONS:
            queryset = lock_row(queryset, pk)
        try:
            obj = queryset.get(pk=pk)
        except (queryset.model.DoesNotExist, OverflowError):
            raise NotFound() from None
        self.check_object_permissions(request, obj)
        return obj

    def get_object_read(self, pk: Any) -> reads.ObjectRead:
        """The compiled read of row ``pk`` (what ``get_object`` reads, for subscriptions)."""
        return reads.object_read(self.get_serializer().optimize(self._queryset()), pk)

    def _queryset(self) -> models.QuerySet:
        queryset = self.get_queryset()
        if not isinstance(queryset, models.QuerySet):
            raise TypeError(
                f"{type(self).__qualname__}.get_queryset() must return a QuerySet, "
                f"not {type(queryset).__name__}."
            )
        return queryset

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

    def get_related_queryset(self, field: Any, queryset: models.QuerySet) -> models.QuerySet:
        """The rows a relation may name in this request's writes and filters.

        Called for every foreign key and many-to-many field a write sets (and every
        filter on a relation) with the field and the rows it would accept. By
        default: those rows narrowed to what the related model's own binding's
        ``get_queryset()`` gives this request's user, so another user's project
        is refused exactly like a project that does not exist; ``queryset`` as
        it is when no binding serves that model. Override to choose otherwise.
        """
        from .registry import registry

        binding_class = registry.for_model(queryset.model)
        if binding_class is None:
            return queryset
        related = binding_class(request=self.request, action="retrieve")
        return queryset.filter(pk__in=related.get_queryset().values("pk"))

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
        return {
            "success": True,
            "id": serializer.serialize_pk(instance.pk),
            "row": serializer.serialize(instance),
        }

    # -- lists ------------------------------------------------------------------
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

    @accepts_legacy_request(1)
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

    def get_page_read(self) -> reads.PageRead:
        """The compiled read of the page ``request.data`` describes."""
        params = pagination.parse_page_params(
            self.request.data, self.get_page_size(), api_settings.MAX_PAGE_SIZE
        )
        queryset = self.get_serializer().optimize(self.filter_queryset(self._queryset()))
        return reads.page_read(queryset, params.page, params.limit)

    @default_read
    @accepts_legacy_request(0)
    def get_page(self) -> dict[str, Any]:
        """The page described by ``request.data``: ``{"page", "limit", "count", "rows"}``."""
        read = self.get_page_read()
        return self.page_data(read, reads.execute_one(read))

    @default_read
    def page_data(
        self, read: reads.PageRead, result: reads.PageResult, serialize_many: Any = None
    ) -> dict[str, Any]:
        """The reply data of a page read (for requests and pushes alike)."""
        rows = (serialize_many or self.get_serializer().serialize_many)(result.rows)
        return {"page": read.page, "limit": read.limit, "count": result.count, "rows": rows}

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
