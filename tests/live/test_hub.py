"""Live subscriptions in one process: what is pushed, when, to whom, and at what cost.

Every test runs against BindingConsumer and AsyncBindingConsumer (the ``make_client``
fixture). Writes come from other connections, from plain ORM code in the test,
or from ``syncbind.notify`` — the push path is the same.
"""

import asyncio
from decimal import Decimal

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.db import transaction

from syncbind import notify, notify_update
from syncbind._live.hub import get_hub
from syncbind._live.keys import group_name
from syncbind.testing import settle
from tests import factories
from tests.rows import product_row
from tests.testapp.models import Category, Note, Product, Tag

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCT = "testapp.Product"


# -- instances ---------------------------------------------------------------------------


async def test_original_example_user_rename_reaches_both_subscribers(
    make_client, superuser, db_call
):
    user = await db_call(factories.UserFactory, id=5763, username="before")
    a = await make_client(superuser)
    b = await make_client(superuser)
    retrieved = await a.send_event("auth.User.retrieve", {"id": 5763})
    assert retrieved["data"]["username"] == "before"
    await b.send_event("auth.User.retrieve", {"id": 5763})

    reply = await b.send_event("auth.User.update", {"id": 5763, "username": "Changed Username"})
    expected = {**retrieved["data"], "username": "Changed Username"}
    assert reply["data"] == {"success": True, "id": user.pk, "row": expected}
    assert await a.receive_push("auth.User.retrieve") == {
        "event": "auth.User.retrieve",
        "data": expected,
    }
    assert await b.receive_push("auth.User.retrieve") == {
        "event": "auth.User.retrieve",
        "data": expected,
    }
    await a.assert_nothing_more()
    await b.assert_nothing_more()


async def test_save_from_plain_orm_code_pushes_fresh_row(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve#mine", {"id": product.pk})

    def change():
        product.price = Decimal("99.50")
        product.save()
        return product_row(product)

    expected = await db_call(change)
    push = await client.receive_push(f"{PRODUCT}.retrieve#mine")
    assert push == {"event": f"{PRODUCT}.retrieve#mine", "data": expected}
    assert push["data"]["price"] == "99.50"
    await client.assert_nothing_more()


async def test_delete_pushes_delete_event_with_tag(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory)
    pk = product.pk
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve#t1", {"id": pk})
    await db_call(product.delete)
    assert await client.receive_push(f"{PRODUCT}.delete#t1") == {
        "event": f"{PRODUCT}.delete#t1",
        "data": {"id": pk},
    }
    await client.assert_nothing_more()


async def test_failed_re_read_keeps_the_subscription_and_the_delete_on_its_way(
    make_client, superuser, db_call, monkeypatch
):
    """The row is deleted and read again before the hub has processed the delete: the
    read answers not_found, and the delete push still follows."""
    product = await db_call(factories.ProductFactory)
    pk = product.pk
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": pk})
    hub = get_hub()
    gate = asyncio.Event()
    process = hub.process

    async def held(message):
        await gate.wait()
        await process(message)

    monkeypatch.setattr(hub, "process", held)
    await db_call(product.delete)
    reply = await client.send_event(f"{PRODUCT}.retrieve", {"id": pk})
    assert reply["error"]["code"] == "not_found"
    assert hub.subscriber_count(PRODUCT) == 1
    gate.set()
    assert await client.receive_push(f"{PRODUCT}.delete") == {
        "event": f"{PRODUCT}.delete",
        "data": {"id": pk},
    }
    await client.assert_nothing_more()


async def test_failed_re_read_after_the_delete_keeps_following_the_row(
    make_client, superuser, db_call
):
    product = await db_call(factories.ProductFactory)
    pk = product.pk
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": pk})
    await db_call(product.delete)
    await client.receive_push(f"{PRODUCT}.delete")
    reply = await client.send_event(f"{PRODUCT}.retrieve", {"id": pk})
    assert reply["error"]["code"] == "not_found"
    again = await db_call(factories.ProductFactory, id=pk)
    assert await client.receive_push(f"{PRODUCT}.retrieve") == {
        "event": f"{PRODUCT}.retrieve",
        "data": await db_call(product_row, again),
    }
    await client.assert_nothing_more()


async def test_unchanged_save_pushes_nothing(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    await db_call(product.save)
    await client.assert_nothing_more()


async def test_opt_out_per_request(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    reply = await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk, "subscribe": False})
    assert reply["data"]["id"] == product.pk
    await db_call(Product.objects.filter(pk=product.pk).update, name="quiet")
    await db_call(notify, Product, pks=[product.pk])
    await client.assert_nothing_more()


async def test_binding_without_auto_subscribe(make_client, superuser, db_call, monkeypatch):
    from tests.testapp.bindings import ProductBinding

    monkeypatch.setattr(ProductBinding, "auto_subscribe", False)
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    await db_call(Product.objects.filter(pk=product.pk).update, name="quiet")
    await db_call(notify, Product, pks=[product.pk])
    await client.assert_nothing_more()
    # An explicit subscribe still works.
    assert (await client.send_event(f"{PRODUCT}.subscribe", {"id": product.pk}))["data"] == {
        "success": True
    }
    await db_call(Product.objects.filter(pk=product.pk).update, name="loud")
    await db_call(notify, Product, pks=[product.pk])
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["name"] == "loud"


async def test_post_save_retrieve_false_pushes_deletes_only(
    make_client, superuser, db_call, monkeypatch
):
    from tests.testapp.bindings import ProductBinding

    monkeypatch.setattr(ProductBinding, "post_save_retrieve", False)
    product = await db_call(factories.ProductFactory)
    pk = product.pk
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": pk})
    await db_call(Product.objects.filter(pk=pk).update, name="silent")
    await db_call(notify, Product, pks=[pk])
    await client.assert_nothing_more()
    await db_call(Product.objects.filter(pk=pk).delete)
    await db_call(notify, Product, pks=[pk], deleted=True)
    assert await client.receive_push(f"{PRODUCT}.delete") == {
        "event": f"{PRODUCT}.delete",
        "data": {"id": pk},
    }


# -- transactions ------------------------------------------------------------------------


async def test_rollback_pushes_nothing(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})

    def change_then_fail():
        with pytest.raises(RuntimeError), transaction.atomic():
            Product.objects.get(pk=product.pk).save()
            product.name = "never"
            product.save()
            raise RuntimeError

    await db_call(change_then_fail)
    await client.assert_nothing_more()


