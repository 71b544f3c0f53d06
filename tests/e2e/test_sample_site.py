"""The sample site end to end: uvicorn serving sample_site/, a real login, every event.

The site runs in a child process on a fresh SQLite file (``SAMPLE_SITE_DB``)
prepared by ``manage.py migrate`` and ``manage.py demo_setup``, so row ids and
values below are those of demo_setup: categories 1 Books, 2 Garden, 3 Kitchen;
products 1-10 are books, 11-20 garden things, 21-30 kitchen things; user 1 is
``demo`` (superuser), user 2 ``alice`` (view/add/change products, view categories).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
from websockets.exceptions import InvalidStatus

from syncbind.testing import connect_url
from tests.servers import ROOT, require_services, uvicorn_server

pytestmark = pytest.mark.e2e

SITE_DIR = ROOT / "sample_site"
SETTINGS = "sample_site.settings"
DEMO, ALICE = 1, 2
BOOKS, GARDEN, KITCHEN = 1, 2, 3
CREATED = "<created>"


# -- the server and logins ------------------------------------------------------------
@pytest.fixture(scope="module")
def site_env(tmp_path_factory):
    """The environment of the sample site's processes: its settings and a fresh database."""
    return {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "SAMPLE_SITE_DB": str(tmp_path_factory.mktemp("sample_site") / "db.sqlite3"),
    }


def set_up_site(env, *more):
    """``make demo``'s steps on the database ``env`` names (and ``more`` commands)."""
    for command in (["migrate", "--noinput"], ["demo_setup"], *more):
        done = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=SITE_DIR,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"manage.py {command[0]} failed:\n{done.stderr}"


@pytest.fixture(scope="module")
def port(site_env):
    """Port of the sample site, served by uvicorn on a fresh demo database."""
    env = site_env
    set_up_site(env)
    with uvicorn_server(
        "sample_site.asgi:application", env=env, cwd=SITE_DIR, settings_module=SETTINGS
    ) as port:
        yield port


def http_request(port, method, path, *, cookies=None, form=None):
    """``(status, headers, body text, cookies set)`` of one HTTP request to the site."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {}
    if cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    body = None
    if form is not None:
        body = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    jar = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        jar.load(header)
    return response.status, response.headers, text, {name: m.value for name, m in jar.items()}


def log_in(port, username, password):
    """Log in through the login form; return the cookies of the session."""
    status, _, page, cookies = http_request(port, "GET", "/accounts/login/")
    assert status == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    status, headers, _, new = http_request(
        port,
        "POST",
        "/accounts/login/",
        cookies=cookies,
        form={"username": username, "password": password, "csrfmiddlewaretoken": token, "next": ""},
    )
    assert (status, headers["Location"]) == (302, "/")
    assert "sessionid" in new
    return {**cookies, **new}


@pytest.fixture(scope="module")
def demo_cookies(port):
    return log_in(port, "demo", "demo")


@pytest.fixture(scope="module")
def alice_cookies(port):
    return log_in(port, "alice", "alice")


# -- the client: syncbind.testing's, over the network -------------------------------------
VERSION = re.compile(r"[0-9]+~[0-9a-f]{16}")  # the sample site captures changes: a log id


def websocket(port, cookies=None, origin=None):
    """``async with websocket(port, cookies) as client``: a :class:`SyncbindClient` on
    the site's WebSocket, with the session's cookies and the site's Origin."""
    headers = {}
    if cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    return connect_url(
        f"ws://127.0.0.1:{port}/ws/",
        headers=headers,
        origin=origin or f"http://127.0.0.1:{port}",
        timeout=10,
        proxy=None,
    )


def checked(client, message):
    """``message`` with ``created`` masked, once every version it carried is well formed."""
    assert all(VERSION.fullmatch(v) for v in client.versions.values()), client.versions
    return mask_created(message)


async def call(client, event, data=None, **envelope):
    """The reply to one request (its automatic request_id removed)."""
    reply = await client.send_event(event, data, **envelope)
    del reply["request_id"]
    return checked(client, reply)


