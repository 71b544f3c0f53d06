import pytest
from asgiref.sync import sync_to_async

from tests import factories


@pytest.fixture
def superuser(transactional_db):
    return factories.SuperUserFactory()


@pytest.fixture
def db_call():
    """Run ORM code from an async test: ``await db_call(Product.objects.count)``."""

    async def call(func, *args, **kwargs):
        return await sync_to_async(func, thread_sensitive=True)(*args, **kwargs)

    return call
