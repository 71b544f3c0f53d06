import pytest

from syncbind.testing import connect
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


async def test_retrieve_roundtrip(superuser, db_call):
    product = await db_call(factories.ProductFactory)
    async with connect(superuser) as client:
        reply = await client.send_event("testapp.Product.retrieve", {"id": product.pk})
    assert reply["data"]["name"] == product.name
