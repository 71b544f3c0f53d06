"""Turning rows into JSON-safe dicts, and validating writes with Django forms.

:class:`ModelSerializer` is built from a binding's ``fields`` / ``exclude`` /
``read_only_fields``. Output uses precomputed per-field getters (foreign keys
as their raw ``<name>_id``, many-to-many as lists of pks read from the prefetch
cache) so that a page costs a constant number of queries. Writes are validated
by a ModelForm restricted to the writable fields that were sent, which brings
required fields, choices, max_length, unique checks and ``Model.clean()``.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Hashable, Iterable
from functools import cached_property
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models
from django.db.models import Exists, OuterRef
from django.db.models.constants import LOOKUP_SEP
from django.forms import ModelForm

from syncbind._wire import values
from syncbind._wire.jsonsafe import to_json_safe
from syncbind.writes import FormValidation

# The annotation telling whether the row at the end of the n-th foreign-key path that
# related fields follow may be shown (see ModelSerializer.mark_related).
SHOWN = "syncbind_shown_{}"


class ModelSerializer(FormValidation):
    """The native serializer: output getters plus ModelForm-backed validation.

    Built once per binding class (see ``SyncBinding.get_serializer``) and shared
    between threads: it keeps no per-request state.
    """

    #: Its output depends on the row alone, not on who asks (see ``get_subscription_scope``).
    output_per_user = False

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
        names = [name for name in names if name not in excluded]
        # Every row carries its primary key: pushes are matched by it, clients key rows by it.
        if not {"pk", opts.pk.name, opts.pk.attname} & set(names):
            names.insert(0, opts.pk.name)
        return names

    def related_path(self, name: str) -> tuple[list[Any], str] | None:
        """For a related lookup (``"project__name"``): the foreign keys it follows and
        the attribute it ends on; None for a plain name. Raises ImproperlyConfigured
        for a lookup across anything but forward foreign keys and one-to-ones."""
        if LOOKUP_SEP not in name:
            return None
        *hops, last = name.split(LOOKUP_SEP)
        # Fields and models along the path (get_field may name reverse relations too).
        model: Any = self.model
        path: list[Any] = []
        for hop in hops:
            field: Any
            try:
                field = model._meta.get_field(hop)
            except FieldDoesNotExist:
                field = None
            if field is None or not field.concrete or not (field.many_to_one or field.one_to_one):
                raise ImproperlyConfigured(
                    f"{self.model.__name__} field {name!r}: {hop!r} is not a foreign key "
                    "(related fields follow foreign keys and one-to-ones only)."
                )
            path.append(field)
            model = field.related_model
        final: Any
        try:
            final = model._meta.get_field(last)
            attname = getattr(final, "attname", last) if final.concrete else last
        except FieldDoesNotExist:
            if not hasattr(model, last):
                raise ImproperlyConfigured(
                    f"{self.model.__name__} field {name!r}: {model.__name__} has no {last!r}."
                ) from None
            attname = last
        return path, attname

    # -- output -------------------------------------------------------------
    @cached_property
    def identity(self) -> Hashable:
        """What the output of :meth:`serialize` depends on besides the row: two
        serializers with equal identities turn every row into the same dict, so
        live subscribers whose requests chose them may share one serialization.

        The class, the model and the field names (``exclude`` is already applied
        to them; read-only fields and the form decide writes only). A subclass
        whose output depends on anything else it is given extends this tuple.
        """
        return (type(self), self.model, tuple(self.field_names))

    @cached_property
    def getters(self) -> list[tuple[str, Callable[[models.Model], Any]]]:
        return [(name, self._getter(name)) for name in self.field_names]

    def _getter(self, name: str) -> Callable[[models.Model], Any]:
        related = self.related_path(name)
        if related is not None:
            hops = [field.name for field in related[0]]
            last = related[1]
            paths = [path for path, _field in self.related_hops]
            marks = [
                SHOWN.format(paths.index(LOOKUP_SEP.join(hops[: depth + 1])))
                for depth in range(len(hops))
            ]

            def related_value(obj: models.Model) -> Any:
                row = obj
                for hop, mark in zip(hops, marks, strict=True):
                    # A related row the reader may not read is output as absent.
                    if not getattr(row, mark, True):
                        return None
                    obj = getattr(obj, hop)
                    if obj is None:
                        return None
                value = getattr(obj, last)
                return to_json_safe(value() if callable(value) else value)

            return related_value
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

    @cached_property
    def joins(self) -> list[str]:
        """The foreign-key paths related fields follow (``select_related``)."""
        found: list[str] = []
        for name in self.field_names:
            related = self.related_path(name)
            if related is not None and related[0]:
                path = LOOKUP_SEP.join(field.name for field in related[0])
                if path not in found:
                    found.append(path)
        return found

    @cached_property
    def related_hops(self) -> list[tuple[str, Any]]:
        """``(foreign-key path, its last field)`` for every row related fields pass
        through (``"project__owner__name"``: ``project``, then ``project__owner``)."""
        found: list[tuple[str, Any]] = []
        for name in self.field_names:
            related = self.related_path(name)
            fields = related[0] if related is not None else []
            for depth in range(1, len(fields) + 1):
                hops = fields[:depth]
                path = LOOKUP_SEP.join(field.name for field in hops)
                if path not in [known for known, _field in found]:
                    found.append((path, hops[-1]))
        return found

    def related_marks(self, related: Callable[[Any, models.QuerySet], Any]) -> dict[str, Any]:
        """The annotations marking, for each row related fields pass through, whether
        ``related(field, rows)`` (the binding's ``get_related_queryset``) allows it;
        none for a relation it leaves as it is."""
        marks: dict[str, Any] = {}
        for index, (path, field) in enumerate(self.related_hops):
            rows = field.related_model._base_manager.all()
            allowed = related(field, rows)
            if allowed is rows:
                continue
            target = field.target_field.attname
            marks[SHOWN.format(index)] = Exists(allowed.filter(**{target: OuterRef(path)}))
        return marks

    def mark_related(
        self, queryset: models.QuerySet, related: Callable[[Any, models.QuerySet], Any]
    ) -> models.QuerySet:
        """``queryset`` reading, with each row, which related rows its related fields
        may show: a related row that ``related`` does not allow is output as absent
        (null), as if the foreign key were empty."""
        marks = self.related_marks(related)
        return queryset.annotate(**marks) if marks else queryset

    def mark_row(self, obj: models.Model, related: Callable[[Any, models.QuerySet], Any]) -> None:
        """Mark one row that was not read through :meth:`mark_related` (a write's) the same way."""
        marks = self.related_marks(related)
        if not marks:
            return
        rows = type(obj)._base_manager.using(obj._state.db).filter(pk=obj.pk)
        found = rows.annotate(**marks).values(*marks).first() or {}
        for name in marks:
            setattr(obj, name, bool(found.get(name)))

    def optimize(self, queryset: models.QuerySet) -> models.QuerySet:
        """Add the joins and prefetches the output needs, so a page costs a constant
        number of queries whatever its size."""
        if self.joins:
            queryset = queryset.select_related(*self.joins)
        return queryset.prefetch_related(*self.prefetch) if self.prefetch else queryset

    def depends_on(self) -> list[tuple[type[models.Model], str]]:
        """``(related model, foreign-key path from this model)`` for every model whose
        rows the output shows (a rename of a project changes its tasks' rows)."""
        return [(field.related_model, path) for path, field in self.related_hops]
