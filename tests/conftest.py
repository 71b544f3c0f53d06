import pytest
from asgiref.sync import sync_to_async

from syncbind import AsyncBindingConsumer, BindingConsumer
from syncbind.testing import connect
from tests import factories

CONSUMERS = {"sync": BindingConsumer, "async": AsyncBindingConsumer}


@pytest.fixture(scope="session", autouse=True)
def _close_worker_connections(django_db_setup, django_db_blocker):
    """Close the worker threads' database connections before the test database is dropped."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    from syncbind.executor import shutdown_executor

    shutdown_executor()
    # db_call's thread (asgiref's thread-sensitive executor) keeps one too.
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture(scope="session", autouse=True)
def _forget_redis_keys():
    """Delete this run's channels-redis keys at the end of the session."""
    yield
    from django.conf import settings

    if settings.CHANNEL_LAYERS["default"]["BACKEND"] != "channels_redis.core.RedisChannelLayer":
        return
    import redis

    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    client = redis.Redis.from_url(
        settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"]
    )
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def superuser(transactional_db):
    return factories.SuperUserFactory()


@pytest.fixture
def db_call():
    """Run ORM code from an async test: ``await db_call(Product.objects.count)``."""

    async def call(func, *args, **kwargs):
        return await sync_to_async(func, thread_sensitive=True)(*args, **kwargs)

    return call


@pytest.fixture(params=sorted(CONSUMERS))
def consumer_app(request):
    """Each protocol test runs against BindingConsumer and AsyncBindingConsumer."""
    return CONSUMERS[request.param].as_asgi()


@pytest.fixture
async def make_client(consumer_app):
    """``client = await make_client(user)``: a connected SyncbindClient, closed after the test."""
    clients = []

    async def make(user=None, **kwargs):
        client = await connect(user, application=kwargs.pop("application", consumer_app), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def shared_env():
    """A dedicated PostgreSQL database and Redis prefix for server processes (tests/livesystem.py)."""
    from tests.livesystem import make_shared_env

    with make_shared_env() as env:
        yield env
