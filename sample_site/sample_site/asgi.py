"""The sample site's ASGI application: Django over HTTP, syncbind on ``/ws/``."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sample_site.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

# Set Django up before anything below imports models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import path  # noqa: E402

from syncbind import BindingConsumer  # noqa: E402
from syncbind.origins import SessionOriginValidator  # noqa: E402

# uvicorn does not serve static files; in DEBUG Django does (the admin needs them).
http_app = ASGIStaticFilesHandler(django_asgi_app) if settings.DEBUG else django_asgi_app

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": SessionOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/", BindingConsumer.as_asgi())]))
        ),
    }
)
