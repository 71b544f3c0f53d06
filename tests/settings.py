"""Django settings for syncbind's own test suite.

Backends are picked by environment variables, so the same suite runs on
SQLite + the in-memory channel layer (default) and on PostgreSQL +
channels-redis (``SYNCBIND_TEST_DB=postgres SYNCBIND_TEST_LAYER=redis``);
``SYNCBIND_TEST_DB=mariadb`` is for tests/e2e/test_mariadb.py's child processes.
"""

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "syncbind-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "syncbind",
    "tests.testapp",
    "tests.pkgapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.urls"
ASGI_APPLICATION = "tests.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
AUTH_USER_MODEL = "testapp.User"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DB = os.environ.get("SYNCBIND_TEST_DB", "sqlite")
if DB == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("SYNCBIND_PG_NAME", "syncbind"),
            "USER": os.environ.get("SYNCBIND_PG_USER", "postgres"),
            "HOST": os.environ.get("SYNCBIND_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("SYNCBIND_PG_PORT", "5432"),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            # One test database per run, so that concurrent runs on one machine never collide.
            "TEST": {
                "NAME": os.environ.get("SYNCBIND_TEST_DB_NAME", f"test_syncbind_{os.getpid()}")
            },
        }
    }
elif DB == "mariadb":
    # No change capture on this backend (tests/e2e/test_mariadb.py runs child processes on
    # a database of its own). PyMySQL is pure Python: it installs without MariaDB's
    # headers, and from 1.2 on reports a mysqlclient version Django 5.2-6.1 accept.
    import pymysql

    pymysql.install_as_MySQLdb()
    _mariadb_name = os.environ.get("SYNCBIND_TEST_DB_NAME", f"test_syncbind_{os.getpid()}")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": _mariadb_name,
            "USER": "root",
            "HOST": "127.0.0.1",
            "PORT": "3306",
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {"NAME": _mariadb_name},
        }
    }
else:
    # A file, not an in-memory database: worker threads and server processes
    # started by the tests must see the same rows. WAL + IMMEDIATE + a busy
    # timeout let several writer threads share it without "database is locked".
    _sqlite_file = os.environ.get(
        "SYNCBIND_TEST_DB_NAME",
        str(Path(tempfile.gettempdir()) / f"syncbind-test-{os.getpid()}.sqlite3"),
    )
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _sqlite_file,
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            "TEST": {"NAME": _sqlite_file},
        }
    }

LAYER = os.environ.get("SYNCBIND_TEST_LAYER", "memory")
if LAYER == "redis":
    from syncbind.layers import redis_channel_layer

    # One prefix per test run (inherited by the server processes the tests start),
    # so runs never see each other's groups.
    # A pytest-xdist worker inherits its controller's prefix and adds its own name.
    _prefix = os.environ.get("SYNCBIND_REDIS_PREFIX") or f"syncbind-test-{os.getpid()}"
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if _worker and not _prefix.endswith(f"-{_worker}"):
        _prefix = f"{_prefix}-{_worker}"
    os.environ["SYNCBIND_REDIS_PREFIX"] = _prefix

    CHANNEL_LAYERS = {
        "default": redis_channel_layer(
            os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            prefix=os.environ["SYNCBIND_REDIS_PREFIX"],
        )
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.contrib.auth.context_processors.auth"]},
    }
]

SYNCBIND = {
    "THREAD_POOL_SIZE": int(os.environ.get("SYNCBIND_TEST_THREAD_POOL_SIZE", 16)),
    # Load tests and server processes open hundreds of sockets as one user
    # (tests/test_load.py); tests of the limit set it themselves.
    "MAX_CONNECTIONS_PER_USER": None,
}
if os.environ.get("SYNCBIND_TEST_MAX_OUTGOING_BYTES"):
    SYNCBIND["MAX_OUTGOING_BYTES"] = int(os.environ["SYNCBIND_TEST_MAX_OUTGOING_BYTES"])
if os.environ.get("SYNCBIND_TEST_TOKEN_AUTH"):
    # Server processes started by end-to-end tests also accept token connections.
    SYNCBIND["AUTHENTICATION_CLASSES"] = [
        "syncbind.authentication.SessionAuthentication",
        "syncbind.authentication.TokenAuthentication",
    ]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"syncbind": {"handlers": ["console"], "level": "WARNING"}},
}
