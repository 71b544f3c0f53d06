"""Django REST framework support: serializers and permission classes.

DRF stays optional: this module imports ``rest_framework`` only when a binding
actually uses a DRF serializer, and DRF permission classes need nothing from it.

- ``serializer_class = MyModelSerializer`` on a binding: used for output and
  for validating writes, with ``context={"request": request, "view": binding}``.
- DRF permission classes (``rest_framework.permissions.IsAuthenticated``,
  ``DjangoModelPermissions``, your own with ``has_object_permission``) go in
  ``permission_classes`` beside syncbind's: they are called with a view that
  looks like a DRF view (``get_queryset()`` without arguments, ``action``) and a
  request whose ``method`` is the action's on every transport (retrieve, list,
  search, subscribe, unsubscribe → GET; create → POST; update → PATCH; save →
  PUT when it updates, POST when it creates; delete → DELETE; custom events →
  POST), never the method the HTTP API received.

DRF's unique validators look at every row of the table; a clash they find with
a row the writer cannot see is answered as the native serializer answers it
("This value is not available.", see :mod:`syncbind.writes`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, models

from syncbind._wire.jsonsafe import to_json_safe
from syncbind.exceptions import ValidationError
from syncbind.writes import UNAVAILABLE

if TYPE_CHECKING:
    from syncbind._bindings.surface import Binding


class ViewProxy:
    """The binding as a DRF permission class expects a view to be."""

    def __init__(self, binding: Binding) -> None:
        self._binding = binding

    def get_queryset(self) -> models.QuerySet:
        return self._binding.get_queryset()

    @property
    def queryset(self) -> models.QuerySet:
        return self.get_queryset()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._binding, name)


class DRFPermission:
    """Adapts a DRF-style permission (``has_permission(request, view)``) to a binding.

    The permission sees the syncbind request, whose ``method`` is the action's
    (:func:`syncbind._bindings.request.action_method`), and the binding through
    :class:`ViewProxy`, so DRF's ``DjangoModelPermissions`` takes the model from
    ``get_queryset()``.
    """

    def __init__(self, permission: Any) -> None:
        self.permission = permission
        self.message = getattr(permission, "message", None)

    def has_permission(self, request, binding) -> bool:
        return bool(self.permission.has_permission(request, ViewProxy(binding)))

    def has_object_permission(self, request, binding, obj) -> bool:
        return bool(self.permission.has_object_permission(request, ViewProxy(binding), obj))


def _messages(detail: Any) -> list[str]:
    if isinstance(detail, dict):
        return [
            f"{key}: {message}" for key, value in detail.items() for message in _messages(value)
        ]
    if isinstance(detail, list | tuple):
        return [message for item in detail for message in _messages(item)]
    return [str(detail)]


def errors_to_fields(errors: Any) -> dict[str, list[str]]:
    """DRF's ``serializer.errors`` as syncbind's ``fields`` (non-field errors under ``__all__``)."""
    # Lazy: DRF is optional (see the module docstring).
    from rest_framework.settings import api_settings as drf_settings

    if not isinstance(errors, dict):
        return {NON_FIELD_ERRORS: _messages(errors)}
    non_field = drf_settings.NON_FIELD_ERRORS_KEY
    return {
        (NON_FIELD_ERRORS if key == non_field else key): _messages(value)
        for key, value in errors.items()
    }


def _visible_clash(serializer: Any, name: str, visible: Any) -> bool:
    """Whether a row ``visible`` holds has the value sent for the field ``name``."""
    # Lazy: DRF is optional (see the module docstring).
    from rest_framework.exceptions import ValidationError as DRFValidationError

    field = serializer.fields.get(name)
    if field is None or name not in serializer.initial_data:
        return False
    try:
        value = field.to_internal_value(serializer.initial_data[name])
        return bool(visible.filter(**{"__".join(field.source_attrs): value}).exists())
    except (DRFValidationError, DjangoValidationError, ValueError, TypeError):
        return False


def mask_unique_errors(serializer: Any, visible: Any) -> Any:
    """``serializer.errors`` with each unique clash the writer may not learn of replaced
    by UNAVAILABLE, as the native path does: a field's clash with a row outside
    ``visible`` (None: no masking), and every clash of several fields together."""
    # Lazy: DRF is optional (see the module docstring).
    from rest_framework.settings import api_settings as drf_settings

    errors = serializer.errors
    if visible is None or not isinstance(errors, dict):
        return errors
    non_field = drf_settings.NON_FIELD_ERRORS_KEY

    def masked(name: str, detail: Any) -> Any:
        if getattr(detail, "code", None) != "unique":
            return detail
        if name != non_field and _visible_clash(serializer, name, visible):
            return detail
        return UNAVAILABLE

    return {
        name: [masked(name, d) for d in details] if isinstance(details, list) else details
        for name, details in errors.items()
    }


class DRFWrite:
    """A validated DRF serializer, saved by ``perform_create``/``perform_update``."""

    def __init__(self, serializer: Any) -> None:
        self.serializer = serializer

    @property
    def instance(self) -> Any:
        return self.serializer.instance

    @property
    def validated_data(self) -> dict[str, Any]:
        return self.serializer.validated_data

    def save(self, **extra: Any) -> models.Model:
        try:
            return self.serializer.save(**extra)
        except IntegrityError as exc:
            raise ValidationError(
                {NON_FIELD_ERRORS: ["This write conflicts with existing data."]}
            ) from exc


def _narrow_relations(serializer: Any, related: Any) -> None:
    """Relation fields accept only the rows ``related`` allows (see get_related_queryset)."""
    # Lazy: DRF is optional (see the module docstring).
    from rest_framework.relations import ManyRelatedField, RelatedField

    for name, field in serializer.fields.items():
        relation = field.child_relation if isinstance(field, ManyRelatedField) else field
        if isinstance(relation, RelatedField) and getattr(relation, "queryset", None) is not None:
            model_field = None
            with contextlib.suppress(Exception):  # a source that is no model field
                model_field = serializer.Meta.model._meta.get_field(field.source or name)
            relation.queryset = related(model_field, relation.queryset)


class DRFSerializerAdapter:
    """The binding serializer interface (see ``serializers.ModelSerializer``) over a DRF serializer."""

    #: What it shows may depend on who asks (see ``identity``): a binding's subscription
    #: scope is per user by default with such a serializer.
    output_per_user = True

    def __init__(self, serializer_class: type, binding: Binding) -> None:
        self.serializer_class = serializer_class
        self.binding = binding

    @property
    def identity(self) -> Hashable:
        """The serializer class (see ``ModelSerializer.identity``). What a DRF
        serializer shows may also depend on the request it is given (fields chosen
        from ``request.user`` in ``__init__``, ``to_representation`` or a method
        field): that is the binding's subscription scope, per user by default
        with a ``serializer_class``."""
        return (DRFSerializerAdapter, self.serializer_class)

    @property
    def context(self) -> dict[str, Any]:
        return {"request": self.binding.request, "view": self.binding, "binding": self.binding}

    def serialize(self, obj: models.Model) -> dict[str, Any]:
        return to_json_safe(dict(self.serializer_class(obj, context=self.context).data))

    def serialize_many(self, objs) -> list[dict[str, Any]]:
        data = self.serializer_class(list(objs), many=True, context=self.context).data
        return [to_json_safe(dict(item)) for item in data]

    def serialize_pk(self, pk: Any) -> Any:
        return to_json_safe(pk)

    def optimize(self, queryset: models.QuerySet) -> models.QuerySet:
        """Prefetch the many-to-many fields the serializer reads."""
        serializer = self.serializer_class(context=self.context)
        names = []
        for name, field in serializer.fields.items():
            source = getattr(field, "source", name)
            if getattr(field, "many", False) or field.__class__.__name__ == "ManyRelatedField":
                names.append(source)
        return queryset.prefetch_related(*names) if names else queryset

    def validate(
        self,
        data: dict[str, Any],
        instance: models.Model | None = None,
        partial: bool = False,
        related: Any = None,
        visible: Any = None,
    ) -> DRFWrite:
        serializer = self.serializer_class(
            instance=instance, data=data, partial=partial, context=self.context
        )
        if related is not None:
            _narrow_relations(serializer, related)
        writable = {name for name, field in serializer.fields.items() if not field.read_only}
        refused = {
            name: ["This field is not writable."]
            if name in serializer.fields
            else ["Unknown field."]
            for name in data
            if name not in writable
        }
        if refused:
            raise ValidationError(refused)
        if not serializer.is_valid():
            raise ValidationError(errors_to_fields(mask_unique_errors(serializer, visible)))
        return DRFWrite(serializer)
