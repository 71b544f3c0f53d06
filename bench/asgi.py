"""The benchmark server: Django over HTTP (the harness's views) and one contender on ``/ws/``.

The scoped fan-out connects to ``/ws/scoped/``: the contender module's
``scoped_consumer()`` when it has one (a DCRF consumer serves one model), else
the same consumer as ``/ws/``.

``BENCH_BREAK`` breaks contenders on purpose, to check that the runner records
a failing peer and goes on (tests/e2e/test_bench.py): a comma-separated list of
``<contender>:start`` (its server fails at start-up) or ``<contender>:exit``
(its server process exits on its first WebSocket connection).
"""

import importlib
import os

from bench.limits import raise_open_files

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
# Every subscriber of the scoped fan-out's largest N holds a socket in this process.
raise_open_files()

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from bench.contenders import CONTENDERS  # noqa: E402

contender = CONTENDERS[settings.CONTENDER]
breaks = {
    how
    for name, _, how in (
        entry.partition(":") for entry in os.environ.get("BENCH_BREAK", "").split(",")
    )
    if name == contender.name
}
if "start" in breaks:
    raise RuntimeError(f"BENCH_BREAK: {contender.name} told not to start")

module = importlib.import_module(contender.module)
consumer = module.consumer()
# The contender's own session-and-user stack when it has one (syncbind's reads the user
# in its worker pool), else Channels' AuthMiddlewareStack.
# (BENCH_AUTH_STACK=channels: Channels' for every contender; the storm's reference rows).
auth_stack = getattr(module, "auth_stack", AuthMiddlewareStack)
if os.environ.get("BENCH_AUTH_STACK") == "channels":
    auth_stack = AuthMiddlewareStack
scoped_consumer = module.scoped_consumer() if hasattr(module, "scoped_consumer") else consumer

if "exit" in breaks:

    async def consumer(scope, receive, send):
        print(f"BENCH_BREAK: {contender.name} exits on its first connection", flush=True)
        os._exit(3)

    scoped_consumer = consumer


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": auth_stack(
            URLRouter([path("ws/", consumer), path("ws/scoped/", scoped_consumer)])
        ),
    }
)
