"""Private: the binding surface its parts call on each other, as one Protocol for mypy.

A binding is assembled from three parts, as a DRF view is: the action mixins of
:mod:`syncbind.mixins`, :class:`syncbind.bindings.BindingBase` (rows, output, lists,
live subscriptions) and :mod:`._bindings.lifecycle` (dispatch and the permission
checks). They call each other's hooks through ``self``. Each part names
:class:`Binding` as its base for the type checker only::

    if TYPE_CHECKING:
        from syncbind._bindings.surface import Binding
    else:
        Binding = object

    class RetrieveMixin(Binding): ...

so every ``self.get_…()`` it calls is checked against this one declaration, and
:class:`syncbind.bindings.BindingBase`, which inherits them all, is checked to
implement it. At run time the parts derive from ``object``: nothing here runs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

from django.db import models

if TYPE_CHECKING:
    from syncbind._bindings.events import EventSpec
    from syncbind._bindings.request import Request
    from syncbind._reads import compiler
    from syncbind.drf import DRFSerializerAdapter
    from syncbind.serializers import ModelSerializer


class Binding(Protocol):
    """The hooks and helpers a binding's parts call on ``self`` (all defined by
    :class:`syncbind.bindings.BindingBase` and its bases)."""

    request: Request
    action: str | None

    # -- identity (syncbind.bindings) --------------------------------------------
    @classmethod
    def get_model(cls) -> type[models.Model]: ...
    @classmethod
    def get_stream(cls) -> str: ...
    @classmethod
    def get_event(cls, name: str) -> tuple[str, EventSpec] | None: ...
    @classmethod
    def for_action(cls, request: Request, action: str) -> Self: ...

    # -- data (syncbind.bindings) ------------------------------------------------
    def get_queryset(self) -> models.QuerySet: ...
    def _queryset(self) -> models.QuerySet: ...
    def read_queryset(self, queryset: models.QuerySet) -> models.QuerySet: ...
    def get_related_queryset(self, field: Any, queryset: models.QuerySet) -> models.QuerySet: ...
    def get_serializer(self) -> ModelSerializer | DRFSerializerAdapter: ...
    def get_lookup_value(self) -> Any: ...
    def get_object(self) -> models.Model: ...
    def get_object_read(self, pk: Any) -> compiler.ObjectRead: ...
    def validate(self, data: dict[str, Any], instance: models.Model | None = None) -> Any: ...
    def write_result(self, instance: models.Model) -> dict[str, Any]: ...

    # -- lists (syncbind.bindings) ------------------------------------------------
    def filter_queryset(self, queryset: models.QuerySet) -> models.QuerySet: ...
    def get_page_read(self) -> compiler.PageRead: ...
    def get_page(self) -> dict[str, Any]: ...
    def page_data(
        self,
        read: compiler.PageRead,
        result: compiler.PageResult,
        serialize_many: Callable[[list[models.Model]], list[dict[str, Any]]] | None = None,
    ) -> dict[str, Any]: ...

    # -- permissions (syncbind._bindings.lifecycle) ------------------------------
    def check_permissions(self, request: Request) -> None: ...
    def check_object_permissions(self, request: Request, obj: Any) -> None: ...

    # -- live subscriptions (syncbind.bindings) -----------------------------------
    def get_auto_subscribe(self) -> bool | Literal["keep"]: ...
    def get_serializer_identity(self) -> Hashable: ...
    def live_object(self, pk: Any, explicit: bool = False) -> tuple[Any, Any]: ...
    def live_page(self, force: bool = False) -> dict[str, Any]: ...
