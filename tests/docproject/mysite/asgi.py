import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from syncbind import BindingConsumer  # noqa: E402
from syncbind.origins import SessionOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SessionOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/", BindingConsumer.as_asgi())]))
        ),
    }
)
