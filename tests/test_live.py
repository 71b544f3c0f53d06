"""Live subscriptions on one process: what is pushed, when, and to whom."""

import pytest

from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


async def test_retrieve_subscribes_and_update_pushes(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory, name="old")
    a = await make_client(superuser)
    b = await make_client(superuser)
    first = await a.send_event("testapp.Product.retrieve", {"id": product.pk})
    reply = await b.send_event("testapp.Product.update", {"id": product.pk, "name": "new"})
    assert reply["data"]["success"] is True
    push = await a.receive_push("testapp.Product.retrieve")
    assert push == {"event": "testapp.Product.retrieve", "data": {**first["data"], "name": "new"}}
    await a.assert_nothing_more()
