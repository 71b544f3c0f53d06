"""The HTTP API: routes, statuses, authentication, CSRF, and pushes caused by HTTP writes."""

import json

import pytest
from django.test import AsyncClient, Client

from syncbind.authentication import make_token
from syncbind.testing import connect
from syncbind.throttling import HttpRateLimits, http_rate_limits
from tests import factories
from tests.permission_matrix import HTTP_ROUTES, MATRIX, USERS, P, http_expected, http_matrix
from tests.testapp.models import Category, Product

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN_AUTH = {
    "AUTHENTICATION_CLASSES": [
        "syncbind.authentication.SessionAuthentication",
        "syncbind.authentication.TokenAuthentication",
    ]
}


@pytest.fixture
def logged_in(superuser):
    client = Client()
    client.force_login(superuser)
    return client


def body(data):
    return {"data": json.dumps(data), "content_type": "application/json"}


def test_anonymous_is_refused_with_401(transactional_db):
    response = Client().get("/api/testapp.Product/")
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "not_authenticated",
            "message": "Authentication credentials were not provided.",
        }
    }


def test_anonymous_allowed_then_permission_classes_decide(transactional_db, settings):
    settings.SYNCBIND = {"ANONYMOUS_CONNECTION_ALLOWED": True}
    assert Client().get("/api/testapp.Product/").status_code == 401  # DjangoModelPermissions
    assert Client().post("/api/testapp.Product/ping/", **body({})).json() == {
        "pong": True,
        "user": None,
    }


def test_the_rate_limit_counts_a_users_http_requests_together(superuser, settings):
    """HTTP shares the WebSocket's request path: RATE_LIMIT applies per user across
    requests (per client address when signed out), whatever route carries them."""
    settings.SYNCBIND = {"RATE_LIMIT": "2/h", "ANONYMOUS_CONNECTION_ALLOWED": True}
    http_rate_limits._buckets.clear()
    browser, other = Client(), Client()
    browser.force_login(superuser)
    other.force_login(factories.SuperUserFactory())
    product = factories.ProductFactory()
    assert browser.get("/api/testapp.Product/").status_code == 200
    assert browser.get(f"/api/testapp.Product/{product.pk}/").status_code == 200
    refused = browser.post("/api/events/", **body({"event": "testapp.Product.ping"}))
    assert refused.status_code == 429
    assert refused.json()["error"] == {
        "code": "rate_limited",
        "message": "Too many requests.",
    }
    assert other.get("/api/testapp.Product/").status_code == 200  # its own bucket
    anonymous = Client(REMOTE_ADDR="203.0.113.7")
    assert [
        anonymous.post("/api/testapp.Product/ping/", **body({})).status_code for _ in range(3)
    ] == [200, 200, 429]


def test_http_rate_buckets_are_bounded(settings):
    limits = HttpRateLimits()
    limits.max_clients = 3
    for client in range(5):
        limits.for_client("1/h", client).allow()
    assert len(limits._buckets) == 3
    # The oldest were dropped: client 0 starts with a full bucket again.
    assert limits.for_client("1/h", 0).allow()
    assert not limits.for_client("1/h", 4).allow()


def test_session_writes_need_the_csrf_token(superuser):
    product = factories.ProductFactory()
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    refused = client.patch(f"/api/testapp.Product/{product.pk}/", **body({"name": "x"}))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert refused.json()["error"]["message"].startswith("CSRF failed")
    assert client.get("/api/testapp.Product/").status_code == 200  # reads need no token
    secret = "k" * 32  # a browser holds the same token in the cookie and the header
    client.cookies["csrftoken"] = secret
    accepted = client.patch(
        f"/api/testapp.Product/{product.pk}/", **body({"name": "x"}), HTTP_X_CSRFTOKEN=secret
    )
    assert accepted.status_code == 200 and accepted.json()["row"]["name"] == "x"


