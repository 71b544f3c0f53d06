"""The benchmark server: Django over HTTP (the harness's views) and one contender on ``/ws/``."""

import importlib
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from bench.contenders import CONTENDERS  # noqa: E402

contender = CONTENDERS[settings.CONTENDER]
consumer = importlib.import_module(contender.module).consumer()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(URLRouter([path("ws/", consumer)])),
    }
)
