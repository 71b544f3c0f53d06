"""[syncbind/_wire/protocol.py] Hostile input beyond the error table: floods, the HTTP transport, and generated envelopes.

The invariants for every case: the documented error (or a normal reply), no
traceback or internal detail in what is sent back, the connection keeps working,
and the database is unchanged unless the request was a legitimate write.
"""

import asyncio
import json
import logging
import warnings
from decimal import Decimal

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NonInteractiveExampleWarning

from syncbind._transport import core
from syncbind._wire import protocol
from syncbind.exceptions import STATUS_BY_CODE
from tests import factories
from tests.testapp.models import Category, Note, Product

pytestmark = pytest.mark.django_db(transaction=True)

CODES = set(STATUS_BY_CODE)
# Internals, and password hashes (the tests hash with MD5). Field names the client
# sent itself (owner__password__startswith) may be echoed in "fields".
LEAKS = (
    "Traceback",
    'File "',
    "/work",
    "site-packages",
    "psycopg",
    "sqlite3",
    "md5$",
    "pbkdf2_sha256$",
)
ECHOED = ("event", "request_id")


def snapshot():
    return (
        list(Product.objects.order_by("pk").values()),
        list(Category.objects.order_by("pk").values()),
        list(Note.objects.order_by("pk").values()),
    )


def assert_clean(reply):
    # The event and request_id are the client's own, echoed (Hypothesis draws text from
    # the project's string constants too, "bench.sqlite3" among them).
    text = json.dumps({key: value for key, value in reply.items() if key not in ECHOED})
    for leak in LEAKS:
        assert leak not in text, (leak, text[:300])
    if "error" in reply:
        assert reply["error"]["code"] in CODES


async def test_flood_of_mixed_frames_keeps_the_connection(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory)
    before = await db_call(snapshot)
    client = await make_client(superuser)
    frames = [
        "nope",
        "[]",
        '{"event": 1}',
        '{"event": "x.y.z"}',
        '{"event": "testapp.Product.retrieve"}',
    ] * 200
    for frame in frames:
        await client.send_raw(frame)
    replies = [await client.receive() for _ in frames]
    assert all("error" in reply for reply in replies)
    for reply in replies:
        assert_clean(reply)
    assert (await client.send_event("testapp.Product.retrieve", {"id": product.pk}))["data"][
        "id"
    ] == product.pk
    assert await db_call(snapshot) == before


async def test_rate_limit(make_client, superuser, settings):
    settings.SYNCBIND = {"RATE_LIMIT": "5/m"}
    client = await make_client(superuser)
    for _ in range(5):
        assert "data" in await client.send_event("testapp.Product.ping")
    await client.send_raw(protocol.encode({"event": "testapp.Product.ping", "request_id": 1}))
    assert await client.receive() == {
        "event": None,
        "error": {"code": "rate_limited", "message": "Too many requests."},
    }
    await client.send_raw("garbage")  # malformed frames count too
    assert (await client.receive())["error"]["code"] == "rate_limited"


async def test_rate_limit_is_per_connection(consumer_app, superuser, settings):
    from syncbind.testing import connect

    settings.SYNCBIND = {"RATE_LIMIT": "2/h"}
    async with (
        connect(superuser, application=consumer_app) as a,
        connect(superuser, application=consumer_app) as b,
    ):
        for _ in range(2):
            assert "data" in await a.send_event("testapp.Product.ping")
        await a.send_raw(protocol.encode({"event": "testapp.Product.ping"}))
        assert (await a.receive())["error"]["code"] == "rate_limited"
        assert "data" in await b.send_event("testapp.Product.ping")


def test_rate_limit_refills():
    from syncbind.throttling import RateLimit, parse_rate

    now = [0.0]
    bucket = RateLimit(2, 1.0, clock=lambda: now[0])
    assert [bucket.allow() for _ in range(3)] == [True, True, False]
    now[0] = 0.5
    assert [bucket.allow(), bucket.allow()] == [True, False]
    assert parse_rate("100/s") == (100, 1.0) and parse_rate("6/min") == (6, 60.0)
    with pytest.raises(ValueError):
        parse_rate("lots")


HTTP_CASES = [
    ("post", "/api/events/", "not json", 400, "bad_request"),
    ("post", "/api/events/", "[1]", 400, "bad_request"),
    ("post", "/api/events/", '{"event": "testapp.Product.list", "data": 3}', 400, "bad_request"),
    ("post", "/api/events/", '{"event": "testapp.Product.lіst"}', 400, "bad_request"),
    ("post", "/api/events/", '{"event": "nope.Model.list"}', 404, "unknown_event"),
    ("get", "/api/testapp.Product/?owner__password__startswith=pbkdf2", None, 400, "invalid"),
    ("get", "/api/testapp.Product/?name__regex=.*", None, 400, "invalid"),
    ("get", "/api/testapp.Product/?category__name=x", None, 400, "invalid"),
    ("get", "/api/testapp.Product/?ordering=owner__password", None, 400, "invalid"),
    ("get", "/api/testapp.Product/?page=-1", None, 400, "invalid"),
    ("get", "/api/testapp.Product/?limit=0", None, 400, "invalid"),
    ("get", "/api/testapp.Product/?query=" + "a" * 10_000, None, 400, "invalid"),
    ("get", "/api/testapp.Product/abc/", None, 400, "invalid"),
    ("get", "/api/testapp.Product/99999999999999999999/", None, 400, "invalid"),
    (
        "post",
        "/api/testapp.Product/",
        '{"name": "x", "price": "1", "category": 1, "owner": 1}',
        400,
        "invalid",
    ),
    (
        "post",
        "/api/testapp.Product/",
        '{"name": "x", "price": "1", "category": 1, "id": 5}',
        400,
        "invalid",
    ),
    ("post", "/api/auth.User/", '{"username": "evil", "is_superuser": true}', 400, "invalid"),
    ("post", "/api/testapp.Product/get_queryset/", "{}", 404, "unknown_event"),
    ("post", "/api/testapp.Product/explode/", "{}", 500, "server_error"),
]