async def test_savepoint_rollback_keeps_outer_changes(make_client, superuser, db_call):
    kept = await db_call(factories.ProductFactory)
    dropped = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve#kept", {"id": kept.pk})
    await client.send_event(f"{PRODUCT}.retrieve#dropped", {"id": dropped.pk})

    def work():
        with transaction.atomic():
            kept.name = "kept change"
            kept.save()
            try:
                with transaction.atomic():
                    dropped.name = "dropped change"
                    dropped.save()
                    raise ValueError
            except ValueError:
                pass

    await db_call(work)
    assert (await client.receive_push(f"{PRODUCT}.retrieve#kept"))["data"]["name"] == "kept change"
    await client.assert_nothing_more()


async def test_several_saves_in_one_transaction_push_once_with_final_state(
    make_client, superuser, db_call
):
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})

    def many_saves():
        with transaction.atomic():
            for step in range(5):
                # A fresh Python object each time: de-duplicated by model and pk.
                obj = Product.objects.get(pk=product.pk)
                obj.stock = step + 1
                obj.save()

    await db_call(many_saves)
    push = await client.receive_push(f"{PRODUCT}.retrieve")
    assert push["data"]["stock"] == 5
    await client.assert_nothing_more()


async def test_push_is_sent_after_commit_only(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    seen_inside = []
    from syncbind._live.hub import get_hub

    hub = get_hub()

    def commit_later():
        with transaction.atomic():
            product.name = "committed"
            product.save()
            # Still inside the transaction: nothing may have been announced yet.
            queue = getattr(get_channel_layer(), "channels", {}).get(hub.channel)
            seen_inside.append(len(queue._queue) if queue is not None else 0)

    await db_call(commit_later)
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["name"] == "committed"
    if seen_inside and hasattr(get_channel_layer(), "channels"):
        assert seen_inside == [0]


# -- pages ---------------------------------------------------------------------------------


async def test_list_page_is_pushed_again_under_its_own_event(make_client, superuser, db_call):
    cheap = await db_call(factories.ProductFactory, price=Decimal("5.00"), name="a cheap")
    await db_call(factories.ProductFactory, price=Decimal("500.00"), name="b dear")
    client = await make_client(superuser)
    request = {"filters": {"price__lt": "10"}, "ordering": "name", "limit": 10}
    first = await client.send_event(f"{PRODUCT}.list#cheap", request)
    assert [r["id"] for r in first["data"]["rows"]] == [cheap.pk]

    added = await db_call(factories.ProductFactory, price=Decimal("7.00"), name="c cheap too")
    push = await client.receive_push(f"{PRODUCT}.list#cheap")
    assert push["event"] == f"{PRODUCT}.list#cheap"
    assert push["data"]["page"] == 1 and push["data"]["limit"] == 10 and push["data"]["count"] == 2
    assert [r["id"] for r in push["data"]["rows"]] == [cheap.pk, added.pk]
    await client.assert_nothing_more()


async def test_change_outside_the_page_pushes_nothing(make_client, superuser, db_call):
    await db_call(factories.ProductFactory, price=Decimal("5.00"))
    dear = await db_call(factories.ProductFactory, price=Decimal("500.00"))
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.list#cheap", {"filters": {"price__lt": "10"}})
    dear.name = "renamed dear"
    await db_call(dear.save)
    await client.assert_nothing_more()


async def test_two_tagged_lists_receive_only_their_own_updates(make_client, superuser, db_call):
    await db_call(factories.ProductFactory, price=Decimal("5.00"))
    dear = await db_call(factories.ProductFactory, price=Decimal("500.00"))
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.list#cheap", {"filters": {"price__lt": "10"}})
    await client.send_event(f"{PRODUCT}.list#dear", {"filters": {"price__gt": "100"}})
    dear.name = "changed"
    await db_call(dear.save)
    push = await client.receive_push(f"{PRODUCT}.list#dear")
    assert [r["name"] for r in push["data"]["rows"]] == ["changed"]
    await client.assert_nothing_more()


async def test_search_page_is_live(make_client, superuser, db_call):
    await db_call(factories.ProductFactory, name="red chair")
    client = await make_client(superuser)
    first = await client.send_event(f"{PRODUCT}.search#q", {"query": "chair"})
    assert first["data"]["count"] == 1
    await db_call(factories.ProductFactory, name="blue chair")
    push = await client.receive_push(f"{PRODUCT}.search#q")
    assert push["data"]["count"] == 2
    await db_call(factories.ProductFactory, name="table")
    await client.assert_nothing_more()


async def test_deleting_a_row_updates_the_page(make_client, superuser, db_call):
    first_row = await db_call(factories.ProductFactory)
    second_row = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.list", {})
    await db_call(first_row.delete)
    push = await client.receive_push(f"{PRODUCT}.list")
    assert [r["id"] for r in push["data"]["rows"]] == [second_row.pk]
    assert push["data"]["count"] == 1


# -- explicit subscribe / unsubscribe ------------------------------------------------------


async def test_subscribe_to_a_page_replies_with_the_page(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory, price=Decimal("3.00"))
    client = await make_client(superuser)
    reply = await client.send_event(f"{PRODUCT}.subscribe#cheap", {"filters": {"price__lt": "10"}})
    assert reply["event"] == f"{PRODUCT}.subscribe#cheap"
    assert reply["data"]["count"] == 1 and reply["data"]["rows"][0]["id"] == product.pk
    await db_call(factories.ProductFactory, price=Decimal("4.00"))
    push = await client.receive_push(f"{PRODUCT}.list#cheap")
    assert push["data"]["count"] == 2


async def test_subscribe_to_a_row_outside_the_queryset_is_not_found(make_client, db_call):
    user = await db_call(factories.UserFactory)
    other_note = await db_call(factories.NoteFactory)
    client = await make_client(user)
    reply = await client.send_event("testapp.Note.subscribe", {"id": other_note.pk})
    assert reply["error"]["code"] == "not_found"
    other_note.text = "secret"
    await db_call(other_note.save)
    await client.assert_nothing_more()


async def test_unsubscribe_by_id_by_tag_and_all(make_client, superuser, db_call):
    one = await db_call(factories.ProductFactory)
    two = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": one.pk})
    await client.send_event(f"{PRODUCT}.retrieve#two", {"id": two.pk})
    await client.send_event(f"{PRODUCT}.list#page", {})

    assert (await client.send_event(f"{PRODUCT}.unsubscribe", {"id": one.pk}))["data"] == {
        "success": True
    }
    await db_call(notify, Product, pks=[one.pk])
    await client.assert_nothing_more()  # the page did not change, the row is no longer watched

    await client.send_event(f"{PRODUCT}.unsubscribe#page", {})
    two.name = "two changed"
    await db_call(two.save)
    assert (await client.receive_push(f"{PRODUCT}.retrieve#two"))["data"]["name"] == "two changed"
    await client.assert_nothing_more()

    await client.send_event(f"{PRODUCT}.unsubscribe", {})
    two.name = "two changed again"
    await db_call(two.save)
    await client.assert_nothing_more()


async def group_members(group):
    """The channels in a channel-layer group, read from the layer's own storage."""
    layer = get_channel_layer()
    if hasattr(layer, "groups"):  # in-memory layer
        return set(layer.groups.get(group, {}))
    connection = layer.connection(layer.consistent_hash(group))
    return {member.decode() for member in await connection.zrange(layer._group_key(group), 0, -1)}


async def test_last_unsubscribe_leaves_the_group(make_client, superuser, db_call):
    from syncbind._live.hub import get_hub

    product = await db_call(factories.ProductFactory)
    a = await make_client(superuser)
    b = await make_client(superuser)
    await a.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    await b.send_event(f"{PRODUCT}.list", {})
    # Joins and leaves are made on the hub's loop, after the reply: settled first.
    await settle()
    hub_channel = get_hub().channel
    # One member, the process's hub, not one per client.
    assert await group_members(group_name(PRODUCT)) == {hub_channel}
    await a.send_event(f"{PRODUCT}.unsubscribe", {})
    await settle()
    assert await group_members(group_name(PRODUCT)) == {hub_channel}  # b still needs it
    await b.send_event(f"{PRODUCT}.unsubscribe", {})
    await settle()
    assert await group_members(group_name(PRODUCT)) == set()
    # Subscribing again joins again.
    await a.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    await settle()
    assert await group_members(group_name(PRODUCT)) == {get_hub().channel}


async def test_subscribing_on_a_joined_stream_stays_off_the_event_loop(
    make_client, superuser, db_call, monkeypatch
):
    """Only the first subscription of a stream hops to the loop (to start its group's
    join; waited for only with a layer of this process)."""
    from syncbind._live.hub import get_hub

    products = [await db_call(factories.ProductFactory) for _ in range(3)]
    client = await make_client(superuser)
    hub = get_hub()
    hops = []
    original = hub._on_loop
    monkeypatch.setattr(
        hub, "_on_loop", lambda coro, **kwargs: hops.append(coro) or original(coro, **kwargs)
    )
    await client.send_event(f"{PRODUCT}.retrieve", {"id": products[0].pk})
    await settle()  # the join it started has completed
    joining = len(hops)  # 1 when this subscription joined the stream's group
    assert joining <= 1 and group_name(PRODUCT) in hub.joined
    await client.send_event(f"{PRODUCT}.retrieve", {"id": products[1].pk})
    await client.send_event(f"{PRODUCT}.list", {})
    await client.send_event(f"{PRODUCT}.retrieve", {"id": products[2].pk})
    assert len(hops) == joining
    products[2].name = "renamed, group shared"
    await db_call(products[2].save)
    push = await client.receive_push(f"{PRODUCT}.retrieve")
    assert push["data"]["name"] == products[2].name


async def test_disconnect_cleans_up_everything(make_client, superuser, db_call, consumer_app):
    from syncbind._live.hub import get_hub

    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    await client.send_event(f"{PRODUCT}.list", {})
    hub = get_hub()
    assert hub.subscriber_count(PRODUCT) == 2
    await client.close()
    assert hub.subscriber_count() == 0
    await db_call(product.save)


# -- scope and permissions -------------------------------------------------------------------


async def test_row_leaving_the_users_queryset_is_pushed_as_delete(make_client, db_call):
    owner = await db_call(factories.UserFactory)
    other = await db_call(factories.UserFactory)
    note = await db_call(factories.NoteFactory, owner=owner)
    client = await make_client(owner)
    await client.send_event("testapp.Note.retrieve", {"id": note.pk})
    note.owner = other
    await db_call(note.save)
    assert await client.receive_push("testapp.Note.delete") == {
        "event": "testapp.Note.delete",
        "data": {"id": note.pk},
    }


async def test_user_scoped_pages_never_show_other_users_rows(make_client, db_call):
    alice = await db_call(factories.UserFactory)
    bob = await db_call(factories.UserFactory)
    await db_call(factories.NoteFactory, owner=alice, text="alice 1")
    client_a = await make_client(alice)
    client_b = await make_client(bob)
    assert (await client_a.send_event("testapp.Note.list", {}))["data"]["count"] == 1
    assert (await client_b.send_event("testapp.Note.list", {}))["data"]["count"] == 0
    await db_call(factories.NoteFactory, owner=alice, text="alice 2")
    push = await client_a.receive_push("testapp.Note.list")
    assert [r["text"] for r in push["data"]["rows"]] == ["alice 1", "alice 2"]
    # Bob's page did not change: he receives nothing, not even an empty page.
    await client_b.assert_nothing_more()


async def test_permission_lost_before_push_ends_the_subscription(make_client, db_call, settings):
    settings.SYNCBIND = {"USER_REFRESH_INTERVAL": 0}  # re-read the user before every push
    user = await db_call(factories.UserFactory, perms=["testapp.view_product"])
    product = await db_call(factories.ProductFactory)
    client = await make_client(user)
    assert "data" in await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    # An admin removes the permission while the connection stays open.
    await db_call(lambda: get_user_model().objects.get(pk=user.pk).user_permissions.clear())
    product.name = "secret new name"
    await db_call(product.save)
    ended = await client.receive_ended(f"{PRODUCT}.retrieve")
    assert ended["ended"]["code"] == "permission_denied" and "secret" not in str(ended)
    await client.assert_nothing_more()
    reply = await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    assert reply["error"]["code"] == "permission_denied"


async def test_deactivated_user_loses_access(make_client, db_call, settings):
    settings.SYNCBIND = {"USER_REFRESH_INTERVAL": 0}
    user = await db_call(factories.UserFactory, perms=["testapp.view_product"])
    product = await db_call(factories.ProductFactory)
    client = await make_client(user)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    await db_call(get_user_model().objects.filter(pk=user.pk).update, is_active=False)
    product.name = "not for the deactivated"
    await db_call(product.save)
    # Found out at the next push: nothing is pushed, and the socket is closed.
    assert await client.receive_close() == 4003
    assert client.pending == []


async def test_permissions_are_cached_between_refreshes(make_client, db_call, settings):
    settings.SYNCBIND = {"USER_REFRESH_INTERVAL": 3600}
    user = await db_call(factories.UserFactory, perms=["testapp.view_product"])
    product = await db_call(factories.ProductFactory)
    client = await make_client(user)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    # Behind the ORM's signals (a QuerySet.delete() on the through table): within the
    # interval the connection still holds the permissions it had (documented).
    through = get_user_model().user_permissions.through
    await db_call(lambda: through.objects.filter(user_id=user.pk).delete())
    assert "data" in await client.send_event(
        f"{PRODUCT}.retrieve", {"id": product.pk, "subscribe": False}
    )


# -- many-to-many and bulk --------------------------------------------------------------------


async def test_m2m_change_pushes_the_row(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory)
    tag = await db_call(factories.TagFactory)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    await db_call(product.tags.add, tag)
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["tags"] == [tag.pk]
    await db_call(tag.product_set.clear)
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["tags"] == []


async def test_a_queryset_update_is_pushed_by_capture_and_notify_adds_nothing(
    make_client, superuser, db_call
):
    products = [await db_call(factories.ProductFactory) for _ in range(3)]
    client = await make_client(superuser)
    for product in products:
        await client.send_event(f"{PRODUCT}.retrieve#p{product.pk}", {"id": product.pk})
    queryset = Product.objects.filter(pk__in=[p.pk for p in products[:2]])
    await db_call(queryset.update, in_stock=False)  # no model signal: the triggers saw it
    for product in products[:2]:
        push = await client.receive_push(f"{PRODUCT}.retrieve#p{product.pk}")
        assert push["data"]["in_stock"] is False
    await client.assert_nothing_more()
    await db_call(notify, queryset)  # still works; the rows did not change since
    await client.assert_nothing_more()


async def test_notify_whole_model(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    await client.send_event(f"{PRODUCT}.list", {})
    await db_call(Product.objects.update, stock=42)
    await db_call(notify, Product)
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["stock"] == 42
    assert (await client.receive_push(f"{PRODUCT}.list"))["data"]["rows"][0]["stock"] == 42


async def test_unbound_models_cost_nothing(make_client, superuser, db_call):
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.list", {})
    await db_call(factories.TagFactory)  # Tag has no binding
    await client.assert_nothing_more()


# -- cost ----------------------------------------------------------------------------------------


def _count_evaluation_queries(monkeypatch):
    """Count queries run while evaluating subscriptions (in the worker threads)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from syncbind._live import affected, fanout

    counts = []

    def counted(original):
        def run(*args, **kwargs):
            with CaptureQueriesContext(connection) as ctx:
                result = original(*args, **kwargs)
            counts.append(len(ctx.captured_queries))
            return result

        return run

    monkeypatch.setattr(fanout, "evaluate", counted(fanout.evaluate))
    monkeypatch.setattr(affected, "fetch", counted(affected.fetch))
    return counts


@pytest.mark.parametrize("subscribers", [10, 200])
async def test_one_save_costs_constant_queries_whatever_the_subscribers(
    subscribers, consumer_app, db_call, monkeypatch, settings
):
    from syncbind.testing import connect

    # Three users hold every socket: more than MAX_CONNECTIONS_PER_USER allows each.
    settings.SYNCBIND = {"MAX_CONNECTIONS_PER_USER": None}
    users = await db_call(
        lambda: [factories.UserFactory(perms=["testapp.view_product"]) for _ in range(3)]
    )
    product = await db_call(factories.ProductFactory)
    tag = await db_call(factories.TagFactory)
    await db_call(product.tags.add, tag)
    clients = []
    try:
        for index in range(subscribers):
            client = await connect(users[index % 3], application=consumer_app)
            clients.append(client)
            await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
            await client.send_event(f"{PRODUCT}.list", {"limit": 5})
        counts = _count_evaluation_queries(monkeypatch)
        product.name = "renamed for everyone"
        await db_call(product.save)
        for client in clients:
            assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"][
                "name"
            ] == "renamed for everyone"
            assert (await client.receive_push(f"{PRODUCT}.list"))["data"]["rows"][0][
                "name"
            ] == "renamed for everyone"
        # Whatever the number of subscribers: the changed row is fetched once (with its
        # tags), and both keys (the row, the page) follow from it without a query.
        assert counts == [2]
    finally:
        for client in clients:
            await client.close()


async def test_user_model_unaffected_by_unrelated_saves(make_client, superuser, db_call):
    """Saving a Category does not re-evaluate Product pages (another stream)."""
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.list", {})
    await db_call(Category.objects.create, name="fresh")
    await client.assert_nothing_more()
    assert await db_call(get_user_model().objects.count) == 1
    assert await db_call(Note.objects.count) == 0
    assert await db_call(Tag.objects.count) == 0


async def test_notify_update_pushes_the_pages_rows_leave(make_client, superuser, db_call):
    """notify(queryset) after an update names only the rows it still matches;
    notify_update reads them first, so the page they left is pushed too."""
    cheap = [await db_call(factories.ProductFactory, price=price) for price in (5, 8)]
    await db_call(factories.ProductFactory, price=20)
    client = await make_client(superuser)
    page = await client.send_event(f"{PRODUCT}.list#cheap", {"filters": {"price__lt": 10}})
    assert page["data"]["count"] == 2
    everything = await client.send_event(f"{PRODUCT}.list#all", {"ordering": "price"})
    assert everything["data"]["count"] == 3

    updated = await db_call(notify_update, Product.objects.filter(price__lt=10), price=50)

    assert updated == 2
    assert (await client.receive_push(f"{PRODUCT}.list#cheap"))["data"]["rows"] == []
    pushed = await client.receive_push(f"{PRODUCT}.list#all")
    assert [row["price"] for row in pushed["data"]["rows"]] == ["20.00", "50.00", "50.00"]
    await client.assert_nothing_more()
    assert await db_call(Product.objects.filter(pk__in=[p.pk for p in cheap], price=50).count) == 2


async def test_notify_update_in_a_rolled_back_transaction_pushes_nothing(
    make_client, superuser, db_call
):
    from django.db import transaction

    product = await db_call(factories.ProductFactory, stock=1)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})

    def update_then_roll_back():
        with transaction.atomic():
            assert notify_update(Product.objects.filter(pk=product.pk), stock=9) == 1
            transaction.set_rollback(True)

    await db_call(update_then_roll_back)
    await client.assert_nothing_more()
    await db_call(product.refresh_from_db)
    assert product.stock == 1


class HeldJoinLayer:
    """The process's channel layer, but joining ``group`` waits for ``release`` (a Redis
    that does not answer), or fails while ``failing`` is set."""

    def __init__(self, layer, group):
        self.layer = layer
        self.group = group
        self.adding = asyncio.Event()
        self.release = asyncio.Event()
        self.failing = False
        self.attempts = 0

    def __getattr__(self, name):
        return getattr(self.layer, name)

    async def group_add(self, group, channel):
        if group == self.group:
            self.attempts += 1
            self.adding.set()
            if self.failing:
                raise ConnectionError("Connection refused.")
            await self.release.wait()
        await self.layer.group_add(group, channel)


async def test_a_first_subscription_does_not_wait_for_its_group_join(
    make_client, superuser, db_call
):
    """The reply comes while the join is pending; a change committed in that window (its
    announcement reached no hub of this process) is pushed once the join completes."""
    product = await db_call(factories.ProductFactory, name="before")
    hub = get_hub()
    layer = hub.membership._layer = HeldJoinLayer(hub.layer, group_name(PRODUCT))
    client = await make_client(superuser)
    watcher = await make_client(superuser)

    reply = await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    assert reply["data"]["name"] == "before"
    assert layer.adding.is_set() and group_name(PRODUCT) not in hub.joined  # still joining
    # Another subscription to the same row, while the join is pending, waits no more.
    reply = await watcher.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    assert reply["data"]["name"] == "before"
    product.name = "in the window"
    await db_call(product.save)

    layer.release.set()
    for subscriber in (client, watcher):
        push = await subscriber.receive_push(f"{PRODUCT}.retrieve")
        assert push["data"]["name"] == "in the window"
        await subscriber.assert_nothing_more()  # once, and nothing for what each was sent
    assert layer.attempts == 1 and group_name(PRODUCT) in hub.joined
    # Joined: later changes arrive as usual.
    product.name = "after"
    await db_call(product.save)
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["name"] == "after"


async def test_a_failed_join_is_made_again_and_catches_up(
    make_client, superuser, db_call, settings
):
    settings.SYNCBIND = {"CAPTURE": False}  # the change must come through the channel layer
    product = await db_call(factories.ProductFactory, name="before")
    hub = get_hub()
    layer = hub.membership._layer = HeldJoinLayer(hub.layer, group_name(PRODUCT))
    layer.failing = True
    layer.release.set()
    client = await make_client(superuser)
    reply = await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk})
    assert reply["data"]["name"] == "before"
    await client.assert_nothing_more()  # the join failed: the subscription stays, unjoined
    assert group_name(PRODUCT) not in hub.joined
    product.name = "during the outage"
    await db_call(product.save)

    layer.failing = False  # the layer answers again: the retry joins, and catches up
    push = await client.receive_push(f"{PRODUCT}.retrieve")
    assert push["data"]["name"] == "during the outage"
    assert layer.attempts == 2 and group_name(PRODUCT) in hub.joined
    await client.assert_nothing_more()
