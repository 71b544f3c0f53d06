from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "bench.app"
    label = "benchapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import counter

        connection_created.connect(counter.install, dispatch_uid="bench-query-counter")
