"""System checks run at startup (``manage.py check``, runserver, tests)."""

from __future__ import annotations

from typing import Any, cast

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import connections, router
from django.utils.module_loading import import_string

from syncbind import _capture as capture
from syncbind._bindings.registry import registry
from syncbind._capture import triggers
from syncbind.authentication import SessionAuthentication, TokenAuthentication
from syncbind.bindings import BindingBase
from syncbind.consumers import _Transport
from syncbind.serializers import ModelSerializer
from syncbind.settings import (
    IMPORT_STRINGS,
    LEGACY_IGNORED,
    LEGACY_KEYS,
    LEGACY_SETTING,
    SyncbindSettings,
    api_settings,
)


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
            if "__" in field_name:
                try:
                    # Without serializer_class the serializer is syncbind's own.
                    cast(ModelSerializer, binding().get_serializer()).related_path(field_name)
                except ImproperlyConfigured as exc:
                    errors.append(checks.Error(f"{name}: {exc}", obj=binding, id="syncbind.E002"))
                continue
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


@checks.register("syncbind")
def check_compiled_reads(app_configs=None, **kwargs):
    """A binding that reads its own way must say so, or its pushes would read another
    way than its replies (syncbind.E004)."""
    errors = []
    for binding in registry.all():
        if not binding.get_compiled_reads():
            continue
        own = [
            m
            for m in ("get_object", "get_page")
            if getattr(binding, m) is not getattr(BindingBase, m)
        ]
        if own:
            name = f"{binding.__module__}.{binding.__qualname__}"
            errors.append(
                checks.Error(
                    f"{name} defines {' and '.join(m + '()' for m in own)}, but its live "
                    "subscriptions are evaluated from the compiled reads, which do not call it.",
                    hint="Set compiled_reads = False (each subscriber's push then calls it "
                    "again), or move the scoping into get_queryset()/filter_queryset() and "
                    "drop the override.",
                    obj=binding,
                    id="syncbind.E004",
                )
            )
    return errors


@checks.register("syncbind")
def check_import_strings(app_configs=None, **kwargs):
    """Every dotted path in SYNCBIND (and CHANNELS_BINDING) must import (syncbind.E010)."""
    errors = []
    fresh = SyncbindSettings()
    for name in sorted(IMPORT_STRINGS):
        try:
            getattr(fresh, name)
        except ImportError as exc:
            errors.append(
                checks.Error(
                    str(exc),
                    hint="Correct the path in settings.SYNCBIND (docs/settings.md lists them).",
                    id="syncbind.E010",
                )
            )
    return errors


@checks.register("syncbind")
def check_authentication_classes(app_configs=None, **kwargs):
    """Every authentication class has ``authenticate(scope)`` (syncbind.E011).

    channels-binding's classes had ``get_user(consumer)`` instead; one left in the
    settings would fail every handshake.
    """
    try:
        classes = SyncbindSettings().AUTHENTICATION_CLASSES
    except ImportError:
        return []  # reported as E010
    return [
        checks.Error(
            f"Authentication class {cls.__module__}.{cls.__qualname__} has no authenticate().",
            hint="Subclass syncbind.authentication.BaseAuthentication "
            "(docs/migrating.md shows a channels-binding get_user() class rewritten).",
            id="syncbind.E011",
        )
        for cls in classes or ()
        if not callable(getattr(cls, "authenticate", None))
    ]


@checks.register("syncbind")
def check_legacy_settings(app_configs=None, **kwargs):
    """channels-binding's settings dict is read, but should be renamed (syncbind.W015)."""
    legacy = getattr(settings, LEGACY_SETTING, None)
    if legacy is None:
        return []
    steps = [f"Rename {LEGACY_SETTING} to SYNCBIND"]
    steps += [f"{old} to {new}" for old, new in LEGACY_KEYS.items() if old in legacy]
    dropped = sorted(key for key in LEGACY_IGNORED if key in legacy)
    if dropped:
        steps.append(f"and delete {', '.join(dropped)}")
    return [
        checks.Warning(
            f"settings.{LEGACY_SETTING} (channels-binding's name) is read as SYNCBIND; "
            "keys in SYNCBIND win over it.",
            hint=f"{', '.join(steps)} (docs/migrating.md).",
            id="syncbind.W015",
        )
    ]


