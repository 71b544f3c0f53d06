"""[syncbind/_live/hub.py: Hub.resync] After the channel layer lost messages, every key and user is decided again.

When the hub's group receive works again after a failure (a Redis outage or a
restart that emptied it), what was announced meanwhile is gone: changes of
tables without capture, credential and permission changes. The hub then
evaluates every key again and checks every connection again, so each open
page converges to what a fresh read shows, without a reconnect.
"""

import pytest
from django.contrib.auth import get_user_model

from syncbind._live.hub import get_hub
from syncbind.testing import settle
from tests import factories
from tests.testapp.models import Product

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCT = "testapp.Product"


async def test_a_resync_pushes_what_changed_unannounced_and_nothing_else(
    make_client, superuser, db_call, settings
):
    settings.SYNCBIND = {"CAPTURE": False}  # a change only the channel layer would carry
    changed = await db_call(factories.ProductFactory, name="before")
    same = await db_call(factories.ProductFactory, name="same")
    client = await make_client(superuser)
    for product in (changed, same):
        await client.send_event(f"{PRODUCT}.retrieve#p{product.pk}", {"id": product.pk})
    await client.send_event(f"{PRODUCT}.list", {"filters": {"name__icontains": "a"}})
    # The stream's group joined, and what the join caught up on pushed: a join ending after
    # the update below would push its row, as catching up is meant to.
    await settle()
    await db_call(Product.objects.filter(pk=changed.pk).update, name="lost meanwhile")
    await client.assert_nothing_more()  # no signal, no capture: nothing announced it

    get_hub().resync()
    push = await client.receive_push(f"{PRODUCT}.retrieve#p{changed.pk}")
    assert push["data"]["name"] == "lost meanwhile"
    page = await client.receive_push(f"{PRODUCT}.list")
    assert [row["name"] for row in page["data"]["rows"]] == ["lost meanwhile", "same"]
    await client.assert_nothing_more()  # the unchanged row is not sent again


async def test_a_resync_checks_every_connection_again(make_client, db_call, settings):
    settings.SYNCBIND = {"USER_REFRESH_INTERVAL": None}  # only a message would re-read it
    user = await db_call(factories.UserFactory)
    client = await make_client(user)
    await db_call(get_user_model().objects.filter(pk=user.pk).update, is_active=False)
    await settle()
    get_hub().resync()
    assert await client.receive_close() == 4003
