"""One table of protocol cases, driven through every transport: BindingConsumer,
AsyncBindingConsumer, the HTTP envelope endpoint and the HTTP REST routes. The replies
must be identical."""

import json
from decimal import Decimal

import pytest
from django.test import AsyncClient

from syncbind import AsyncBindingConsumer, BindingConsumer
from syncbind._bindings.request import BUILTIN_ACTIONS
from syncbind.exceptions import STATUS_BY_CODE
from syncbind.testing import connect
from tests import factories
from tests.rows import product_row
from tests.testapp.models import Product

pytestmark = pytest.mark.django_db(transaction=True)

P = "testapp.Product"


async def via_websocket(consumer, user, event, data):
    async with connect(user, application=consumer.as_asgi()) as client:
        reply = await client.send_event(event, data)
    reply.pop("request_id")
    return reply


async def via_sync_consumer(user, event, data):
    return await via_websocket(BindingConsumer, user, event, data)


async def via_async_consumer(user, event, data):
    return await via_websocket(AsyncBindingConsumer, user, event, data)


async def _http_client(user):
    client = AsyncClient()
    await client.aforce_login(user)
    return client


def _check_status(response, body, created=False):
    if "error" in body:
        assert response.status_code == STATUS_BY_CODE[body["error"]["code"]]
    else:
        assert response.status_code == (201 if created else 200)


async def via_http_envelope(user, event, data):
    client = await _http_client(user)
    response = await client.post(
        "/api/events/", json.dumps({"event": event, "data": data}), content_type="application/json"
    )
    body = response.json()
    _check_status(response, body)
    return body


REST = {  # action -> (method, with the id in the path)
    "retrieve": ("get", True),
    "list": ("get", False),
    "search": ("get", False),
    "create": ("post", False),
    "update": ("patch", True),
    "save": ("put", True),
    "delete": ("delete", True),
}


async def via_http_rest(user, event, data):
    stream, action = event.rsplit(".", 1)
    if action in BUILTIN_ACTIONS and not (action in REST and (action != "save" or "id" in data)):
        # A built-in action without a route of its own (save without an id): the
        # envelope, as POST <stream>/<action>/ takes custom events only.
        return await via_http_envelope(user, event, data)
    client = await _http_client(user)
    data = dict(data)
    if action in REST and (action != "save" or "id" in data):
        method, by_id = REST[action]
        path = f"/api/{stream}/" + (f"{data.pop('id')}/" if by_id and "id" in data else "")
        if method == "get":
            params = {key: value for key, value in data.items() if key != "filters"}
            params.update(data.get("filters", {}))
            response = await client.get(path, params)
        else:
            response = await getattr(client, method)(
                path, json.dumps(data), content_type="application/json"
            )
    else:
        response = await client.post(
            f"/api/{stream}/{action}/", json.dumps(data), content_type="application/json"
        )
    body = response.json()
    _check_status(response, body, created=(action == "create" and "error" not in body))
    return {"event": event, **({"error": body["error"]} if "error" in body else {"data": body})}


TRANSPORTS = [via_sync_consumer, via_async_consumer, via_http_envelope, via_http_rest]


def _world():
    category = factories.CategoryFactory(name="Lamps")
    cheap = factories.ProductFactory(name="desk lamp", price=Decimal("9.00"), category=category)
    dear = factories.ProductFactory(name="floor lamp", price=Decimal("90.00"), category=category)
    return {"category": category, "cheap": cheap, "dear": dear}


def ok(data):
    return {"data": data}


def error(code, message, fields=None):
    return {
        "error": {
            "code": code,
            "message": message,
            **({"fields": fields} if fields is not None else {}),
        }
    }


def page(rows, count=None, page=1, limit=25):
    return {
        "page": page,
        "limit": limit,
        "count": len(rows) if count is None else count,
        "rows": rows,
    }