def _session_auth_in_use() -> bool:

    try:
        classes = api_settings.AUTHENTICATION_CLASSES
    except ImportError:
        return False
    return any(issubclass(cls, SessionAuthentication) for cls in classes)


def _served_consumers(app, guarded=False, seen=None):
    """(consumer class, behind an OriginValidator) for each syncbind consumer ``app`` routes to."""
    seen = set() if seen is None else seen
    if app is None or id(app) in seen:
        return
    seen.add(id(app))
    consumer = getattr(app, "consumer_class", None)
    if isinstance(consumer, type) and issubclass(consumer, _Transport):
        yield consumer, guarded
        return
    if isinstance(app, OriginValidator):
        guarded = True
    for attribute in ("application", "inner", "app", "callback"):
        yield from _served_consumers(getattr(app, attribute, None), guarded, seen)
    for child in (getattr(app, "application_mapping", None) or {}).values():
        yield from _served_consumers(child, guarded, seen)
    for route in [*(getattr(app, "routes", None) or ()), *(getattr(app, "url_patterns", ()) or ())]:
        yield from _served_consumers(route, guarded, seen)


@checks.register("syncbind", deploy=True)
def check_deployment(app_configs=None, **kwargs):
    """Traps of a WebSocket deployment that nothing else warns about (``check --deploy``)."""
    warnings = []
    if "*" in settings.ALLOWED_HOSTS and _session_auth_in_use():
        warnings.append(
            checks.Warning(
                "ALLOWED_HOSTS contains '*': AllowedHostsOriginValidator then accepts WebSocket "
                "handshakes from any site, carrying the visitor's session cookie.",
                hint="List your hosts in ALLOWED_HOSTS (syncbind refuses other origins for "
                "session-authenticated handshakes as well, but does not replace it).",
                id="syncbind.W010",
            )
        )
    asgi = getattr(settings, "ASGI_APPLICATION", None)
    if asgi:
        try:
            application = import_string(asgi)
        except Exception as exc:  # the project's own module: report, do not crash the check
            warnings.append(
                checks.Warning(
                    f"ASGI_APPLICATION {asgi!r} could not be imported to check its routing: {exc}",
                    id="syncbind.W014",
                )
            )
        else:
            unguarded = sorted(
                {c.__qualname__ for c, guarded in _served_consumers(application) if not guarded}
            )
            if unguarded:
                warnings.append(
                    checks.Warning(
                        f"{', '.join(unguarded)} is routed without an OriginValidator: any site "
                        "may open a WebSocket to it with the visitor's cookies.",
                        hint="Wrap the websocket routing in syncbind.origins.SessionOriginValidator "
                        "(or Channels' AllowedHostsOriginValidator; docs/deployment.md).",
                        id="syncbind.W011",
                    )
                )
    try:
        classes = api_settings.AUTHENTICATION_CLASSES
    except ImportError:
        classes = ()
    for cls in classes:
        if issubclass(cls, TokenAuthentication) and cls.query_param:
            warnings.append(
                checks.Warning(
                    f"{cls.__qualname__} reads tokens from the URL (?{cls.query_param}=): "
                    "they end up in access logs.",
                    hint="Send tokens as a WebSocket subprotocol (docs/bindings.md).",
                    id="syncbind.W012",
                )
            )
    return warnings


@checks.register("syncbind")
def check_channel_layer_backends(app_configs=None, **kwargs):
    """Every configured channel layer's BACKEND imports (syncbind.E012).

    Channels imports a backend only when the layer is first used: a site without
    channels-redis installed would pass ``check`` and then fail its first request.
    """
    errors = []
    for alias, config in (getattr(settings, "CHANNEL_LAYERS", None) or {}).items():
        backend = (config or {}).get("BACKEND", "")
        try:
            import_string(backend)
        except ImportError as exc:
            errors.append(
                checks.Error(
                    f"CHANNEL_LAYERS[{alias!r}] names the backend {backend!r}, which cannot be "
                    f"imported: {exc}.",
                    hint="Install the package that provides it (channels-redis: pip install "
                    "'syncbind[redis]') or correct the path: without its channel layer the site "
                    "fails at the first page or push.",
                    id="syncbind.E012",
                )
            )
    return errors