async def reply_to(client, text):
    """The reply to one frame sent as it is (on a connection with no subscription)."""
    await client.send_raw(text)
    return checked(client, await client.receive())


async def next_push(client):
    message = await client.receive()
    assert "request_id" not in message, message
    return checked(client, message)


def mask_created(value):
    """Replace each ``created`` timestamp (checked to be ISO 8601 UTC) by CREATED."""
    if isinstance(value, list):
        return [mask_created(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key == "created":
            assert isinstance(item, str) and item.endswith("Z"), item
            datetime.fromisoformat(item)
            out[key] = CREATED
        else:
            out[key] = mask_created(item)
    return out


CATEGORY_NAMES = {BOOKS: "Books", GARDEN: "Garden", KITCHEN: "Kitchen"}
USERNAMES = {DEMO: "demo", ALICE: "alice", None: None}


def product(pk, name, price, category, in_stock=True, owner=DEMO):
    return {
        "id": pk,
        "name": name,
        "price": price,
        "category": category,
        "category__name": CATEGORY_NAMES[category],
        "owner": owner,
        "owner__username": USERNAMES[owner],
        "in_stock": in_stock,
        "created": CREATED,
    }


def listed(event, count, rows, page=1, limit=25):
    """The reply to a list or search: page ``page`` of ``count`` rows."""
    return {"event": event, "data": {"page": page, "limit": limit, "count": count, "rows": rows}}


def error(event, code, message, fields=None, **envelope):
    err = {"code": code, "message": message}
    if fields is not None:
        err["fields"] = fields
    return {"event": event, "error": err, **envelope}


INVALID = "Invalid data."


# -- HTTP ------------------------------------------------------------------------------
def test_pages(port, demo_cookies):
    status, _, page, _ = http_request(port, "GET", "/")
    assert status == 200
    assert 'href="/accounts/login/"' in page
    assert "new WebSocket(" not in page

    status, _, page, _ = http_request(port, "GET", "/", cookies=demo_cookies)
    assert status == 200
    assert "syncbind/syncbind.js" in page
    assert "shop.Product.list" in page
    status, headers, script, _ = http_request(port, "GET", "/static/syncbind/syncbind.js")
    assert status == 200 and "export class SyncBind" in script

    status, _, _, _ = http_request(port, "GET", "/admin/", cookies=demo_cookies)
    assert status == 200
    status, headers, _, _ = http_request(port, "GET", "/static/admin/css/base.css")
    assert (status, headers["Content-Type"]) == (200, "text/css")


def test_wrong_password_is_refused(port):
    status, _, page, cookies = http_request(port, "GET", "/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    status, _, page, new = http_request(
        port,
        "POST",
        "/accounts/login/",
        cookies=cookies,
        form={"username": "demo", "password": "wrong", "csrfmiddlewaretoken": token},
    )
    assert status == 200
    assert "Wrong username or password." in page
    assert "sessionid" not in new


# -- handshakes ------------------------------------------------------------------------
async def test_anonymous_handshake_is_refused(port):
    with pytest.raises(InvalidStatus) as refused:
        async with websocket(port):
            pass
    assert refused.value.response.status_code == 403


async def test_foreign_origin_is_refused(port, demo_cookies):
    with pytest.raises(InvalidStatus) as refused:
        async with websocket(port, demo_cookies, origin="http://elsewhere.example"):
            pass
    assert refused.value.response.status_code == 403


# -- reads -----------------------------------------------------------------------------
async def test_retrieve(port, demo_cookies):
    async with websocket(port, demo_cookies) as client:
        frame = {"event": "shop.Product.retrieve", "data": {"id": 15}, "request_id": 7}
        assert await reply_to(client, json.dumps(frame)) == {
            "event": "shop.Product.retrieve",
            "data": product(15, "Hose Reel", "54.00", GARDEN, in_stock=False),
            "request_id": 7,
        }
        assert await call(client, "shop.Category.retrieve", {"id": "3"}) == {
            "event": "shop.Category.retrieve",
            "data": {"id": 3, "name": "Kitchen"},
        }
        assert await call(client, "shop.Product.retrieve", {"id": 999}) == error(
            "shop.Product.retrieve", "not_found", "Not found."
        )
        assert await call(client, "shop.Product.retrieve", {}) == error(
            "shop.Product.retrieve", "invalid", INVALID, {"id": ["This field is required."]}
        )


async def test_list(port, demo_cookies):
    async with websocket(port, demo_cookies) as client:
        reply = await call(client, "shop.Product.list")
        assert reply["event"] == "shop.Product.list"
        page = reply["data"]
        assert (page["page"], page["limit"], page["count"], len(page["rows"])) == (1, 25, 30, 25)
        names = [row["name"] for row in page["rows"]]
        assert names == sorted(names)  # the model's default ordering
        assert await call(client, "shop.Product.list", {"page": 2}) == listed(
            "shop.Product.list",
            30,
            [
                product(4, "The Patient Gardener", "14.00", BOOKS),
                product(8, "Tiny Houses", "31.00", BOOKS, in_stock=False),
                product(17, "Trowel", "6.75", GARDEN),
                product(11, "Watering Can", "16.00", GARDEN),
                product(24, "Wooden Spoon Set", "9.99", KITCHEN),
            ],
            page=2,
        )

        assert await call(
            client,
            "shop.Product.list",
            {"filters": {"category": GARDEN, "price__lt": "10"}, "ordering": "-price"},
        ) == listed(
            "shop.Product.list",
            5,
            [
                product(14, "Garden Gloves", "8.99", GARDEN),
                product(17, "Trowel", "6.75", GARDEN),
                product(20, "Rain Gauge", "5.60", GARDEN),
                product(13, "Seed Tray", "4.50", GARDEN),
                product(18, "Plant Labels", "3.20", GARDEN),
            ],
        )
        assert await call(
            client,
            "shop.Product.list",
            {"filters": {"price__gt": "30"}, "ordering": ["price"], "page": 2, "limit": 2},
        ) == listed(
            "shop.Product.list",
            6,
            [
                product(23, "Cast Iron Skillet", "39.90", KITCHEN),
                product(21, "Chef's Knife", "49.00", KITCHEN),
            ],
            page=2,
            limit=2,
        )
        assert await call(
            client, "shop.Product.list", {"filters": {"name__icontains": "CUP"}}
        ) == listed(
            "shop.Product.list",
            2,
            [
                product(25, "Espresso Cups", "24.00", KITCHEN),
                product(28, "Measuring Cups", "7.25", KITCHEN),
            ],
        )
        assert await call(client, "shop.Category.list", {"ordering": "-name"}) == listed(
            "shop.Category.list",
            3,
            [
                {"id": KITCHEN, "name": "Kitchen"},
                {"id": GARDEN, "name": "Garden"},
                {"id": BOOKS, "name": "Books"},
            ],
        )


async def test_list_refuses_undeclared_filters_and_ordering(port, demo_cookies):
    async with websocket(port, demo_cookies) as client:
        assert await call(client, "shop.Product.list", {"filters": {"owner": DEMO}}) == error(
            "shop.Product.list", "invalid", INVALID, {"owner": ["Unknown filter."]}
        )
        assert await call(client, "shop.Product.list", {"ordering": "created"}) == error(
            "shop.Product.list", "invalid", INVALID, {"ordering": ["Cannot order by 'created'."]}
        )
        assert await call(client, "shop.Product.list", {"limit": 0}) == error(
            "shop.Product.list", "invalid", INVALID, {"limit": ["Must be a positive integer."]}
        )


async def test_search(port, demo_cookies):
    async with websocket(port, demo_cookies) as client:
        # Every word must match the name or the category's name.
        assert await call(client, "shop.Product.search", {"query": "bird"}) == listed(
            "shop.Product.search",
            2,
            [
                product(16, "Bird Feeder", "19.50", GARDEN),
                product(2, "Field Guide to Birds", "27.00", BOOKS),
            ],
        )
        assert await call(client, "shop.Product.search", {"query": "books map"}) == listed(
            "shop.Product.search", 1, [product(9, "Map Reading 101", "8.00", BOOKS)]
        )
        reply = await call(
            client,
            "shop.Product.search",
            {"query": "garden", "filters": {"price__gt": "20"}, "ordering": "-price"},
        )
        assert reply == listed(
            "shop.Product.search",
            3,
            [
                product(19, "Compost Bin", "64.00", GARDEN),
                product(15, "Hose Reel", "54.00", GARDEN, in_stock=False),
                product(12, "Pruning Shears", "22.75", GARDEN),
            ],
        )


# -- writes ----------------------------------------------------------------------------
async def test_create_update_delete(port, demo_cookies):
    async with websocket(port, demo_cookies) as client:
        reply = await call(
            client,
            "shop.Product.create",
            {"name": "Garden Hose", "price": "29.95", "category": GARDEN},
        )
        pk = reply["data"]["id"]
        assert isinstance(pk, int) and pk > 30
        assert reply == {
            "event": "shop.Product.create",
            "data": {
                "success": True,
                "id": pk,
                "row": product(pk, "Garden Hose", "29.95", GARDEN),  # owner: the sender
            },
        }

        assert await call(
            client, "shop.Product.update", {"id": pk, "price": "27.50", "in_stock": False}
        ) == {
            "event": "shop.Product.update",
            "data": {
                "success": True,
                "id": pk,
                "row": product(pk, "Garden Hose", "27.50", GARDEN, in_stock=False),
            },
        }
        assert await call(client, "shop.Product.retrieve", {"id": pk}) == {
            "event": "shop.Product.retrieve",
            "data": product(pk, "Garden Hose", "27.50", GARDEN, in_stock=False),
        }

        assert await call(client, "shop.Product.delete", {"id": pk}) == {
            "event": "shop.Product.delete",
            "data": {"success": True, "id": pk},
        }
        # The retrieve above subscribed this connection to the row: its deletion is pushed
        # (through the channel layer). Waited for before reading the row again: a failed
        # re-read replaces and drops the subscription, and with it a push still on its way.
        assert await next_push(client) == {"event": "shop.Product.delete", "data": {"id": pk}}
        assert await call(client, "shop.Product.retrieve", {"id": pk}) == error(
            "shop.Product.retrieve", "not_found", "Not found."
        )
        assert await call(client, "shop.Product.delete", {"id": pk}) == error(
            "shop.Product.delete", "not_found", "Not found."
        )


async def test_save_creates_without_id_and_updates_with_one(port, demo_cookies):
    async with websocket(port, demo_cookies) as client:
        reply = await call(
            client,
            "shop.Product.save",
            {"id": None, "name": "Egg Timer", "price": "6.00", "category": KITCHEN},
        )
        pk = reply["data"]["id"]
        assert reply == {
            "event": "shop.Product.save",
            "data": {"success": True, "id": pk, "row": product(pk, "Egg Timer", "6.00", KITCHEN)},
        }
        assert await call(client, "shop.Product.save", {"id": pk, "name": "Sand Timer"}) == {
            "event": "shop.Product.save",
            "data": {
                "success": True,
                "id": pk,
                "row": product(pk, "Sand Timer", "6.00", KITCHEN),
            },
        }
        assert await call(client, "shop.Product.delete", {"id": pk}) == {
            "event": "shop.Product.delete",
            "data": {"success": True, "id": pk},
        }


async def test_invalid_writes(port, demo_cookies):
    async with websocket(port, demo_cookies) as client:
        assert await call(
            client, "shop.Product.create", {"name": "", "price": "-1", "category": 99}
        ) == error(
            "shop.Product.create",
            "invalid",
            INVALID,
            {
                "name": ["This field is required."],
                "price": ["Ensure this value is greater than or equal to 0."],
                "category": [
                    "Select a valid choice. That choice is not one of the available choices."
                ],
            },
        )
        assert await call(
            client, "shop.Product.update", {"id": 1, "owner": ALICE, "colour": "red"}
        ) == error(
            "shop.Product.update",
            "invalid",
            INVALID,
            {"owner": ["This field is not writable."], "colour": ["Unknown field."]},
        )
        assert await call(client, "shop.Category.create", {"name": "Books"}) == error(
            "shop.Category.create",
            "invalid",
            INVALID,
            {"name": ["Category with this Name already exists."]},
        )
        # The binding's perform_delete refuses categories that still have products.
        assert await call(client, "shop.Category.delete", {"id": BOOKS}) == error(
            "shop.Category.delete",
            "invalid",
            INVALID,
            {"__all__": ["This category still has products."]},
        )


async def test_restock(port, demo_cookies):
    async with websocket(port, demo_cookies) as client:
        reply = await call(
            client,
            "shop.Product.create",
            {"name": "Rake", "price": "12.00", "category": GARDEN, "in_stock": False},
        )
        pk = reply["data"]["id"]
        assert reply["data"]["row"] == product(pk, "Rake", "12.00", GARDEN, in_stock=False)
        expected = {
            "event": "shop.Product.restock",
            "data": {"success": True, "id": pk, "row": product(pk, "Rake", "12.00", GARDEN)},
        }
        assert await call(client, "shop.Product.restock", {"id": pk}) == expected
        assert await call(client, "shop.Product.restock", {"id": pk}) == expected  # no change
        assert await call(client, "shop.Product.restock", {"id": 999}) == error(
            "shop.Product.restock", "not_found", "Not found."
        )
        await call(client, "shop.Product.delete", {"id": pk})


# -- permissions and private rows ------------------------------------------------------
async def test_model_permissions(port, alice_cookies, demo_cookies):
    async with websocket(port, alice_cookies) as client:
        reply = await call(client, "shop.Product.list", {"filters": {"category": BOOKS}})
        assert reply["data"]["count"] == 10
        # alice may not delete products, and may read categories (the form's choices)
        # but not change them.
        denied = "You do not have permission to perform this action."
        assert await call(client, "shop.Product.delete", {"id": 1}) == error(
            "shop.Product.delete", "permission_denied", denied
        )
        categories = await call(client, "shop.Category.list")
        assert [row["name"] for row in categories["data"]["rows"]] == list(CATEGORY_NAMES.values())
        assert await call(client, "shop.Category.create", {"name": "Toys"}) == error(
            "shop.Category.create", "permission_denied", denied
        )
        # She may create (and owns what she creates) and run restock (change_product).
        reply = await call(
            client, "shop.Product.create", {"name": "Kneeler", "price": "15.00", "category": GARDEN}
        )
        pk = reply["data"]["id"]
        assert reply["data"]["row"] == product(pk, "Kneeler", "15.00", GARDEN, owner=ALICE)
        reply = await call(client, "shop.Product.restock", {"id": pk})
        assert reply["data"]["success"] is True
    async with websocket(port, demo_cookies) as client:
        await call(client, "shop.Product.delete", {"id": pk})


async def test_notes_are_private(port, demo_cookies, alice_cookies):
    async with websocket(port, demo_cookies) as demo, websocket(port, alice_cookies) as alice:
        reply = await call(demo, "shop.Note.create", {"text": "Order more kettles"})
        pk = reply["data"]["id"]
        note = {"id": pk, "text": "Order more kettles", "created": CREATED}
        assert reply == {
            "event": "shop.Note.create",
            "data": {"success": True, "id": pk, "row": note},
        }
        assert await call(demo, "shop.Note.list") == {
            "event": "shop.Note.list",
            "data": {"page": 1, "limit": 25, "count": 1, "rows": [note]},
        }
        assert await call(alice, "shop.Note.list") == {
            "event": "shop.Note.list",
            "data": {"page": 1, "limit": 25, "count": 0, "rows": []},
        }
        for action in ("retrieve", "update", "delete"):
            assert await call(alice, f"shop.Note.{action}", {"id": pk}) == error(
                f"shop.Note.{action}", "not_found", "Not found."
            )
        assert await call(demo, "shop.Note.delete", {"id": pk}) == {
            "event": "shop.Note.delete",
            "data": {"success": True, "id": pk},
        }
        # demo's list was live: it is pushed again, now empty; alice's did not change.
        assert await next_push(demo) == {
            "event": "shop.Note.list",
            "data": {"page": 1, "limit": 25, "count": 0, "rows": []},
        }
        # Nothing reached alice: her own note, written after demo's, is the next push
        # she gets (the server processes a stream's changes in order).
        mine = (await call(alice, "shop.Note.create", {"text": "Mine"}))["data"]["row"]
        assert await next_push(alice) == {
            "event": "shop.Note.list",
            "data": {"page": 1, "limit": 25, "count": 1, "rows": [mine]},
        }
        await call(alice, "shop.Note.delete", {"id": mine["id"]})


# -- live subscriptions ----------------------------------------------------------------
async def test_changes_are_pushed_to_subscribers(port, demo_cookies, alice_cookies):
    async with websocket(port, demo_cookies) as watcher, websocket(port, alice_cookies) as editor:
        kettle = product(27, "Tea Kettle", "34.50", KITCHEN, in_stock=False)
        assert await call(watcher, "shop.Product.retrieve", {"id": 27}) == {
            "event": "shop.Product.retrieve",
            "data": kettle,
        }
        pricey = {"filters": {"category": KITCHEN, "price__gt": "30"}, "ordering": "price"}

        def page(kettle):
            return {
                "page": 1,
                "limit": 25,
                "count": 3,
                "rows": [
                    kettle,
                    product(23, "Cast Iron Skillet", "39.90", KITCHEN),
                    product(21, "Chef's Knife", "49.00", KITCHEN),
                ],
            }

        assert await call(watcher, "shop.Product.list", pricey) == {
            "event": "shop.Product.list",
            "data": page(kettle),
        }

        # Another user's write reaches both subscriptions of the watcher.
        await call(editor, "shop.Product.restock", {"id": 27})
        restocked = {**kettle, "in_stock": True}
        pushes = [await next_push(watcher), await next_push(watcher)]
        assert sorted(pushes, key=lambda push: push["event"]) == [
            {"event": "shop.Product.list", "data": page(restocked)},
            {"event": "shop.Product.retrieve", "data": restocked},
        ]

        # A write that changes neither the row nor the page pushes nothing: the next
        # write's pushes are the next the watcher gets (the server processes a stream's
        # changes in order, and a socket's frames go out in order).
        await call(editor, "shop.Product.restock", {"id": 27})
        await call(editor, "shop.Product.update", {"id": 11, "name": "Watering Can"})

        # Put the kettle back out of stock, as demo_setup made it.
        await call(editor, "shop.Product.update", {"id": 27, "in_stock": False})
        pushes = [await next_push(watcher), await next_push(watcher)]
        assert sorted(pushes, key=lambda push: push["event"]) == [
            {"event": "shop.Product.list", "data": page(kettle)},
            {"event": "shop.Product.retrieve", "data": kettle},
        ]

        # The editor, subscribed to nothing, was pushed nothing, and the watcher nothing
        # more: once the editor reads the kettle, the next write is the next push of both.
        assert await call(editor, "shop.Product.retrieve", {"id": 27}) == {
            "event": "shop.Product.retrieve",
            "data": kettle,
        }
        await call(watcher, "shop.Product.update", {"id": 27, "price": "34.60"})
        dearer = {**kettle, "price": "34.60"}
        assert await next_push(editor) == {"event": "shop.Product.retrieve", "data": dearer}
        pushes = [await next_push(watcher), await next_push(watcher)]
        assert sorted(pushes, key=lambda push: push["event"]) == [
            {"event": "shop.Product.list", "data": page(dearer)},
            {"event": "shop.Product.retrieve", "data": dearer},
        ]
        await call(watcher, "shop.Product.update", {"id": 27, "price": "34.50"})
        assert await next_push(editor) == {"event": "shop.Product.retrieve", "data": kettle}


# -- malformed requests ----------------------------------------------------------------
async def test_bad_requests(port, demo_cookies):
    async with websocket(port, demo_cookies) as client:
        frame = {"event": "shop.Product.explode", "data": {}, "request_id": "a"}
        assert await reply_to(client, json.dumps(frame)) == error(
            "shop.Product.explode",
            "unknown_event",
            "The stream 'shop.Product' has no event 'explode'.",
            request_id="a",
        )
        assert await call(client, "shop.Basket.list") == error(
            "shop.Basket.list", "unknown_event", "No stream named 'shop.Basket'."
        )
        assert await reply_to(client, "{not json") == error(
            None, "bad_request", "The message is not valid JSON."
        )
        assert await call(client, "shop.Product.list", data=[1]) == error(
            "shop.Product.list", "bad_request", "'data' must be a JSON object."
        )


# -- the demo from outside the browser ---------------------------------------------------
def manage(env, *args):
    """Run ``manage.py *args`` on the demo's database, in a process of its own."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=SITE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def demo_edit(env, port, *args):
    return manage(env, "demo_edit", "--port", str(port), *args)


async def test_demo_edit_from_another_process_appears_live(port, site_env, demo_cookies):
    """README: with the demo running, ``make demo-edit`` changes a product through the
    HTTP API, from another process, and open pages show it."""
    trowel = 17
    async with websocket(port, demo_cookies) as watcher:
        row = (await call(watcher, "shop.Product.retrieve", {"id": trowel}))["data"]
        assert (row["name"], row["price"]) == ("Trowel", "6.75")

        done = await asyncio.to_thread(demo_edit, site_env, port)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "Trowel: 6.75 -> 7.75; open pages show it now."
        assert (await next_push(watcher)) == {
            "event": "shop.Product.retrieve",
            "data": {**row, "price": "7.75"},
        }

        # The first edit was pushed once: a second push of it would come before this
        # one's (the server processes a stream's changes in order).
        done = await asyncio.to_thread(demo_edit, site_env, port, "--price", "6.75")
        assert done.returncode == 0, done.stderr
        assert (await next_push(watcher))["data"]["price"] == "6.75"


def test_demo_edit_explains_what_it_cannot_do(port, site_env):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        closed = busy.getsockname()[1]  # nothing listens there
    done = demo_edit(site_env, closed)
    assert done.returncode == 1
    assert f"No demo server answers on port {closed}" in done.stderr
    assert done.stderr.strip().endswith(
        "start it with make demo, or give the port it runs on: make demo-edit PORT=8001"
    )

    done = demo_edit(site_env, port, "--product", "Nothing such")
    assert "No product is named 'Nothing such'" in done.stderr

    # --direct needs no HTTP API, and has no caveat left: the server reads the change
    # from the database (test_a_direct_save_in_another_process_appears_live).
    done = demo_edit(site_env, closed, "--direct", "--price", "6.75")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.strip() == "Trowel: 6.75 -> 6.75; open pages show it now."


# -- any write to the demo's database, by any process (README: change capture) ----------
TROWEL = 17
# The README's commands, run from sample_site/ (where the demo's database is db.sqlite3).
SHELL_UPDATE = (
    "from shop.models import Product; Product.objects.filter(name='Trowel').update(price='{price}')"
)
SQL_UPDATE = "UPDATE shop_product SET price = {price} WHERE name = 'Trowel'"


@pytest.fixture(scope="module")
def sqlite3_cli():
    """The path of the ``sqlite3`` command line (a failure under SYNCBIND_REQUIRE_SERVICES
    when it is missing, else a skip)."""
    path = shutil.which("sqlite3")
    if path:
        return path
    reason = "the sqlite3 command line is not installed"
    reason += " (make test installs it where apt-get is available)"
    if os.environ.get("SYNCBIND_REQUIRE_SERVICES"):
        pytest.fail(reason + " and SYNCBIND_REQUIRE_SERVICES is set")
    pytest.skip(reason)


async def assert_each_write_appears_live(port, cookies, write):
    """``write(price)`` sets the Trowel's price from another process: an open page is
    pushed the Trowel at 8.75, then back at 6.75. Each write once: a second push of the
    first would come before the second's (the server reads the writes in commit order
    and processes a stream's changes in order)."""
    async with websocket(port, cookies) as watcher:
        trowel = product(TROWEL, "Trowel", "6.75", GARDEN)
        assert await call(watcher, "shop.Product.retrieve", {"id": TROWEL}) == {
            "event": "shop.Product.retrieve",
            "data": trowel,
        }
        for price in ("8.75", "6.75"):
            done = await asyncio.to_thread(write, price)
            assert done.returncode == 0, done.stderr
            assert await next_push(watcher) == {
                "event": "shop.Product.retrieve",
                "data": {**trowel, "price": price},
            }


async def test_a_shell_update_in_another_process_appears_live(port, site_env, demo_cookies):
    """README: ``manage.py shell -c "...update(...)"`` reaches the open pages (no signal
    is sent: the triggers record the write)."""

    def write(price):
        return manage(site_env, "shell", "-c", SHELL_UPDATE.format(price=price))

    await assert_each_write_appears_live(port, demo_cookies, write)


async def test_a_direct_save_in_another_process_appears_live(port, site_env, demo_cookies):
    """README: ``demo_edit --direct`` saves in its own process, and says the pages show it."""
    said = []

    def write(price):
        done = demo_edit(site_env, port, "--direct", "--price", price)
        said.append(done.stdout.strip())
        return done

    await assert_each_write_appears_live(port, demo_cookies, write)
    assert said == [
        "Trowel: 6.75 -> 8.75; open pages show it now.",
        "Trowel: 8.75 -> 6.75; open pages show it now.",
    ]


async def test_the_sqlite3_command_line_appears_live(sqlite3_cli, port, site_env, demo_cookies):
    """README: an UPDATE by the ``sqlite3`` command line (no Django at all) is pushed."""

    def write(price):
        # .timeout: wait for the server's own writes rather than fail with "database is locked".
        return subprocess.run(
            [sqlite3_cli, "-cmd", ".timeout 5000", site_env["SAMPLE_SITE_DB"]]
            + [SQL_UPDATE.format(price=price)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    await assert_each_write_appears_live(port, demo_cookies, write)


def test_make_demo_edit_goes_to_the_port_given(tmp_path):
    installed = tmp_path / ".installed-demo"  # -o: do not install anything
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", str(installed), "demo-edit", "PORT=8123"]
        + [f"VENV={tmp_path}", f"PY={sys.executable}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].endswith("manage.py demo_edit --port 8123")


def test_make_demo_on_a_busy_port_says_so(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        installed = tmp_path / ".installed-demo"  # -o: do not install anything
        done = subprocess.run(
            ["make", "-s", "-o", str(installed), "demo", f"PORT={taken}", f"VENV={tmp_path}"]
            + [f"PY={sys.executable}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert done.stdout.strip() == (
        f"Port {taken} is in use: stop what runs there, or choose another: make demo PORT=8001"
    )


def test_make_demo_installs_what_its_options_need(tmp_path):
    """``make demo REDIS_URL=...`` needs channels-redis: the demo's install has it."""
    installed = tmp_path / ".installed-demo"
    done = subprocess.run(
        ["make", "-n", "-B", str(installed), f"VENV={tmp_path}", f"PY={sys.executable}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    installs = [line for line in done.stdout.splitlines() if " -m pip install " in line]
    assert installs[-1] == f'{sys.executable} -m pip install -q -e ".[server,redis]"'


async def test_the_demo_on_channels_redis_logs_in_and_pushes(tmp_path):
    """``make demo REDIS_URL=...``: the site answered 500 at login when channels-redis
    was missing (issue 25). With what the demo installs, ``check`` passes, the login
    works and a change made on one socket is pushed to another."""
    require_services()
    env = {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "SAMPLE_SITE_DB": str(tmp_path / "db.sqlite3"),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    set_up_site(env, ["check", "--fail-level", "ERROR"])
    with uvicorn_server(
        "sample_site.asgi:application", env=env, cwd=SITE_DIR, settings_module=SETTINGS
    ) as redis_port:
        cookies = await asyncio.to_thread(log_in, redis_port, "demo", "demo")
        async with (
            websocket(redis_port, cookies) as watcher,
            websocket(redis_port, cookies) as writer,
        ):
            row = await call(watcher, "shop.Product.retrieve", {"id": 1})
            assert row["data"]["name"] == "Pocket Atlas"
            await call(writer, "shop.Product.update", {"id": 1, "price": "7.25"})
            pushed = await next_push(watcher)
            assert (pushed["event"], pushed["data"]["price"]) == ("shop.Product.retrieve", "7.25")
