"""Turning rows into JSON-safe dicts, and validating writes with Django forms.

:class:`ModelSerializer` is built from a binding's ``fields`` / ``exclude`` /
``read_only_fields``. Output uses precomputed per-field getters (foreign keys
as their raw ``<name>_id``, many-to-many as lists of pks read from the prefetch
cache) so that a page costs a constant number of queries. Writes are validated
by a ModelForm restricted to the writable fields that were sent, which brings
required fields, choices, max_length, unique checks and ``Model.clean()``.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, FieldDoesNotExist
from django.db import IntegrityError, connections, models, router
from django.db.models.fields.files import FieldFile
from django.forms import ModelForm, modelform_factory
from django.utils.duration import duration_iso_string

from . import values
from .exceptions import ValidationError

_PRIMITIVES = (str, int, float, bool, type(None))


def to_json_safe(value: Any) -> Any:
    """Convert a model value to what ``json.dumps`` accepts: ISO 8601 dates and times,
    Decimal and UUID as strings, files as their name, bytes as hex."""
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, list | tuple):
        return [to_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json_safe(item) for key, item in value.items()}
    if isinstance(value, FieldFile):
        return value.name or None
    if isinstance(value, datetime.date | datetime.time):
        # Full precision (DjangoJSONEncoder would cut microseconds), in UTC with "Z": what
        # a write replies is what a later read returns, whatever offset it was sent with.
        if isinstance(value, datetime.datetime) and value.tzinfo is not None:
            value = value.astimezone(datetime.UTC)
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, datetime.timedelta):
        return duration_iso_string(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return str(value)


class Write:
    """A validated write, ready to save. ``perform_create``/``perform_update`` call :meth:`save`."""

    def __init__(self, form: ModelForm, field_names: list[str], partial: bool):
        self.form = form
        self.field_names = field_names
        self.partial = partial

    @property
    def instance(self) -> models.Model:
        return self.form.instance

    @property
    def validated_data(self) -> dict[str, Any]:
        return self.form.cleaned_data

    def save(self, **extra: Any) -> models.Model:
        """Save the row; ``extra`` sets server-side values (``owner=request.user``)."""
        instance = self.form.save(commit=False)
        for name, value in extra.items():
            setattr(instance, name, value)
        opts = instance._meta
        try:
            if self.partial:
                # Only the columns this write touched: a concurrent update of another
                # field of the same row is not overwritten. auto_now fields are touched too.
                update_fields = [
                    opts.get_field(name).name
                    for name in [*self.field_names, *extra]
                    if not opts.get_field(name).many_to_many
                ]
                update_fields += [
                    field.name
                    for field in opts.concrete_fields
                    if getattr(field, "auto_now", False) and field.name not in update_fields
                ]
                if update_fields:
                    instance.save(update_fields=update_fields)
            else:
                instance.save()
            self.form.save_m2m()
        except IntegrityError as exc:
            raise ValidationError(
                {NON_FIELD_ERRORS: ["This write conflicts with existing data."]}
            ) from exc
        return instance


UNAVAILABLE = "This value is not available."


class JSONValueField(forms.Field):
    """A JSON field's value as the request carried it, already decoded.

    Django's form field wants JSON text and takes ``{}`` and ``[]`` for "no
    value"; here they are values like any other (see ``ModelSerializer._json_presence``).
    """

    empty_values = [None, "", [], (), {}]

    def to_python(self, value: Any) -> Any:
        return value


def _formfield(model_field: models.Field, **kwargs: Any) -> forms.Field | None:
    if isinstance(model_field, models.JSONField):
        return JSONValueField(required=False, label=model_field.verbose_name)
    return model_field.formfield(**kwargs)


class ModelSerializer:
    """The native serializer: output getters plus ModelForm-backed validation.

    Built once per binding class (see ``SyncBinding.get_serializer``) and shared
    between threads: it keeps no per-request state.
    """

    def __init__(
        self,
        model: type[models.Model],
        fields: Iterable[str] | str | None = None,
        exclude: Iterable[str] | None = None,
        read_only_fields: Iterable[str] = (),
        form_class: type[ModelForm] = ModelForm,
    ) -> None:
        self.model = model
        self.form_class = form_class
        self.field_names = self._resolve_names(fields, exclude)
        self.read_only_fields = frozenset(read_only_fields)
        self._form_cache: dict[tuple[str, ...], type[ModelForm]] = {}

    def _resolve_names(self, fields, exclude) -> list[str]:
        opts = self.model._meta
        if fields == "__all__" or (fields is None and exclude is not None):
            names = [
                f.name
                for f in [*opts.concrete_fields, *opts.many_to_many]
                if not (f.remote_field and f.remote_field.parent_link)
            ]
        else:
            names = list(fields or [])
        excluded = set(exclude or ())
        return [name for name in names if name not in excluded]

    def model_field(self, name: str) -> models.Field | None:
        try:
            field = self.model._meta.get_field(name)
        except FieldDoesNotExist:
            return None
        return field if field.concrete or field.many_to_many else None

    # -- output -------------------------------------------------------------
    @cached_property
    def getters(self) -> list[tuple[str, Callable[[models.Model], Any]]]:
        return [(name, self._getter(name)) for name in self.field_names]

    def _getter(self, name: str) -> Callable[[models.Model], Any]:
        field = self.model_field(name)
        if field is None:

            def attribute(obj: models.Model) -> Any:
                value = getattr(obj, name)
                return to_json_safe(value() if callable(value) else value)

            return attribute
        if field.many_to_many:
            return lambda obj: [to_json_safe(related.pk) for related in getattr(obj, name).all()]
        attname = field.attname
        if isinstance(field, models.DecimalField) and field.decimal_places is not None:
            # The same text whether the value was just written ("27.5") or read back ("27.50").
            places, digits = field.decimal_places, field.max_digits

            def decimal_value(obj: models.Model) -> Any:
                value = getattr(obj, attname)
                if isinstance(value, decimal.Decimal) and value.is_finite():
                    return values.format_decimal(value, places, digits)
                return to_json_safe(value)

            return decimal_value
        if isinstance(field, models.FileField):
            return lambda obj: getattr(obj, name).name or None
        return lambda obj: to_json_safe(getattr(obj, attname))

    def serialize(self, obj: models.Model) -> dict[str, Any]:
        """The JSON-safe dict of one row."""
        return {name: get(obj) for name, get in self.getters}

    def serialize_pk(self, pk: Any) -> Any:
        return to_json_safe(pk)

    def serialize_many(self, objs: Iterable[models.Model]) -> list[dict[str, Any]]:
        getters = self.getters
        return [{name: get(obj) for name, get in getters} for obj in objs]

    @cached_property
    def prefetch(self) -> list[str]:
        return [
            name for name in self.field_names if (f := self.model_field(name)) and f.many_to_many
        ]

    def optimize(self, queryset: models.QuerySet) -> models.QuerySet:
        """Add the prefetches the output needs, so a page costs a constant number of queries."""
        return queryset.prefetch_related(*self.prefetch) if self.prefetch else queryset

    # -- input --------------------------------------------------------------
    @cached_property
    def writable_fields(self) -> frozenset[str]:
        writable = set()
        for name in self.field_names:
            field = self.model_field(name)
            if (
                field is None
                or name in self.read_only_fields
                or field.primary_key
                or not field.editable
                or field.formfield() is None
            ):
                continue
            writable.add(name)
        return frozenset(writable)

    def get_form_class(self, names: tuple[str, ...]) -> type[ModelForm]:
        form_class = self._form_cache.get(names)
        if form_class is None:
            form_class = modelform_factory(
                self.model, form=self.form_class, fields=list(names), formfield_callback=_formfield
            )
            self._form_cache[names] = form_class
        return form_class

    def _json_presence(
        self, data: dict[str, Any], names: tuple[str, ...], creating: bool
    ) -> dict[str, list[str]]:
        # JSON fields take {} and [] as values (see JSONValueField); what is required or
        # nullable is checked here instead.
        errors: dict[str, list[str]] = {}
        for name in names:
            field = self.model._meta.get_field(name)
            if not isinstance(field, models.JSONField):
                continue
            if name in data and data[name] is None and not field.null:
                errors[name] = ["This field cannot be null."]
            elif creating and name not in data and not field.has_default() and not field.blank:
                errors[name] = ["This field is required."]
        return errors

    def _unique_message(
        self, name: str, error: dict[str, str], form: ModelForm, visible: Any
    ) -> str:
        # "Task with this Slug already exists." would tell of a row the user cannot see.
        if error.get("code") not in ("unique", "unique_together") or visible is None:
            return error["message"]
        if (
            error["code"] == "unique"
            and name in form.data
            and visible.filter(**{name: form.data[name]}).exists()
        ):
            return error["message"]
        return UNAVAILABLE

    def _storable(self, cleaned: dict[str, Any]) -> dict[str, list[str]]:
        """Errors for valid values the database still cannot store as they are."""
        errors: dict[str, list[str]] = {}
        vendor = connections[router.db_for_write(self.model)].vendor
        for name, value in cleaned.items():
            if isinstance(value, datetime.datetime) and not values.datetime_in_range(value):
                errors[name] = [values.DATETIME_RANGE]
            elif (
                isinstance(value, decimal.Decimal)
                and vendor == "sqlite"
                and value.is_finite()
                and len(value.normalize().as_tuple().digits) > 15
            ):
                errors[name] = ["This database keeps at most 15 significant digits of a decimal."]
        return errors

    def validate(
        self,
        data: dict[str, Any],
        instance: models.Model | None = None,
        partial: bool = False,
        related: Any = None,
        visible: Any = None,
    ) -> Write:
        """Validate ``data`` for a create (``instance`` None) or an update.

        ``related(model_field, queryset)`` returns the rows a relation may point to
        (the binding's ``get_related_queryset``); ``visible`` is the queryset of
        rows the writer can see, so that a clash with a row they cannot see is
        not described. Raises ValidationError naming every
        field that is unknown or not writable, or that the form rejects; returns a
        :class:`Write`.
        """
        refused = {
            name: ["This field is not writable."]
            if name in self.field_names or self.model_field(name) is not None
            else ["Unknown field."]
            for name in data
            if name not in self.writable_fields
        }
        if refused:
            raise ValidationError(refused)
        names = tuple(sorted(data)) if partial else tuple(sorted(self.writable_fields))
        errors = self._json_presence(data, names, creating=instance is None)
        form_data = dict(data)
        if instance is None:
            # A form reads an omitted checkbox as False; keep the model's default instead.
            for name in names:
                field = self.model._meta.get_field(name)
                if name not in form_data and field.has_default():
                    form_data[name] = field.get_default()
        form = self.get_form_class(names)(data=form_data, instance=instance)
        if related is not None:
            for name, form_field in form.fields.items():
                queryset = getattr(form_field, "queryset", None)
                if queryset is not None:
                    form_field.queryset = related(self.model._meta.get_field(name), queryset)
        if not form.is_valid():
            for name, messages in form.errors.get_json_data().items():
                errors.setdefault(name, []).extend(
                    self._unique_message(name, m, form, visible) for m in messages
                )
        else:
            errors.update(self._storable(form.cleaned_data))
        if errors:
            raise ValidationError(errors)
        return Write(form, list(names), partial)
