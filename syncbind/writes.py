"""Writes: validated by a ModelForm restricted to the fields that were sent.

The form brings required fields, choices, ``max_length``, unique checks and
``Model.clean()``. Around it: fields that are unknown or not writable are
refused, JSON fields take ``{}`` and ``[]`` as values, booleans only JSON
booleans, integers and related keys only what their column holds, relations accept only
the rows ``get_related_queryset()`` allows, a unique clash with a row the
writer cannot see is not described, and values the database cannot keep as
they are (datetimes beyond years 1-9999 in some time zone, decimals SQLite
would round) are refused. :class:`Write` is what ``perform_create`` and
``perform_update`` save.
"""

from __future__ import annotations

import datetime
import decimal
from functools import cached_property
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, FieldDoesNotExist
from django.db import IntegrityError, connections, models, router
from django.forms import ModelForm, modelform_factory

from syncbind._wire import values
from syncbind.exceptions import ValidationError


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
    value"; here they are values like any other (see :meth:`FormValidation._json_presence`).
    """

    empty_values = [None, "", [], (), {}]

    def to_python(self, value: Any) -> Any:
        return value


_OMITTED = object()


class JSONBooleanInput(forms.CheckboxInput):
    """A boolean as the request carried it: an HTML checkbox's rules ("on", any
    non-empty text, ``1``) do not apply to JSON."""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        return data.get(name, _OMITTED)

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return name not in data


class JSONBooleanField(forms.Field):
    """``true`` or ``false`` (``null`` too for a nullable field); anything else is
    "Must be a valid boolean." as a DRF serializer says. Omitted, it is false
    (or null), as Django's form reads an unchecked box."""

    widget = JSONBooleanInput

    def __init__(self, *, nullable: bool, **kwargs: Any) -> None:
        self.nullable = nullable
        super().__init__(required=False, **kwargs)

    def to_python(self, value: Any) -> bool | None:
        if value is _OMITTED:
            return None if self.nullable else False
        if value is None:
            if self.nullable:
                return None
            raise forms.ValidationError("This field cannot be null.", code="null")
        try:
            return values.as_boolean(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None


def _formfield(model_field: models.Field, **kwargs: Any) -> forms.Field | None:
    if isinstance(model_field, models.JSONField):
        return JSONValueField(required=False, label=model_field.verbose_name)
    if isinstance(model_field, models.BooleanField) and not model_field.choices:
        return JSONBooleanField(nullable=model_field.null, label=model_field.verbose_name)
    return model_field.formfield(**kwargs)


class FormValidation:
    """The input half of the native serializer (``ModelSerializer``)."""

    model: type[models.Model]
    form_class: type[ModelForm]
    field_names: list[str]
    read_only_fields: frozenset[str]
    _form_cache: dict[tuple[str, ...], type[ModelForm]]

    def model_field(self, name: str) -> models.Field | None:
        """The model field ``name`` (concrete or many-to-many), or None."""
        try:
            field = self.model._meta.get_field(name)
        except FieldDoesNotExist:
            return None
        if isinstance(field, models.Field) and (field.concrete or field.many_to_many):
            return field
        return None

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
                self.model,
                form=self.form_class,
                fields=list(names),
                # Django takes a callback that may return None (no form field); the stubs do not.
                formfield_callback=_formfield,  # type: ignore[arg-type]
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

    def _in_range(self, data: dict[str, Any]) -> dict[str, list[str]]:
        """Errors for integers (and keys of related rows) beyond their column's
        range: found before any query, where SQLite would fail on them."""
        errors: dict[str, list[str]] = {}
        ops = connections[router.db_for_write(self.model)].ops
        for name, value in data.items():
            field = self.model_field(name)
            items = list(value) if isinstance(value, list | tuple) else [value]
            problem = None if field is None else values.out_of_range(field, items, ops)
            if problem:
                errors[name] = [problem]
        return errors

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
        out_of_range = self._in_range(data)
        if out_of_range:
            raise ValidationError(out_of_range)
        names = tuple(sorted(data)) if partial else tuple(sorted(self.writable_fields))
        errors = self._json_presence(data, names, creating=instance is None)
        form_data = dict(data)
        if instance is None:
            # A form reads an omitted checkbox as False; keep the model's default instead.
            for name in names:
                field = self.model_field(name)
                if name not in form_data and field is not None and field.has_default():
                    form_data[name] = field.get_default()
        form = self.get_form_class(names)(data=form_data, instance=instance)
        if related is not None:
            for name, form_field in form.fields.items():
                queryset = getattr(form_field, "queryset", None)
                if queryset is not None:
                    narrowed = related(self.model._meta.get_field(name), queryset)
                    form_field.queryset = narrowed  # type: ignore[attr-defined]
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
