"""Settings of the syncbind sample site: a demo, not a production configuration.

Environment variables:

- ``SAMPLE_SITE_DB``: the SQLite file (default ``sample_site/db.sqlite3``).
- ``REDIS_URL``: use channels-redis at this URL instead of the in-memory
  channel layer (``make demo`` installs it: the ``redis`` extra).
- ``SAMPLE_SITE_DEBUG``: ``0`` turns DEBUG off (then static files are not served).
- ``SAMPLE_SITE_ALLOWED_HOSTS``: comma-separated. (Session WebSocket handshakes are
  accepted from the site's own pages, token ones from any origin: asgi.py.)
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("SAMPLE_SITE_SECRET_KEY", "sample-site-demo-only-not-a-secret")
DEBUG = os.environ.get("SAMPLE_SITE_DEBUG", "1") != "0"
ALLOWED_HOSTS = os.environ.get("SAMPLE_SITE_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "syncbind",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "sample_site.urls"
ASGI_APPLICATION = "sample_site.asgi.application"
WSGI_APPLICATION = "sample_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite, written by several syncbind worker threads at once: WAL lets readers
# and one writer work together, IMMEDIATE transactions take the write lock up
# front, and the timeout makes a waiting writer retry instead of failing.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SAMPLE_SITE_DB", str(BASE_DIR / "db.sqlite3")),
        # Each syncbind worker thread keeps its connection between messages
        # (docs/deployment.md); the default 0 would reopen it for every message.
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}

if os.environ.get("REDIS_URL"):
    from syncbind.layers import redis_channel_layer

    # Safe pool and socket settings for channels-redis on redis-py 8 (see docs/deployment.md).
    CHANNEL_LAYERS = {"default": redis_channel_layer(os.environ["REDIS_URL"])}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Session users and Django model permissions are syncbind's defaults, spelled out
# here, plus tokens for programs (``manage.py demo_edit`` uses the HTTP API with one);
# the worker pool is smaller than the default 16 threads.
SYNCBIND = {
    "AUTHENTICATION_CLASSES": [
        "syncbind.authentication.SessionAuthentication",
        "syncbind.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["syncbind.permissions.DjangoModelPermissions"],
    "THREAD_POOL_SIZE": 8,
}

AUTH_PASSWORD_VALIDATORS = []  # demo users have demo passwords
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "index"
LOGOUT_REDIRECT_URL = "index"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
