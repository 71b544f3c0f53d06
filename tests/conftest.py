import pytest
from asgiref.sync import sync_to_async

from syncbind import AsyncConsumer, SyncConsumer
from syncbind.testing import connect
from tests import factories

CONSUMERS = {"sync": SyncConsumer, "async": AsyncConsumer}


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
    """Each protocol test runs against SyncConsumer and AsyncConsumer."""
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
