"""Bindings: the policy of one model's stream, DRF ``GenericAPIView`` style.

Policies are class attributes with a matching ``get_*()`` hook, and the hook is
the one way in. :class:`SyncBinding` is the base plus one mixin per action.
A binding instance is made per message, so ``self.request`` and
``self.action`` are there for the hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.db import connections, models, router

from syncbind._bindings.events import MARK, EventSpec
from syncbind._bindings.lifecycle import Lifecycle
from syncbind._bindings.listing import ListingMixin
from syncbind._bindings.live import KEEP as KEEP  # public: syncbind.KEEP
from syncbind._bindings.live import LiveBindingMixin
from syncbind._bindings.registry import registry
from syncbind._reads import compiler
from syncbind._wire import values
from syncbind._wire.protocol import Message, join_event
from syncbind.drf import DRFSerializerAdapter
from syncbind.exceptions import NotFound, ValidationError
from syncbind.mixins import (
    CreateMixin,
    DeleteMixin,
    ListMixin,
    RetrieveMixin,
    SaveMixin,
    SearchMixin,
    SubscribeMixin,
    UpdateMixin,
)
from syncbind.permissions import READ_ACTIONS, PermissionsMixin
from syncbind.schema.event import DescribeMixin
from syncbind.serializers import ModelSerializer

if TYPE_CHECKING:
    from syncbind.drf import DRFSerializerAdapter


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


class BindingBase(DescribeMixin, Lifecycle, ListingMixin, PermissionsMixin, LiveBindingMixin):
    """The base of every binding: queryset, object lookup, serializer, writes; lists
    (:mod:`._bindings.listing`), permissions (:mod:`.permissions`), live subscriptions
    (:mod:`._bindings.live`), the lifecycle (:mod:`._bindings.lifecycle`) and the
    ``describe`` event (:mod:`.schema.event`) are its bases.

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
        # A per-class cache, reset so a subclass never reuses its parent's.
        cls._serializer = None

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
        stream = binding_class.get_stream()
        message = Message(event=join_event(stream, "list"), stream=stream, action="list")
        request = self.request.with_message(message)
        related = binding_class(request=request, action="list")
        return related.filter_queryset(related._queryset())

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
