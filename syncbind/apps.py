"""App configs: ``"syncbind"`` autodiscovers bindings; ``SimpleSyncbindConfig`` does not."""

from __future__ import annotations

from django.apps import AppConfig


class SimpleSyncbindConfig(AppConfig):
    """syncbind without autodiscovery: register bindings yourself (``registry.register``)."""

    name = "syncbind"
    verbose_name = "syncbind"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import (
            checks,  # noqa: F401  (registers the system checks)
            db,
        )
        from .live import credentials, signals

        connection_created.connect(db.connection_created, dispatch_uid="syncbind.db.timeout")
        signals.connect()
        credentials.connect()


class SyncbindConfig(SimpleSyncbindConfig):
    """The default: import every app's ``bindings`` module at startup."""

    default = True

    def ready(self) -> None:
        from .registry import autodiscover

        super().ready()
        autodiscover()
