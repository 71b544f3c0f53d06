"""Helpers for tests that run syncbind as a real system: server processes, a dedicated
PostgreSQL database, a Redis prefix of their own, and a websockets client.

See tests/e2e/test_distributed.py for how the databases are set up.
"""

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager

from tests.servers import ROOT, require_services

TIMEOUT = 10  # seconds to wait for any one message; generous, never asserted on

# A superuser, its token and four products (three in one category), made by a child
# `django shell` and printed as JSON (tests/e2e/test_distributed.py, tests/capture/test_capture_servers.py).
SEED = """
import json
from decimal import Decimal
from syncbind.authentication import make_token
from tests.factories import CategoryFactory, ProductFactory, SuperUserFactory
user = SuperUserFactory()
cheap = CategoryFactory(name="cheap things")
shared = ProductFactory(name="shared", price=Decimal("5.00"), category=cheap)
other = ProductFactory(name="other", price=Decimal("7.00"), category=cheap)
ProductFactory(name="dear", price=Decimal("500.00"), category=cheap)
ProductFactory(name="elsewhere", price=Decimal("1.00"))
print(json.dumps({
    "token": make_token(user), "shared": shared.pk, "other": other.pk, "category": cheap.pk,
}))
"""


def _pg_dsn(dbname):
    return (
        f"host={os.environ.get('SYNCBIND_PG_HOST', '127.0.0.1')} "
        f"port={os.environ.get('SYNCBIND_PG_PORT', '5432')} "
        f"user={os.environ.get('SYNCBIND_PG_USER', 'postgres')} dbname={dbname}"
    )


def _psql(*statements):
    import psycopg

    with psycopg.connect(_pg_dsn("postgres"), autocommit=True) as conn:
        for sql, params in statements:
            conn.execute(sql, params)


def _drop_database(name):
    # Terminate what is left connected (works on every PostgreSQL version), then drop.
    _psql(
        (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ),
        (f'DROP DATABASE IF EXISTS "{name}"', None),
    )


def _forget_redis_keys(env):
    import redis

    client = redis.Redis.from_url(env.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        keys = list(client.scan_iter(match=f"{env['SYNCBIND_REDIS_PREFIX']}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def run_child(env, *args):
    """Run ``python -m django <args>`` in a child process; return its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"django {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def shell(env, code):
    """Run ``code`` in a separate ``django shell`` process; return what it printed."""
    return run_child(env, "shell", "-c", code)


@contextmanager
def make_shared_env(redis_url=None):
    """A dedicated PostgreSQL database and Redis prefix, as an environment for child processes."""
    require_services()
    name = f"syncbind_dist_{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "SYNCBIND_TEST_DB": "postgres",
        "SYNCBIND_PG_NAME": name,
        "SYNCBIND_TEST_LAYER": "redis",
        "SYNCBIND_REDIS_PREFIX": f"syncbind-dist-{uuid.uuid4().hex[:12]}",
        "SYNCBIND_TEST_TOKEN_AUTH": "1",
        **({"REDIS_URL": redis_url} if redis_url else {}),
    }
    _psql((f'CREATE DATABASE "{name}"', None))
    try:
        run_child(env, "migrate", "-v0")
        yield env
    finally:
        _drop_database(name)
        _forget_redis_keys(env)
