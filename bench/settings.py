"""Django settings of the benchmark server, one process per contender.

The environment picks the contender and its backends, so that each contender
runs in its own uvicorn process with only its own apps and signal handlers:

- ``BENCH_CONTENDER``: a name from ``bench.contenders.CONTENDERS``.
- ``BENCH_DB``: ``sqlite`` (``BENCH_SQLITE_PATH``) or ``postgres`` (``BENCH_PG_NAME``).
- ``BENCH_LAYER``: ``memory`` or ``redis`` (``BENCH_REDIS_PREFIX``).

Everything else is the same for every contender: the database options,
``CONN_MAX_AGE``, the channel layer's configuration and the session backend.
"""

import os

from syncbind.layers import redis_channel_layer

CONTENDER = os.environ.get("BENCH_CONTENDER", "syncbind-sync")
DB = os.environ.get("BENCH_DB", "sqlite")
LAYER = os.environ.get("BENCH_LAYER", "memory")

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "bench.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "bench.app",
]
if CONTENDER.startswith("syncbind"):
    # Only syncbind's servers load syncbind's app: its signal handlers would
    # otherwise run (and send to the layer) on every save in the peers' runs.
    INSTALLED_APPS.append("syncbind")
if CONTENDER == "dcrf":
    INSTALLED_APPS.append("rest_framework")

# Kept between messages for every contender alike: with Django's default of 0
# each message opens and closes a connection, which then dominates the profile.
CONN_MAX_AGE = 60

if DB == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("BENCH_PG_NAME", "syncbind_bench"),
            "USER": os.environ.get("BENCH_PG_USER", "postgres"),
            "HOST": os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("BENCH_PG_PORT", "5432"),
            "CONN_MAX_AGE": CONN_MAX_AGE,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("BENCH_SQLITE_PATH", "/tmp/syncbind-bench.sqlite3"),
            "CONN_MAX_AGE": CONN_MAX_AGE,
            # WAL and IMMEDIATE transactions with a busy timeout: several
            # threads write without "database is locked".
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

if LAYER == "redis":
    CHANNEL_LAYERS = {
        "default": redis_channel_layer(
            os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
            prefix=os.environ.get("BENCH_REDIS_PREFIX", "bench"),
        )
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

ASGI_APPLICATION = "bench.asgi.application"

# syncbind runs with its defaults (a pool of 16 threads, DjangoModelPermissions);
# BENCH_THREAD_POOL_SIZE and BENCH_MAX_RUNNING_THREADS override the pool.
# The benchmark opens its connections with one session: one user holds them all, so
# the limits per user are off (where many users hold them, each has a few). With
# MAX_SUBSCRIPTION_KEYS_PER_USER's 300, 50 connections retrieving random rows of 1,000
# were refused now and then, and every subscription walked all 50 connections' keys.
SYNCBIND: dict = {"MAX_CONNECTIONS_PER_USER": None, "MAX_SUBSCRIPTION_KEYS_PER_USER": None}
if os.environ.get("BENCH_THREAD_POOL_SIZE"):
    SYNCBIND["THREAD_POOL_SIZE"] = int(os.environ["BENCH_THREAD_POOL_SIZE"])
if os.environ.get("BENCH_MAX_RUNNING_THREADS"):
    SYNCBIND["MAX_RUNNING_THREADS"] = int(os.environ["BENCH_MAX_RUNNING_THREADS"])
# BENCH_STATEMENT_HANDOFF: the pool's statement hand-off, for experiments (0: at once).
if os.environ.get("BENCH_STATEMENT_HANDOFF"):
    SYNCBIND["STATEMENT_HANDOFF"] = float(os.environ["BENCH_STATEMENT_HANDOFF"])
# The scoped fan-out's servers re-read users less often (bench.run.SCOPED_USER_REFRESH).
if os.environ.get("BENCH_USER_REFRESH_INTERVAL"):
    SYNCBIND["USER_REFRESH_INTERVAL"] = float(os.environ["BENCH_USER_REFRESH_INTERVAL"])
# The change-capture scenario's second SQLite server looks for commits more often.
if os.environ.get("BENCH_CAPTURE_POLL_INTERVAL"):
    SYNCBIND["CAPTURE_POLL_INTERVAL"] = float(os.environ["BENCH_CAPTURE_POLL_INTERVAL"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # BENCH_DEBUG_LIVE=1: how long each fan-out takes, in the server's log.
    "loggers": {
        "syncbind._live": {"level": "DEBUG" if os.environ.get("BENCH_DEBUG_LIVE") else "WARNING"}
    },
}
