"""JSON Schemas of the values a binding reads and writes: model, form, DRF and filter fields."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import models

ANY: dict[str, Any] = {}
# A primary key whose type is not known (a DRF relation without a queryset).
SOME_KEY: dict[str, Any] = {"type": ["integer", "string"]}

_INTEGERS = (models.AutoField, models.BigAutoField, models.SmallAutoField, models.IntegerField)
_POSITIVE = (
    models.PositiveIntegerField,
    models.PositiveSmallIntegerField,
    models.PositiveBigIntegerField,
)
# Model fields whose JSON value is text of a known format (syncbind.serializers.to_json_safe).
_FORMATS: tuple[tuple[type, str], ...] = (
    (models.DateTimeField, "date-time"),
    (models.DateField, "date"),
    (models.TimeField, "time"),
    (models.DurationField, "duration"),
    (models.UUIDField, "uuid"),
    (models.EmailField, "email"),
    (models.URLField, "uri"),
)


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also takes ``null``."""
    kind = schema.get("type")
    if kind is None:
        return schema if not schema else {"anyOf": [schema, {"type": "null"}]}
    kinds = kind if isinstance(kind, list) else [kind]
    if "null" in kinds:
        return schema
    out = {**schema, "type": [*kinds, "null"]}
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def _labelled(schema: dict[str, Any], field: Any) -> dict[str, Any]:
    title = getattr(field, "verbose_name", None) or getattr(field, "label", None)
    if title:
        schema["title"] = str(title)
    help_text = getattr(field, "help_text", None)
    if help_text:
        schema["description"] = str(help_text)
    return schema


def key_schema(model: type[models.Model]) -> dict[str, Any]:
    """The JSON value of ``model``'s primary key."""
    return _model_value(model._meta.pk, writing=False)


def _model_value(field: Any, *, writing: bool) -> dict[str, Any]:
    """A concrete or many-to-many model field's value, without null."""
    if field.many_to_many:
        return {"type": "array", "items": key_schema(field.related_model)}
    if field.is_relation:
        return key_schema(field.related_model)
    if field.choices:
        return {"enum": [value for value, _label in field.flatchoices]}
    if isinstance(field, models.BooleanField):
        return {"type": "boolean"}
    if isinstance(field, _INTEGERS):
        schema: dict[str, Any] = {"type": "integer"}
        if isinstance(field, _POSITIVE):
            schema["minimum"] = 0
        return schema
    if isinstance(field, models.FloatField):
        return {"type": "number"}
    if isinstance(field, models.DecimalField):
        # Rows carry decimals as text ("12.50"); a write may send a number.
        return (
            {"type": ["string", "number"]} if writing else {"type": "string", "format": "decimal"}
        )
    if isinstance(field, models.JSONField):
        return dict(ANY)
    for kind, fmt in _FORMATS:
        if isinstance(field, kind):
            return {"type": "string", "format": fmt}
    schema = {"type": "string"}
    if getattr(field, "max_length", None) and not isinstance(field, models.FileField):
        schema["maxLength"] = field.max_length
    return schema


def model_field_schema(field: Any, *, writing: bool = False) -> dict[str, Any]:
    """The JSON Schema of a model field's value in a row (or, ``writing``, in a write)."""
    schema = _model_value(field, writing=writing)
    if field.null or (isinstance(field, models.FileField) and not writing):
        schema = nullable(schema)
    return _labelled(schema, field)


def drf_field_schema(field: Any) -> dict[str, Any]:
    """The JSON Schema of a DRF serializer field's value."""
    schema = _labelled(_drf_value(field), field)
    if getattr(field, "allow_null", False):
        schema = nullable(schema)
    if field.read_only:
        schema["readOnly"] = True
    if field.write_only:
        schema["writeOnly"] = True
    return schema


def drf_fields_schema(serializer: Any) -> dict[str, Any]:
    """An object of a DRF serializer's readable fields."""
    return {
        "type": "object",
        "properties": {
            name: drf_field_schema(field)
            for name, field in serializer.fields.items()
            if not field.write_only
        },
    }


