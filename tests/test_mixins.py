"""[syncbind/mixins.py, syncbind/_bindings/events.py] Every builtin and custom event on the wire, through BindingConsumer and AsyncBindingConsumer."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from syncbind._transport import core
from syncbind._wire import protocol
from tests import factories
from tests.rows import product_row
from tests.testapp.models import Category, Product

pytestmark = pytest.mark.django_db(transaction=True)

P = "testapp.Product"


def strip_id(reply):
    """The reply without the request_id the test client adds."""
    return {key: value for key, value in reply.items() if key != "request_id"}


async def test_retrieve(make_client, superuser, db_call):
    tag = await db_call(factories.TagFactory)
    product = await db_call(factories.ProductFactory, price=Decimal("12.5"), tags=[tag])
    client = await make_client(superuser)
    reply = await client.send_event(f"{P}.retrieve", {"id": product.pk})
    expected = await db_call(product_row, product)
    assert reply == {"event": f"{P}.retrieve", "data": expected, "request_id": reply["request_id"]}
    assert expected["price"] == "12.50" and expected["tags"] == [tag.pk]


async def test_request_id_of_any_json_is_echoed_and_tag_kept(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    for request_id in (0, "abc", None, [1, {"x": 2}], {"k": True}):
        await client.send_raw(
            protocol.encode(
                {
                    "event": f"{P}.retrieve#my-tag_1",
                    "data": {"id": product.pk},
                    "request_id": request_id,
                }
            )
        )
        reply = await client.receive()
        assert reply["event"] == f"{P}.retrieve#my-tag_1"
        assert reply["request_id"] == request_id
        assert reply["data"]["id"] == product.pk


async def test_no_request_id_no_echo(make_client, superuser, db_call):
    client = await make_client(superuser)
    await client.send_raw(protocol.encode({"event": f"{P}.ping"}))
    assert await client.receive() == {
        "event": f"{P}.ping",
        "data": {"pong": True, "user": superuser.username},
    }


async def test_list_defaults(make_client, superuser, db_call):
    products = await db_call(lambda: [factories.ProductFactory() for _ in range(30)])
    client = await make_client(superuser)
    reply = strip_id(await client.send_event(f"{P}.list"))
    assert (
        reply["data"]["page"] == 1 and reply["data"]["limit"] == 25 and reply["data"]["count"] == 30
    )
    assert [row["id"] for row in reply["data"]["rows"]] == [p.pk for p in products[:25]]


async def test_list_page_limit_and_past_the_end(make_client, superuser, db_call):
    products = await db_call(lambda: [factories.ProductFactory() for _ in range(7)])
    client = await make_client(superuser)
    second = (await client.send_event(f"{P}.list", {"page": 2, "limit": 3}))["data"]
    assert (second["page"], second["limit"], second["count"]) == (2, 3, 7)
    assert [row["id"] for row in second["rows"]] == [p.pk for p in products[3:6]]
    past = (await client.send_event(f"{P}.list", {"page": 50, "limit": 3}))["data"]
    assert past == {"page": 50, "limit": 3, "count": 7, "rows": []}
    huge = (await client.send_event(f"{P}.list", {"page": 10**9, "limit": 100}))["data"]
    assert huge["rows"] == [] and huge["count"] == 7
    beyond = await client.send_event(f"{P}.list", {"page": 10**9 + 1})
    assert beyond["error"]["fields"] == {"page": ["Must be at most 1000000000."]}


async def test_limit_is_capped(make_client, superuser, db_call):
    await db_call(lambda: [factories.ProductFactory() for _ in range(3)])
    client = await make_client(superuser)
    data = (await client.send_event(f"{P}.list", {"limit": 10_000}))["data"]
    assert data["limit"] == 100 and data["count"] == 3


async def test_filters_and_ordering(make_client, superuser, db_call):
    cat = await db_call(factories.CategoryFactory)
    a = await db_call(factories.ProductFactory, name="b", price=Decimal("5"), category=cat)
    b = await db_call(factories.ProductFactory, name="a", price=Decimal("8"), category=cat)
    await db_call(factories.ProductFactory, name="c", price=Decimal("50"))
    client = await make_client(superuser)
    data = (
        await client.send_event(f"{P}.list", {"filters": {"price__lt": "10"}, "ordering": "name"})
    )["data"]
    assert [row["id"] for row in data["rows"]] == [b.pk, a.pk]
    data = (
        await client.send_event(
            f"{P}.list", {"filters": {"category": cat.pk}, "ordering": ["-price"]}
        )
    )["data"]
    assert [row["id"] for row in data["rows"]] == [b.pk, a.pk]
    data = (
        await client.send_event(
            f"{P}.list", {"filters": {"name__icontains": "A"}, "ordering": "-price,name"}
        )
    )["data"]
    assert [row["id"] for row in data["rows"]] == [b.pk]


async def test_search_every_word_must_match(make_client, superuser, db_call):
    chairs = await db_call(factories.CategoryFactory, name="Chairs")
    red = await db_call(factories.ProductFactory, name="red stool", category=chairs)
    await db_call(factories.ProductFactory, name="red table")
    await db_call(factories.ProductFactory, name="blue stool")
    client = await make_client(superuser)
    data = (await client.send_event(f"{P}.search", {"query": "RED chairs"}))["data"]
    assert [row["id"] for row in data["rows"]] == [red.pk] and data["count"] == 1
    data = (await client.send_event(f"{P}.search", {"query": "stool"}))["data"]
    assert data["count"] == 2


async def test_original_user_search_example(make_client, superuser, db_call):
    await db_call(lambda: [factories.UserFactory() for _ in range(101)])  # 102 with the superuser
    client = await make_client(superuser)
    await client.send_raw(protocol.encode({"event": "auth.User.search", "data": {"page": 2}}))
    reply = await client.receive()
    assert reply["event"] == "auth.User.search"
    assert {key: reply["data"][key] for key in ("page", "limit", "count")} == {
        "page": 2,
        "limit": 25,
        "count": 102,
    }
    assert len(reply["data"]["rows"]) == 25
    assert set(reply["data"]["rows"][0]) == {
        "id",
        "username",
        "first_name",
        "last_name",
        "email",
    }  # no password


async def test_create(make_client, superuser, db_call):
    category = await db_call(factories.CategoryFactory)
    tags = await db_call(lambda: [factories.TagFactory(), factories.TagFactory()])
    client = await make_client(superuser)
    reply = strip_id(
        await client.send_event(
            f"{P}.create",
            {
                "name": "lamp",
                "price": "19.90",
                "category": category.pk,
                "tags": [t.pk for t in tags],
            },
        )
    )
    product = await db_call(Product.objects.get, name="lamp")
    assert reply == {
        "event": f"{P}.create",
        "data": {"success": True, "id": product.pk, "row": await db_call(product_row, product)},
    }
    assert product.owner_id == superuser.pk  # perform_create sets it
    assert product.in_stock is True  # the model default, although the form has a checkbox


async def test_update_is_partial(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory, name="old", stock=3)
    client = await make_client(superuser)
    reply = await client.send_event(f"{P}.update", {"id": product.pk, "name": "new"})
    assert reply["data"] == {
        "success": True,
        "id": product.pk,
        "row": await db_call(product_row, product),
    }
    assert reply["data"]["row"]["name"] == "new" and reply["data"]["row"]["stock"] == 3


def test_update_saves_only_the_sent_columns(transactional_db):
    superuser = factories.SuperUserFactory()
    product = factories.ProductFactory(name="old", stock=3)
    message = protocol.parse_envelope(
        {"event": f"{P}.update", "data": {"id": product.pk, "name": "new"}}
    )
    with CaptureQueriesContext(connection) as ctx:
        reply = core.dispatch(message, core.Connection(user=superuser))
    assert reply["data"]["row"]["name"] == "new"
    updates = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1
    assert '"name"' in updates[0] and '"stock"' not in updates[0] and '"price"' not in updates[0]


async def test_save_creates_then_updates(make_client, superuser, db_call):
    category = await db_call(factories.CategoryFactory)
    client = await make_client(superuser)
    created = (
        await client.send_event(f"{P}.save", {"name": "x", "price": "1", "category": category.pk})
    )["data"]
    assert created["success"] is True and created["row"]["name"] == "x"
    updated = (await client.send_event(f"{P}.save", {"id": created["id"], "name": "y"}))["data"]
    assert updated["id"] == created["id"] and updated["row"]["name"] == "y"
    assert await db_call(Product.objects.count) == 1


async def test_delete(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory)
    client = await make_client(superuser)
    reply = strip_id(await client.send_event(f"{P}.delete", {"id": product.pk}))
    assert reply == {"event": f"{P}.delete", "data": {"success": True, "id": product.pk}}
    assert not await db_call(Product.objects.filter(pk=product.pk).exists)


async def test_custom_events(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory, stock=1, price=Decimal("3.00"))
    await db_call(factories.ProductFactory, price=Decimal("9.50"))
    client = await make_client(superuser)
    assert (await client.send_event(f"{P}.restock", {"id": product.pk, "amount": 4}))["data"] == {
        "success": True,
        "stock": 5,
    }
    assert (await db_call(Product.objects.get, pk=product.pk)).stock == 5
    # Decimal return values are encoded as strings.
    assert (await client.send_event(f"{P}.price_range"))["data"] == {"min": "3.00", "max": "9.50"}
    assert (await client.send_event(f"{P}.async_echo", {"value": [1, "a"]}))["data"] == {
        "echo": [1, "a"]
    }


async def test_custom_event_errors(make_client, superuser, db_call):
    client = await make_client(superuser)
    assert strip_id(await client.send_event(f"{P}.missing")) == {
        "event": f"{P}.missing",
        "error": {"code": "not_found", "message": "No such widget."},
    }
    assert strip_id(await client.send_event(f"{P}.refuse")) == {
        "event": f"{P}.refuse",
        "error": {
            "code": "invalid",
            "message": "Invalid data.",
            "fields": {"amount": ["Too much."]},
        },
    }
    # A message on its own is about the whole request: a list under "__all__", never
    # a string a client would read character by character.
    assert (await client.send_event(f"{P}.refuse_plainly"))["error"]["fields"] == {
        "__all__": ["Too short."]
    }


async def test_server_error_hides_details_and_rolls_back(make_client, superuser, db_call, caplog):
    client = await make_client(superuser)
    reply = strip_id(await client.send_event(f"{P}.explode"))
    assert reply == {
        "event": f"{P}.explode",
        "error": {"code": "server_error", "message": "A server error occurred."},
    }
    assert not await db_call(Category.objects.filter(name="half-written").exists)
    assert "secret internal detail" in caplog.text  # logged with the traceback, on the server
    assert (await client.send_event(f"{P}.ping"))["data"]["pong"] is True  # still connected


def _page_queries(user, limit):
    message = protocol.parse_envelope({"event": f"{P}.list", "data": {"limit": limit}})
    with CaptureQueriesContext(connection) as ctx:
        reply = core.dispatch(message, core.Connection(user=user))
    assert len(reply["data"]["rows"]) == limit
    return len(ctx.captured_queries)


def test_a_page_costs_constant_queries(transactional_db):
    superuser = factories.SuperUserFactory()
    tags = [factories.TagFactory() for _ in range(3)]
    for _ in range(50):
        factories.ProductFactory(tags=tags)
    # The rows, the count (the pages are full), then the tags: whatever the page size.
    assert _page_queries(superuser, 5) == _page_queries(superuser, 50) == 3