@pytest.mark.parametrize(
    ("method", "url", "payload", "status", "code"), HTTP_CASES, ids=range(len(HTTP_CASES))
)
def test_hostile_http(method, url, payload, status, code, superuser):
    factories.CategoryFactory(id=1)
    product = factories.ProductFactory()
    before = snapshot()
    client = Client()
    client.force_login(superuser)
    kwargs = {"data": payload, "content_type": "application/json"} if payload is not None else {}
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == code
    assert_clean(body)
    assert snapshot() == before
    assert client.get(f"/api/testapp.Product/{product.pk}/").json()["id"] == product.pk


JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
EVENTS = st.one_of(
    st.sampled_from(
        [
            f"testapp.Product.{a}"
            for a in (
                "retrieve",
                "list",
                "search",
                "update",
                "delete",
                "subscribe",
                "unsubscribe",
                "nosuch",
                "refuse",
            )
        ]
        + ["testapp.Note.list", "auth.User.search", "nope.X.list", "testapp.Product.list#t-1"]
    ),
    st.text(max_size=30),
    JSON,
)
DATA = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "id": JSON,
            "page": JSON,
            "limit": JSON,
            "filters": JSON,
            "ordering": JSON,
            "query": JSON,
            "name": JSON,
            "price": JSON,
            "owner": JSON,
            "subscribe": JSON,
        },
    ),
    JSON,
)
ENVELOPES = st.fixed_dictionaries({}, optional={"event": EVENTS, "data": DATA, "request_id": JSON})


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(envelope=ENVELOPES)
def test_generated_envelopes_never_leak_or_write(envelope, transactional_db):
    """Generated envelopes through the core, as a user who may read but not write."""
    user = _reader()
    before = snapshot()
    text = json.dumps(envelope)
    reply = json.loads(core.handle(text, core.Connection(user=user)))
    assert_clean(reply)
    if "event" in envelope and isinstance(envelope["event"], str):
        assert reply["event"] in (envelope["event"], None)
    assert ("data" in reply) != ("error" in reply)
    assert snapshot() == before  # a reader can never write
    ping = core.handle('{"event": "testapp.Product.ping"}', core.Connection(user=user))
    assert "data" in json.loads(ping)


def _reader():
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username="hypothesis-reader").first()
    if user is None:
        user = factories.UserFactory(
            username="hypothesis-reader", perms=["testapp.view_product", "testapp.view_note"]
        )
        factories.ProductFactory()
    return get_user_model().objects.get(pk=user.pk)


async def test_generated_frames_over_the_socket(make_client, superuser, db_call):
    """A sample of generated envelopes through the consumers themselves."""
    reader = await db_call(_reader)
    client = await make_client(reader)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", NonInteractiveExampleWarning
        )  # a sample is all we want here
        examples = [ENVELOPES.example() for _ in range(40)]
    before = await db_call(snapshot)
    for envelope in examples:
        await client.send_raw(json.dumps(envelope))
        reply = await asyncio.wait_for(client.receive(), 5)
        assert_clean(reply)
    assert "data" in await client.send_event("testapp.Product.ping")
    assert await db_call(snapshot) == before


# -- a reply JSON cannot carry (issue 21, point 10) -------------------------------------

SERVER_ERROR = {"code": "server_error", "message": "A server error occurred."}


@pytest.mark.parametrize("kind", ["object", "instance"])
async def test_an_event_reply_that_cannot_be_encoded_rolls_back(
    make_client, superuser, db_call, caplog, kind
):
    client = await make_client(superuser)
    with caplog.at_level(logging.ERROR, logger="syncbind"):
        reply = await client.send_event("testapp.Product.unencodable", {"kind": kind})
    assert reply == {
        "event": "testapp.Product.unencodable",
        "error": SERVER_ERROR,
        "request_id": reply["request_id"],
    }
    assert "is not JSON serializable" in caplog.text  # the traceback stays on the server
    assert not await db_call(Category.objects.filter(name="written before the reply").exists)
    # The same socket answers the next message.
    assert (await client.send_event("testapp.Product.ping"))["data"]["pong"] is True
    await client.assert_nothing_more()


def test_a_reply_is_encoded_once(superuser, monkeypatch):
    factories.ProductFactory(price="2.50")
    converted = []
    default = DjangoJSONEncoder.default
    monkeypatch.setattr(
        DjangoJSONEncoder, "default", lambda self, o: converted.append(o) or default(self, o)
    )
    text = core.handle('{"event": "testapp.Product.price_range"}', core.Connection(user=superuser))
    assert json.loads(text)["data"] == {"min": "2.50", "max": "2.50"}
    assert converted == [Decimal("2.50"), Decimal("2.50")]  # min and max, once each
