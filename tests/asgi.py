"""The ASGI application the end-to-end tests serve with uvicorn."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from syncbind import AsyncBindingConsumer, BindingConsumer  # noqa: E402
from syncbind.origins import SessionOriginValidator  # noqa: E402

websocket_urls = [
    path("ws/", BindingConsumer.as_asgi()),
    path("ws/async/", AsyncBindingConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": AuthMiddlewareStack(URLRouter(websocket_urls))}
)

# The README's routing: session handshakes same-site only, tokens from any origin.
guarded_application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SessionOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urls))),
    }
)
