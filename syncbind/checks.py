"""System checks run at startup (``manage.py check``, runserver, tests)."""

from __future__ import annotations

from django.core import checks
from django.core.exceptions import FieldDoesNotExist

from .registry import registry


@checks.register("syncbind")
def check_bindings(app_configs=None, **kwargs):
    """A binding must say which fields it exposes, and those fields must exist."""
    errors = []
    for binding in registry.all():
        name = f"{binding.__module__}.{binding.__qualname__}"
        if binding.fields is None and binding.exclude is None and binding.serializer_class is None:
            errors.append(
                checks.Error(
                    f"{name} declares neither 'fields', 'exclude' nor 'serializer_class'.",
                    hint="List the fields to expose, e.g. fields = ['id', 'name'] (or '__all__' "
                    "deliberately): syncbind never exposes every column by default.",
                    obj=binding,
                    id="syncbind.E001",
                )
            )
            continue
        if binding.serializer_class is not None:
            continue
        model = binding.get_model()
        declared = list(binding.fields) if isinstance(binding.fields, list | tuple) else []
        for field_name in [*declared, *(binding.read_only_fields or ())]:
            try:
                model._meta.get_field(field_name)
            except FieldDoesNotExist:
                if not hasattr(model, field_name):
                    errors.append(
                        checks.Error(
                            f"{name} names {field_name!r}, which is neither a field nor an "
                            f"attribute of {model.__name__}.",
                            obj=binding,
                            id="syncbind.E002",
                        )
                    )
        for field_name in binding.ordering_fields or ():
            try:
                model._meta.get_field(field_name)
            except FieldDoesNotExist:
                errors.append(
                    checks.Error(
                        f"{name} lists {field_name!r} in ordering_fields, which is not a field of "
                        f"{model.__name__}.",
                        obj=binding,
                        id="syncbind.E003",
                    )
                )
    return errors