def test_token_header_not_parameter(settings):
    settings.SYNCBIND = TOKEN_AUTH
    user = factories.SuperUserFactory()
    product = factories.ProductFactory()
    token = make_token(user)
    by_header = Client().patch(
        f"/api/testapp.Product/{product.pk}/",
        **body({"name": "y"}),
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert by_header.status_code == 200  # no CSRF for token clients
    # Tokens in URLs end up in access logs: not read unless a subclass sets query_param.
    assert Client().get(f"/api/testapp.Product/{product.pk}/?token={token}").status_code == 401
    bad = Client().get("/api/testapp.Product/", HTTP_AUTHORIZATION="Token nope")
    assert bad.status_code == 401
    assert bad.json() == {"error": {"code": "not_authenticated", "message": "Invalid token."}}


def test_statuses(logged_in):
    product = factories.ProductFactory()
    assert logged_in.get("/api/nope.Nothing/").status_code == 404
    assert logged_in.get("/api/nope.Nothing/").json()["error"]["code"] == "unknown_event"
    assert logged_in.get("/api/testapp.Product/999999/").status_code == 404
    assert logged_in.post(
        "/api/testapp.Product/", data="{nope", content_type="application/json"
    ).json() == {"error": {"code": "bad_request", "message": "The body is not valid JSON."}}
    assert logged_in.post("/api/testapp.Product/", **body([1])).status_code == 400
    assert logged_in.post("/api/testapp.Product/explode/", **body({})).json() == {
        "error": {"code": "server_error", "message": "A server error occurred."}
    }
    assert logged_in.post("/api/testapp.Product/explode/", **body({})).status_code == 500
    assert logged_in.put("/api/testapp.Product/", **body({})).status_code == 405
    assert logged_in.get("/api/events/").status_code == 405
    created = logged_in.post(
        "/api/testapp.Product/",
        **body({"name": "n", "price": "1", "category": product.category_id}),
    )
    assert created.status_code == 201
    deleted = logged_in.delete(f"/api/testapp.Product/{created.json()['id']}/")
    assert deleted.json() == {"success": True, "id": created.json()["id"]}


def test_too_large(logged_in, settings):
    settings.SYNCBIND = {"MAX_MESSAGE_BYTES": 50}
    response = logged_in.post("/api/testapp.Product/ping/", **body({"pad": "x" * 100}))
    assert response.status_code == 413
    assert response.json() == {
        "error": {"code": "too_large", "message": "Message larger than 50 bytes."}
    }


def test_envelope_endpoint_echoes_request_id_and_event(logged_in):
    response = logged_in.post(
        "/api/events/", **body({"event": "testapp.Product.ping#t", "request_id": [1]})
    )
    assert response.json()["event"] == "testapp.Product.ping#t" and response.json()[
        "request_id"
    ] == [1]
    bad = logged_in.post(
        "/api/events/", **body({"event": "testapp.Product.ping", "data": 3, "request_id": 9})
    )
    assert bad.status_code == 400
    assert bad.json() == {
        "event": "testapp.Product.ping",
        "error": {"code": "bad_request", "message": "'data' must be a JSON object."},
        "request_id": 9,
    }


def test_list_query_parameters(logged_in):
    a = factories.ProductFactory(name="alpha", price="5")
    factories.ProductFactory(name="beta", price="50")
    data = logged_in.get(
        "/api/testapp.Product/", {"price__lt": "10", "limit": "5", "ordering": "-name"}
    ).json()
    assert (data["count"], data["limit"], [r["id"] for r in data["rows"]]) == (1, 5, [a.pk])
    assert logged_in.get("/api/testapp.Product/", {"query": "alp"}).json()["count"] == 1
    assert logged_in.get("/api/testapp.Product/", {"stock": "1"}).json()["error"]["fields"] == {
        "stock": ["Unknown filter."]
    }


async def test_http_write_pushes_to_websocket_subscribers(superuser, db_call):
    product = await db_call(factories.ProductFactory)
    async with connect(superuser) as watcher:
        first = await watcher.send_event("testapp.Product.retrieve", {"id": product.pk})
        client = AsyncClient()
        await client.aforce_login(superuser)
        response = await client.patch(
            f"/api/testapp.Product/{product.pk}/", **body({"name": "over http"})
        )
        assert response.status_code == 200
        push = await watcher.receive_push("testapp.Product.retrieve")
        assert push == {
            "event": "testapp.Product.retrieve",
            "data": {**first["data"], "name": "over http"},
        }
        assert (await db_call(Product.objects.get, pk=product.pk)).name == "over http"


@pytest.mark.parametrize("route", HTTP_ROUTES)
@pytest.mark.parametrize("kind", USERS)
def test_permissions_follow_the_action_whatever_the_route(kind, route, settings):
    """Over every route an event needs what it needs over WebSocket (tests/test_permissions.py),
    whatever the HTTP method; built-in actions have one route each, not the custom-event URL."""
    settings.SYNCBIND = {"ANONYMOUS_CONNECTION_ALLOWED": True}
    client = Client()
    if USERS[kind] is not None:
        client.force_login(factories.UserFactory(**USERS[kind]))
    seen = http_matrix(client, route, P, MATRIX, factories.ProductFactory)
    assert seen == http_expected(MATRIX, USERS, kind, route)


@pytest.mark.parametrize("kind", ["object", "instance"])
def test_an_event_reply_that_cannot_be_encoded_is_a_json_500(logged_in, kind):
    response = logged_in.post("/api/testapp.Product/unencodable/", **body({"kind": kind}))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": {"code": "server_error", "message": "A server error occurred."}
    }
    assert not Category.objects.filter(name="written before the reply").exists()


def test_an_exception_escaping_the_core_is_a_json_500(logged_in, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("syncbind._transport.core.dispatch", broken)
    for response in (
        logged_in.get("/api/testapp.Product/"),
        logged_in.post("/api/events/", **body({"event": "testapp.Product.ping"})),
    ):
        assert response.status_code == 500
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"] == {
            "code": "server_error",
            "message": "A server error occurred.",
        }