# (name, event, data(world), expected(world) computed after the call)
CASES = [
    (
        "retrieve",
        "retrieve",
        lambda w: {"id": w["cheap"].pk},
        lambda w: ok(product_row(w["cheap"])),
    ),
    (
        "retrieve missing",
        "retrieve",
        lambda w: {"id": 999999},
        lambda w: error("not_found", "Not found."),
    ),
    (
        "retrieve bad id",
        "retrieve",
        lambda w: {"id": "x"},
        lambda w: error("invalid", "Invalid data.", {"id": ["Invalid id."]}),
    ),
    (
        "list",
        "list",
        lambda w: {},
        lambda w: ok(page([product_row(w["cheap"]), product_row(w["dear"])])),
    ),
    (
        "list filtered",
        "list",
        lambda w: {"filters": {"price__lt": "10"}},
        lambda w: ok(page([product_row(w["cheap"])])),
    ),
    (
        "list ordered paged",
        "list",
        lambda w: {"ordering": "-price", "limit": 1, "page": 2},
        lambda w: ok(page([product_row(w["cheap"])], count=2, page=2, limit=1)),
    ),
    (
        "list bad filter",
        "list",
        lambda w: {"filters": {"owner__password__startswith": "a"}},
        lambda w: error(
            "invalid", "Invalid data.", {"owner__password__startswith": ["Unknown filter."]}
        ),
    ),
    (
        "list bad ordering",
        "list",
        lambda w: {"ordering": "stock"},
        lambda w: error("invalid", "Invalid data.", {"ordering": ["Cannot order by 'stock'."]}),
    ),
    (
        "list bad page",
        "list",
        lambda w: {"page": 0},
        lambda w: error("invalid", "Invalid data.", {"page": ["Must be a positive integer."]}),
    ),
    (
        "search",
        "search",
        lambda w: {"query": "floor lamps"},
        lambda w: ok(page([product_row(w["dear"])])),
    ),
    (
        "create",
        "create",
        lambda w: {"name": "new lamp", "price": "5.00", "category": w["category"].pk},
        lambda w: ok(
            {
                "success": True,
                "id": (p := Product.objects.get(name="new lamp")).pk,
                "row": product_row(p),
            }
        ),
    ),
    (
        "create invalid",
        "create",
        lambda w: {"name": "x"},
        lambda w: error(
            "invalid",
            "Invalid data.",
            {"price": ["This field is required."], "category": ["This field is required."]},
        ),
    ),
    (
        "create read-only",
        "create",
        lambda w: {"name": "x", "price": "1", "category": w["category"].pk, "owner": 1},
        lambda w: error("invalid", "Invalid data.", {"owner": ["This field is not writable."]}),
    ),
    (
        "update",
        "update",
        lambda w: {"id": w["cheap"].pk, "name": "renamed"},
        lambda w: ok({"success": True, "id": w["cheap"].pk, "row": product_row(w["cheap"])}),
    ),
    (
        "save existing",
        "save",
        lambda w: {"id": w["cheap"].pk, "stock": 4},
        lambda w: ok({"success": True, "id": w["cheap"].pk, "row": product_row(w["cheap"])}),
    ),
    (
        "save new",
        "save",
        lambda w: {"name": "saved", "price": "1.00", "category": w["category"].pk},
        lambda w: ok(
            {
                "success": True,
                "id": (p := Product.objects.get(name="saved")).pk,
                "row": product_row(p),
            }
        ),
    ),
    (
        "delete",
        "delete",
        lambda w: {"id": w["dear"].pk},
        lambda w: ok({"success": True, "id": w["dear"].pk}),
    ),
    (
        "custom",
        "restock",
        lambda w: {"id": w["cheap"].pk, "amount": 3},
        lambda w: ok({"success": True, "stock": 3}),
    ),
    ("custom decimal", "price_range", lambda w: {}, lambda w: ok({"min": "9.00", "max": "90.00"})),
    ("custom async", "async_echo", lambda w: {"value": 7}, lambda w: ok({"echo": 7})),
    ("custom not found", "missing", lambda w: {}, lambda w: error("not_found", "No such widget.")),
    (
        "custom invalid",
        "refuse",
        lambda w: {},
        lambda w: error("invalid", "Invalid data.", {"amount": ["Too much."]}),
    ),
    (
        "server error",
        "explode",
        lambda w: {},
        lambda w: error("server_error", "A server error occurred."),
    ),
    (
        "unknown event",
        "nosuch",
        lambda w: {},
        lambda w: error("unknown_event", f"The stream '{P}' has no event 'nosuch'."),
    ),
]


@pytest.mark.parametrize("transport", TRANSPORTS, ids=lambda t: t.__name__.removeprefix("via_"))
@pytest.mark.parametrize(
    ("name", "action", "make_data", "expected"), CASES, ids=[c[0] for c in CASES]
)
async def test_case(transport, name, action, make_data, expected, superuser, db_call):
    world = await db_call(_world)
    reply = await transport(superuser, f"{P}.{action}", make_data(world))
    assert reply == {"event": f"{P}.{action}", **(await db_call(expected, world))}


async def test_permission_and_authentication_errors_on_every_transport(db_call, settings):
    settings.SYNCBIND = {"ANONYMOUS_CONNECTION_ALLOWED": True}
    product = await db_call(factories.ProductFactory)
    user = await db_call(factories.UserFactory)
    for transport in TRANSPORTS:
        reply = await transport(user, f"{P}.retrieve", {"id": product.pk})
        assert reply == {
            "event": f"{P}.retrieve",
            **error("permission_denied", "You do not have permission to perform this action."),
        }
