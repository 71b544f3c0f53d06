"""Who may do what: the permission matrix the WebSocket, HTTP and DRF tests share."""

import json

from syncbind._bindings.request import BUILTIN_ACTIONS
from tests.testapp.models import Category, Product

P = "testapp.Product"
ALL_PRODUCT_PERMS = [f"testapp.{p}_product" for p in ("view", "add", "change", "delete")]

USERS = {
    "anonymous": None,
    "no permissions": {},
    "view permission": {"perms": ["testapp.view_product"]},
    "add permission only": {"perms": ["testapp.add_product"]},
    "change permission only": {"perms": ["testapp.change_product"]},
    "model permissions": {"perms": ALL_PRODUCT_PERMS},
    "superuser": {"is_superuser": True},
}
OK = "ok"
DENIED, ANON = "permission_denied", "not_authenticated"
READ = (ANON, DENIED, OK, DENIED, DENIED, OK, OK)
ADD = (ANON, DENIED, DENIED, OK, DENIED, OK, OK)
CHANGE = (ANON, DENIED, DENIED, DENIED, OK, OK, OK)
DELETE = (ANON, DENIED, DENIED, DENIED, DENIED, OK, OK)

# case -> (action, expected outcome per user kind in USERS order, under syncbind's
# DjangoModelPermissions)
MATRIX = {
    "retrieve": ("retrieve", READ),
    "list": ("list", READ),
    "search": ("search", READ),
    "subscribe": ("subscribe", READ),
    "create": ("create", ADD),
    "update": ("update", CHANGE),
    "save with id": ("save", CHANGE),  # an update
    "save without id": ("save", ADD),  # a create
    "delete": ("delete", DELETE),
    "restock": ("restock", CHANGE),  # a custom event: perms_map "*"
    "ping": ("ping", (OK,) * len(USERS)),  # @event(permission_classes=[AllowAny])
}

ERRORS = {
    DENIED: {
        "code": "permission_denied",
        "message": "You do not have permission to perform this action.",
    },
    ANON: {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided.",
    },
}
STATUS = {DENIED: 403, ANON: 401}


def case_data(case, product):
    """The message data of ``case`` about ``product``."""
    new = {"name": "new", "price": "1", "category": product.category_id}
    return {
        "retrieve": {"id": product.pk},
        "subscribe": {"id": product.pk},
        "update": {"id": product.pk, "name": "changed"},
        "save with id": {"id": product.pk, "name": "changed"},
        "save without id": new,
        "delete": {"id": product.pk},
        "restock": {"id": product.pk},
        "create": new,
        "search": {"query": "p"},
    }.get(case, {})


def rows():
    """What a refused event must leave unchanged."""
    return list(Product.objects.order_by("pk").values()), Category.objects.count()


def expected(matrix, users, kind):
    """``{case: outcome}`` for user ``kind`` (a column of ``matrix``)."""
    column = list(users).index(kind)
    return {case: outcomes[column] for case, (_action, outcomes) in matrix.items()}


def outcome(reply):
    """OK, or the code of the error ``reply`` carries (whose text must be the code's)."""
    if "data" in reply:
        return OK
    error = reply["error"]
    assert error == ERRORS.get(error["code"], error), error
    return error["code"]


# -- HTTP ---------------------------------------------------------------------------
# The built-in actions' own routes: case -> (method, URL under the stream, from data).
REST_ROUTES = {
    "retrieve": ("get", "{id}/"),
    "list": ("get", ""),
    "search": ("get", ""),
    "create": ("post", ""),
    "update": ("patch", "{id}/"),
    "save with id": ("put", "{id}/"),
    "delete": ("delete", "{id}/"),
    "restock": ("post", "restock/"),
    "ping": ("post", "ping/"),
}
# How an event reaches the HTTP API: its own route, the envelope, or the custom-event
# URL (``POST <stream>/<action>/``), which takes custom events only.
HTTP_ROUTES = ("own route", "POST events/", "POST <stream>/<action>/")
NOT_ALLOWED = "405, Allow: GET, PATCH, PUT, DELETE, OPTIONS"


def http_expected(matrix, users, kind, route):
    """``{case: outcome}`` over ``route``: what ``expected`` says, for the cases the
    route carries; a built-in action on the custom-event URL is NOT_ALLOWED."""
    wanted = expected(matrix, users, kind)
    if route == "own route":
        return {case: wanted[case] for case in matrix if case in REST_ROUTES}
    if route == "POST <stream>/<action>/":
        return {
            case: NOT_ALLOWED if matrix[case][0] in BUILTIN_ACTIONS else wanted[case]
            for case in matrix
        }
    return wanted


def http_send(client, route, stream, case, action, data):
    """Send ``case`` over HTTP by ``route``; returns the response."""
    if route == "POST events/":
        envelope = {"event": f"{stream}.{action}", "data": data}
        return client.post("/api/events/", json.dumps(envelope), content_type="application/json")
    if route == "POST <stream>/<action>/":
        return client.post(
            f"/api/{stream}/{action}/", json.dumps(data), content_type="application/json"
        )
    method, path = REST_ROUTES[case]
    url = f"/api/{stream}/{path.format(id=data.get('id'))}"
    if method == "get":
        return client.get(url, {"query": data["query"]} if "query" in data else {})
    body = {key: value for key, value in data.items() if key != "id" or method == "post"}
    send = getattr(client, method)
    return send(url, json.dumps(body), content_type="application/json")


def http_outcome(response):
    """OK, NOT_ALLOWED, or the code of the error the response carries, with its status."""
    if response.status_code == 405:
        assert response.content == b""
        return f"405, Allow: {response['Allow']}"
    if response.status_code in (200, 201):
        assert "error" not in response.json()
        return OK
    error = response.json()["error"]
    assert (response.status_code, error) == (STATUS.get(error["code"]), ERRORS.get(error["code"]))
    return error["code"]


def http_matrix(client, route, stream, matrix, make_product):
    """Every case ``route`` carries, sent by ``client``: ``{case: outcome}``. A refusal
    must leave the rows as they were and not show the row."""
    seen = {}
    for case, (action, _outcomes) in matrix.items():
        if route == "own route" and case not in REST_ROUTES:
            continue
        product = make_product()
        before = rows()
        response = http_send(client, route, stream, case, action, case_data(case, product))
        seen[case] = http_outcome(response)
        if seen[case] != OK:
            assert rows() == before, case
            assert product.name not in response.content.decode(), case
    return seen
