from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "bench.app"
    label = "benchapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import counter, delay

        connection_created.connect(counter.install, dispatch_uid="bench-query-counter")
        # After the counter: a statement is counted as it is sent, then waits.
        connection_created.connect(delay.install, dispatch_uid="bench-query-delay")
