"""App configs: ``"syncbind"`` autodiscovers bindings; ``SimpleSyncbindConfig`` does not."""

from __future__ import annotations

from django.apps import AppConfig


class SimpleSyncbindConfig(AppConfig):
    """syncbind without autodiscovery: register bindings yourself (``registry.register``)."""

    name = "syncbind"
    verbose_name = "syncbind"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # In ready(), as Django asks: these import models and connect signals.
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from syncbind import _capture as capture
        from syncbind import checks  # noqa: F401  (registers the system checks)
        from syncbind._live import credentials, signals
        from syncbind._workers import deadlines

        connection_created.connect(
            deadlines.connection_created, dispatch_uid="syncbind._workers.deadlines.timeout"
        )
        post_migrate.connect(
            capture.installed_on_migrate, sender=self, dispatch_uid="syncbind._capture.install"
        )
        signals.connect()
        credentials.connect()


class SyncbindConfig(SimpleSyncbindConfig):
    """The default: import every app's ``bindings`` module at startup."""

    default = True

    def ready(self) -> None:
        # In ready(): autodiscovery imports every app's bindings module.
        from syncbind._bindings.registry import autodiscover

        super().ready()
        autodiscover()
