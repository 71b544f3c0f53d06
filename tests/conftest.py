import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from syncbind import AsyncBindingConsumer, BindingConsumer
from syncbind._workers import executor
from tests import factories

pytest_plugins = ["syncbind.testing.plugin", "tests.stalls"]

CONSUMERS = {"sync": BindingConsumer, "async": AsyncBindingConsumer}


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
    """Run ORM code from an async test: ``await db_call(Product.objects.count)``.

    The changes it commits have been announced when it returns (the announcer sends
    them from a thread of its own): a test's setup reaches no subscription it makes
    afterwards, and each step's pushes follow from that step."""
    from syncbind._live.announcer import get_announcer

    async def call(func, *args, **kwargs):
        result = await sync_to_async(func, thread_sensitive=True)(*args, **kwargs)
        await get_announcer().drained()
        return result

    return call


@pytest.fixture(params=sorted(CONSUMERS))
def consumer_app(request):
    """Each protocol test runs against BindingConsumer and AsyncBindingConsumer."""
    return CONSUMERS[request.param].as_asgi()


@pytest.fixture
def syncbind_application(consumer_app):
    return consumer_app


@pytest.fixture
def make_client(syncbind_client):
    """``client = await make_client(user)``: syncbind.testing.plugin's client, on each consumer."""
    return syncbind_client


@pytest.fixture
def worker_statements(monkeypatch):
    """Every statement binding code ran in syncbind's worker threads from now on (the
    list grows as they run): what a request or a handshake costs, whichever worker."""
    ran: list[str] = []
    in_request_cycle = executor._in_request_cycle

    def counted(func):
        def call(*args, **kwargs):
            with CaptureQueriesContext(connection) as ctx:
                try:
                    return func(*args, **kwargs)
                finally:
                    ran.extend(query["sql"] for query in ctx.captured_queries)

        return in_request_cycle(call)

    monkeypatch.setattr(executor, "_in_request_cycle", counted)
    return ran


@pytest.fixture
def shared_env():
    """A dedicated PostgreSQL database and Redis prefix for server processes (tests/livesystem.py)."""
    from tests.livesystem import make_shared_env

    with make_shared_env() as env:
        yield env


# Fixtures that reach a database or a server: a test marked ``unit`` may use none of them.
NOT_UNIT_FIXTURES = {"db", "transactional_db", "db_call", "superuser", "live_server"}
NOT_UNIT_MARKERS = {"django_db", "e2e", "services"}


def pytest_collection_modifyitems(config, items):
    """``unit`` says what a test does not touch; refuse a test that says it and touches it."""
    for item in items:
        if item.get_closest_marker("unit") is None:
            continue
        markers = {mark.name for mark in item.iter_markers()} & NOT_UNIT_MARKERS
        fixtures = set(getattr(item, "fixturenames", ())) & NOT_UNIT_FIXTURES
        if markers or fixtures:
            raise pytest.UsageError(
                f"{item.nodeid} is marked unit but uses {sorted(markers | fixtures)}"
            )