@checks.register("syncbind", deploy=True)
def check_channel_layer(app_configs=None, **kwargs):
    """The in-memory layer keeps pushes inside one process (syncbind.W013, ``check --deploy``).

    A deployment check only: Django's test runner turns DEBUG off and runs ``check``,
    where one process and the in-memory layer are what a test run wants.
    """
    if settings.DEBUG:
        return []
    layers = getattr(settings, "CHANNEL_LAYERS", {}) or {}
    backend = (layers.get(api_settings.CHANNEL_LAYER) or {}).get("BACKEND", "")
    if backend.endswith("InMemoryChannelLayer"):
        return [
            checks.Warning(
                "The in-memory channel layer reaches only the process it lives in: with several "
                "server processes, changes made in one are never pushed to the others.",
                hint="Use channels-redis (syncbind.layers.redis_channel_layer) in production.",
                id="syncbind.W013",
            )
        ]
    return []


def _bound_databases() -> set[str]:

    aliases = set()
    for binding in registry.all():
        try:
            aliases.add(router.db_for_write(binding.get_model()))
        except Exception:  # a binding the other checks report
            continue
    return aliases


@checks.register("syncbind")
def check_capture_backend(app_configs=None, **kwargs):
    """Capture is off, or the database cannot capture (syncbind.W016, syncbind.W018).

    An in-memory SQLite database is left out: it is the test database Django's test
    runner makes for a SQLite project (the runner checks after making it), where
    model signals push and a warning on every test run would say nothing about the
    site.
    """
    found = []
    for alias in sorted(_bound_databases()):
        connection: Any = connections[alias]
        if connection.vendor == "sqlite" and connection.is_in_memory_db():
            continue
        if not triggers.supported(alias):
            found.append(
                checks.Warning(
                    f"The database {alias!r} ({connections[alias].vendor}) has no change "
                    "capture: only writes that send model signals (save(), delete(), "
                    "many-to-many changes) are pushed; QuerySet.update(), bulk_create() and "
                    "other programs' writes are not.",
                    hint="Call syncbind.notify_update() for bulk writes, or use PostgreSQL or "
                    "SQLite (docs/subscriptions.md).",
                    id="syncbind.W018",
                )
            )
        elif not api_settings.CAPTURE:
            found.append(
                checks.Warning(
                    f"Change capture is off (SYNCBIND['CAPTURE'] = False) on {alias!r}: "
                    "QuerySet.update(), bulk_create(), raw SQL and other programs' writes "
                    "are not pushed.",
                    hint="Leave CAPTURE on and run manage.py migrate, which installs the triggers.",
                    id="syncbind.W016",
                )
            )
    return found


@checks.register("syncbind", checks.Tags.database)
def check_capture_triggers(app_configs=None, databases=None, **kwargs):
    """A captured table's triggers are missing or out of date (syncbind.W017; runs with
    ``check --database`` and before ``migrate``)."""
    found = []
    for alias in sorted(set(databases or ()) & _bound_databases()):
        if not capture.enabled(alias):
            continue
        try:
            absent = triggers.missing(alias)
        except Exception:  # no change table yet: migrate makes it, then the triggers
            continue
        if absent:
            names = ", ".join(sorted(table.name for table in absent))
            found.append(
                checks.Warning(
                    f"The change-capture triggers of {names} on {alias!r} are missing or out "
                    "of date: writes to these tables are pushed only when they send model "
                    "signals.",
                    hint="Run manage.py migrate (it installs the triggers of every table "
                    "bindings read).",
                    id="syncbind.W017",
                )
            )
    return found