def _drf_value(field: Any) -> dict[str, Any]:
    # Lazy: DRF is optional.
    from rest_framework import fields as f
    from rest_framework import relations, serializers

    if isinstance(field, serializers.ListSerializer):
        return {"type": "array", "items": _drf_value(field.child)}
    if isinstance(field, serializers.BaseSerializer):
        return drf_fields_schema(field)
    if isinstance(field, relations.ManyRelatedField):
        return {"type": "array", "items": _drf_value(field.child_relation)}
    if isinstance(field, relations.PrimaryKeyRelatedField):
        queryset = field.queryset
        return key_schema(queryset.model) if queryset is not None else dict(SOME_KEY)
    if isinstance(field, relations.RelatedField):
        return {"type": "string"}
    if isinstance(field, f.MultipleChoiceField):
        return {"type": "array", "items": {"enum": list(field.choices)}}
    if isinstance(field, f.ChoiceField):
        return {"enum": list(field.choices)}
    if isinstance(field, f.BooleanField):
        return {"type": "boolean"}
    if isinstance(field, f.IntegerField):
        return {"type": "integer"}
    if isinstance(field, f.FloatField):
        return {"type": "number"}
    if isinstance(field, f.DecimalField):
        coerce = getattr(field, "coerce_to_string", None)
        if coerce is None:
            # Lazy: DRF is optional.
            from rest_framework.settings import api_settings

            coerce = api_settings.COERCE_DECIMAL_TO_STRING
        return {"type": "string", "format": "decimal"} if coerce else {"type": "number"}
    for kind, fmt in (
        (f.DateTimeField, "date-time"),
        (f.DateField, "date"),
        (f.TimeField, "time"),
        (f.DurationField, "duration"),
        (f.UUIDField, "uuid"),
        (f.EmailField, "email"),
        (f.URLField, "uri"),
    ):
        if isinstance(field, kind):
            return {"type": "string", "format": fmt}
    if isinstance(field, f.ListField):
        return {"type": "array", "items": _drf_value(field.child)}
    if isinstance(field, f.DictField):
        return {"type": "object", "additionalProperties": _drf_value(field.child)}
    if isinstance(field, f.CharField):
        schema: dict[str, Any] = {"type": "string"}
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
        return schema
    return dict(ANY)  # JSONField, ReadOnlyField, SerializerMethodField, a field of one's own


# What a filter's form field reads (docs/protocol.md, "list"): text, or a JSON scalar.
_FILTER_VALUES: tuple[tuple[type, dict[str, Any]], ...] = (
    (forms.BooleanField, {"type": ["boolean", "string"], "enum": [True, False, "true", "false"]}),
    (
        forms.NullBooleanField,
        {"type": ["boolean", "string"], "enum": [True, False, "true", "false"]},
    ),
    # DecimalField and FloatField are IntegerFields to Django: looked at first.
    (forms.DecimalField, {"type": ["number", "string"]}),
    (forms.FloatField, {"type": ["number", "string"]}),
    (forms.IntegerField, {"type": ["integer", "string"]}),
    (forms.DateTimeField, {"type": "string", "format": "date-time"}),
    (forms.DateField, {"type": "string", "format": "date"}),
    (forms.TimeField, {"type": "string", "format": "time"}),
    (forms.UUIDField, {"type": "string", "format": "uuid"}),
    (forms.ModelChoiceField, {"type": ["integer", "string"]}),
)


def filter_schema(name: str, spec: Any) -> dict[str, Any]:
    """The JSON Schema of the value of filter ``name`` (a django-filter ``Filter``)."""
    schema: dict[str, Any] = {"type": "string"}
    for field_class, known in _FILTER_VALUES:
        if issubclass(spec.field_class, field_class):
            schema = dict(known)
            break
    if spec.lookup_expr in ("in", "range"):
        # A list, or the comma-separated text a query string carries.
        item = {key: value for key, value in schema.items() if key != "enum"}
        schema = {"anyOf": [{"type": "array", "items": item}, {"type": "string"}]}
    target = spec.field_name if isinstance(spec.field_name, str) else name
    schema["description"] = f"{target} {spec.lookup_expr}"
    return schema
