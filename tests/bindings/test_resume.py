"""[syncbind/bindings.py: resumed, syncbind/capture] A reconnecting client resumes without refetching (issue 23, point 2).

Every reply and push of a subscription carries a version: the change-log
position its state reflects. A client that reconnects sends each subscribing
read again with the version of the data it holds; the reply says
``"resume": "unchanged"`` (no data, and the rows are not read), ``"changed"``
or ``"expired"`` (the current data, as any reply).
"""

import pytest

from syncbind._capture import log as capture_log
from syncbind._capture.follower import follower_for
from syncbind._reads import execution
from syncbind.testing import connect, settle
from tests import factories
from tests.testapp.models import Product

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCT = "testapp.Product"
LIST = f"{PRODUCT}.list"
ROW = f"{PRODUCT}.retrieve"


@pytest.fixture
def counted(monkeypatch):
    """How many times rows were read for a request, and the log asked what changed."""
    found = {"reads": 0, "log": 0}
    execute_one = execution.execute_one

    def reading(*args, **kwargs):
        found["reads"] += 1
        return execute_one(*args, **kwargs)

    def asking(original):
        def ask(self, version):
            found["log"] += 1
            return original(self, version)

        return ask

    monkeypatch.setattr(execution, "execute_one", reading)
    for log_class in (capture_log.SqliteLog, capture_log.PostgresLog):
        monkeypatch.setattr(log_class, "tables_since", asking(log_class.tables_since))
    return found


async def following(user, product, application=None):
    client = await connect(user, application=application)
    row = await client.send_event(ROW, {"id": product.pk})
    page = await client.send_event(LIST, {"filters": {"category": product.category_id}})
    assert row["data"]["name"] == product.name and page["data"]["count"] == 1
    return client


async def test_replies_and_pushes_carry_the_version_their_state_reflects(superuser, db_call):
    product = await db_call(factories.ProductFactory, name="first")
    client = await following(superuser, product)
    first = dict(client.versions)
    assert set(first) == {ROW, LIST}
    await db_call(Product.objects.filter(pk=product.pk).update, name="second")
    await client.receive_push(ROW)
    await client.receive_push(LIST)
    assert client.versions[ROW] != first[ROW] and client.versions[LIST] != first[LIST]
    await client.close()


async def test_a_client_resuming_unchanged_subscriptions_gets_no_data_and_reads_no_row(
    superuser, db_call, counted
):
    product = await db_call(factories.ProductFactory, name="first")
    before = await following(superuser, product)
    versions = dict(before.versions)
    await before.close()
    await settle()

    after = await connect(superuser)
    counted.update(reads=0, log=0)
    row = await after.resume(ROW, {"id": product.pk}, versions)
    page = await after.resume(LIST, {"filters": {"category": product.category_id}}, versions)
    assert row == {"event": ROW, "request_id": row["request_id"], "resume": "unchanged"}
    assert page == {"event": LIST, "request_id": page["request_id"], "resume": "unchanged"}
    assert counted == {"reads": 0, "log": 1}  # one question to the log, shared
    # Still live: the next change is pushed.
    await db_call(Product.objects.filter(pk=product.pk).update, name="later")
    assert (await after.receive_push(ROW))["data"]["name"] == "later"
    assert [r["name"] for r in (await after.receive_push(LIST))["data"]["rows"]] == ["later"]
    await after.assert_nothing_more()
    await after.close()


async def test_a_subscription_that_changed_meanwhile_gets_the_current_data(superuser, db_call):
    product = await db_call(factories.ProductFactory, name="first")
    other = await db_call(factories.ProductFactory, name="elsewhere")
    before = await following(superuser, product)
    await before.send_event(f"{ROW}#other", {"id": other.pk})
    versions = dict(before.versions)
    await before.close()
    await db_call(Product.objects.filter(pk=product.pk).update, name="changed offline")

    after = await connect(superuser)
    row = await after.resume(ROW, {"id": product.pk}, versions)
    assert (row["resume"], row["data"]["name"]) == ("changed", "changed offline")
    # Another row of the same table counts too: "written since" is decided per table.
    untouched = await after.resume(f"{ROW}#other", {"id": other.pk}, versions)
    assert (untouched["resume"], untouched["data"]["name"]) == ("changed", "elsewhere")
    await after.close()


async def test_a_version_vouches_only_for_its_user_and_its_subscription(superuser, db_call):
    """Resuming with someone else's version, or one given for another row, reads the data
    (and checks it) as any read: nothing is taken on trust."""
    product = await db_call(factories.ProductFactory, name="first")
    second = await db_call(factories.ProductFactory, name="second")
    before = await following(superuser, product)
    versions = dict(before.versions)
    await before.close()
    await settle()

    someone = await db_call(factories.SuperUserFactory)
    other = await connect(someone)
    row = await other.resume(ROW, {"id": product.pk}, versions)
    assert (row["resume"], row["data"]["name"]) == ("expired", "first")
    await other.close()

    same = await connect(superuser)
    moved = await same.send_event(ROW, {"id": second.pk}, version=versions[ROW])
    assert (moved["resume"], moved["data"]["name"]) == ("expired", "second")
    made_up = versions[ROW].split("~")[0] + "~" + "0" * 16
    forged = await same.send_event(ROW, {"id": product.pk}, version=made_up)
    assert (forged["resume"], forged["data"]["name"]) == ("expired", "first")
    await same.close()


async def test_a_client_beyond_history_is_told_it_expired_and_gets_the_data(superuser, db_call):
    product = await db_call(factories.ProductFactory, name="first")
    before = await following(superuser, product)
    versions = dict(before.versions)
    await before.close()
    await db_call(Product.objects.filter(pk=product.pk).update, name="pruned since")
    follower = follower_for("default")
    await settle()
    assert await db_call(follower.log.prune, -1) >= 1

    after = await connect(superuser)
    row = await after.resume(ROW, {"id": product.pk}, versions)
    assert (row["resume"], row["data"]["name"]) == ("expired", "pruned since")
    foreign = await after.send_event(ROW, {"id": product.pk}, version="99999999999")
    assert foreign["resume"] == "expired" and foreign["data"]["name"] == "pruned since"
    await after.close()


async def test_a_reconnecting_crowd_with_one_version_asks_the_log_once(superuser, db_call, counted):
    product = await db_call(factories.ProductFactory, name="shared")
    before = await following(superuser, product)
    versions = dict(before.versions)
    await before.close()
    await settle()
    counted.update(reads=0, log=0)
    clients = [await connect(superuser) for _ in range(20)]
    for client in clients:
        reply = await client.resume(LIST, {"filters": {"category": product.category_id}}, versions)
        assert reply["resume"] == "unchanged" and "data" not in reply
    assert counted == {"reads": 0, "log": 1}
    for client in clients:
        await client.close()


async def test_a_malformed_version_is_refused(superuser, db_call):
    product = await db_call(factories.ProductFactory)
    client = await connect(superuser)
    reply = await client.send_event(ROW, {"id": product.pk}, version="1; DROP TABLE")
    assert reply["error"]["code"] == "bad_request"
    assert "'version'" in reply["error"]["message"]
    await client.close()
