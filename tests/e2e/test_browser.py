"""The sample site in a real browser: Playwright driving Debian's headless Chromium.

Two pages stay in sync without reloads; admin edits appear live; validation errors
appear next to their fields; the raw WebSocket snippet works from the console;
after the server restarts the page reconnects, resumes its live views without the
rows sent again, and keeps updating; and live views the server ends (a permission
taken away) see their end and nothing after it. Last, syncbind.js against a scripted
WebSocket: which version each live view sends again, and what it renders.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.servers import ROOT, free_port, server_process

pytestmark = pytest.mark.e2e

SITE_DIR = ROOT / "sample_site"
SETTINGS = "sample_site.settings"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOT = ROOT / "docs" / "screenshot.png"


def chromium_path() -> str:
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path:
        return path
    reason = "Debian's chromium is not installed (make test installs it where apt-get is available)"
    if os.environ.get("SYNCBIND_REQUIRE_SERVICES"):
        pytest.fail(reason + " and SYNCBIND_REQUIRE_SERVICES is set")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The sample site on a fresh demo database: yields a function that (re)starts it."""
    env = {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "SAMPLE_SITE_DB": str(tmp_path_factory.mktemp("site") / "db.sqlite3"),
    }
    for command in (["migrate", "--noinput"], ["demo_setup"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=SITE_DIR,
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
    port = free_port()

    def start():
        return server_process(
            "sample_site.asgi:application",
            env=env,
            cwd=SITE_DIR,
            settings_module=SETTINGS,
            port=port,
        )

    server = start()
    server.__enter__()
    yield {"port": port, "env": env, "start": start, "server": server}
    site_server = server
    site_server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def logged_in_page(browser, site, username="demo"):
    page = browser.new_context(viewport={"width": 1000, "height": 900}).new_page()
    base = f"http://127.0.0.1:{site['port']}"
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", username)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def recorded_frames(page):
    """The frames of the sockets ``page`` opens from now on, as (direction, message)
    pairs, direction "sent" or "received", in the order the page saw them."""
    frames = []

    def follow(ws):
        ws.on("framesent", lambda text: frames.append(("sent", json.loads(text))))
        ws.on("framereceived", lambda text: frames.append(("received", json.loads(text))))

    page.on("websocket", follow)
    return frames


def row(page, name):
    return page.locator("#products tbody tr", has_text=name)


def test_two_windows_update_each_other(browser, site):
    from playwright.sync_api import expect

    a = logged_in_page(browser, site)
    b = logged_in_page(browser, site)
    expect(a.locator("#page-info")).to_contain_text("30 products")
    expect(b.locator("#connection")).to_have_text("live")

    # Create in A, see it in B (search narrows both lists to the new row).
    for page in (a, b):
        page.fill("#query", "Lantern")
    a.fill("#product-form >> [name=name]", "Lantern")
    a.fill("#product-form >> [name=price]", "12.50")
    a.select_option("#product-form >> [name=category]", label="Garden")
    a.click("#save")
    expect(row(b, "Lantern")).to_contain_text("12.50")

    # Edit in B, see it in A.
    row(b, "Lantern").locator("button.edit").click()
    b.fill("#product-form >> [name=price]", "14.00")
    b.click("#save")
    expect(row(a, "Lantern")).to_contain_text("14.00")

    # Delete in A, gone from B.
    row(a, "Lantern").locator("button.delete").click()
    expect(row(b, "Lantern")).to_have_count(0)
    expect(b.locator("#page-info")).to_contain_text("0 products")


def test_validation_errors_show_next_to_fields(browser, site):
    from playwright.sync_api import expect

    page = logged_in_page(browser, site)
    page.fill("#product-form >> [name=name]", "")
    page.fill("#product-form >> [name=price]", "-3")
    page.click("#save")
    expect(page.locator('[data-for="name"]')).to_have_text("This field is required.")
    expect(page.locator('[data-for="price"]')).to_contain_text("greater than or equal to 0")


def test_admin_change_appears_live(browser, site):
    from playwright.sync_api import expect

    page = logged_in_page(browser, site)
    page.fill("#query", "Pruning")
    expect(row(page, "Pruning")).to_have_count(1)
    admin = logged_in_page(browser, site)
    base = f"http://127.0.0.1:{site['port']}"
    admin.goto(f"{base}/admin/shop/product/?q=Pruning")
    admin.locator("#result_list tbody th a").first.click()
    admin.fill("input[name=name]", "Pruning shears (admin edit)")
    admin.click("input[name=_save]")
    expect(row(page, "admin edit")).to_be_visible()


def test_raw_websocket_snippet_from_the_console(browser, site):
    page = logged_in_page(browser, site)
    reply = page.evaluate(
        """() => new Promise((resolve) => {
            const ws = new WebSocket("ws://" + location.host + "/ws/");
            ws.onmessage = (e) => { resolve(JSON.parse(e.data)); ws.close(); };
            ws.onopen = () => ws.send(JSON.stringify({event: "shop.Product.retrieve", data: {id: 1}}));
        })"""
    )
    assert reply["event"] == "shop.Product.retrieve"
    assert reply["data"]["id"] == 1 and reply["data"]["name"]


def test_reconnects_after_a_server_restart(browser, site):
    from playwright.sync_api import expect

    page = logged_in_page(browser, site)
    page.fill("#query", "Salad Bowl")
    expect(row(page, "Salad Bowl")).to_have_count(1)
    if not SCREENSHOT.exists():
        page.fill("#query", "")
        expect(page.locator("#page-info")).to_contain_text("products")
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.fill("#query", "Salad Bowl")

    frames = recorded_frames(page)  # on the sockets opened from now on
    site["server"].__exit__(None, None, None)
    expect(page.locator("#connection")).to_have_text("reconnecting…")
    site["server"] = site["start"]()
    site["server"].__enter__()
    expect(page.locator("#connection")).to_have_text("live", timeout=20_000)

    # The page's list was asked for again with the version of the rows it shows and,
    # nothing being written meanwhile, not sent again (versions outlive the server).
    # The connection answers in order: once a later reply is in, so is the list's.
    page.evaluate('async () => { await sb.send("shop.Product.retrieve", {id: 1}); }')
    resent = [m for way, m in frames if way == "sent" and m["event"] == "shop.Product.search#page"]
    assert len(resent) == 1 and resent[0]["version"]
    replies = [
        m
        for way, m in frames
        if way == "received" and m.get("request_id") == resent[0]["request_id"]
    ]
    assert [(reply["resume"], "data" in reply) for reply in replies] == [("unchanged", False)]
    expect(row(page, "Salad Bowl")).to_have_count(1)

    # A change made after the restart (from another window) reaches the page:
    # its subscription was sent again on reconnect.
    other = logged_in_page(browser, site)
    expect(other.locator("#connection")).to_have_text("live")
    other.evaluate(
        """async () => {
            const page = await sb.send("shop.Product.search", {query: "Salad Bowl", subscribe: false});
            await sb.send("shop.Product.update", {id: page.rows[0].id, name: "Salad Bowl (after restart)"});
        }"""
    )
    expect(row(page, "after restart")).to_be_visible()


def test_closing_one_live_view_keeps_the_others(browser, site):
    """Two untagged live views of one row: closing one must not end the other."""
    page = logged_in_page(browser, site)
    page.evaluate(
        """async () => {
            window.seen = {first: [], second: []};
            const first = sb.live("shop.Product.retrieve", {id: 2}, (row) => seen.first.push(row && row.name));
            const second = sb.live("shop.Product.retrieve", {id: 2}, (row) => seen.second.push(row && row.name));
            window.views = {first, second};
        }"""
    )
    page.wait_for_function("seen.first.length === 1 && seen.second.length === 1")
    page.evaluate(
        """async () => {
            await views.first.close();
            await sb.send("shop.Product.update", {id: 2, name: "renamed after a close"});
        }"""
    )
    page.wait_for_function("seen.second.includes('renamed after a close')")
    assert page.evaluate("seen.first.includes('renamed after a close')") is False


def manage(site, *args):
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=SITE_DIR,
        env={**os.environ, **site["env"]},
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1]  # shell may print a line of its own first


def test_a_token_connects_a_page_without_a_session(browser, site):
    """``new SyncBind(url, {token})``: the token goes as a subprotocol (TokenAuthentication)."""
    token = manage(
        site,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        "from syncbind.authentication import make_token; "
        "print(make_token(get_user_model().objects.get(username='alice')))",
    )
    page = browser.new_context().new_page()
    page.goto(f"http://127.0.0.1:{site['port']}/accounts/login/")  # no session
    result = page.evaluate(
        """async (token) => {
            const { SyncBind } = await import("/static/syncbind/syncbind.js");
            const withToken = new SyncBind(undefined, {token: async () => token});
            const row = await withToken.send("shop.Product.retrieve", {id: 1});
            const without = new SyncBind(undefined, {maxDelay: 60000});
            const statuses = [];
            without.on("status", (status) => statuses.push(status));
            await new Promise((resolve) => setTimeout(resolve, 1500));
            without.close();
            // A token no subprotocol can carry fails the request instead of hanging it.
            const malformed = new SyncBind(undefined, {token: "has spaces"});
            const failure = await malformed.send("shop.Product.retrieve", {id: 1}).catch((e) => e.code);
            malformed.close();
            return {name: row.name, statuses, failure};
        }""",
        token,
    )
    assert result["name"] == "Pocket Atlas"
    assert result["failure"] == "disconnected"
    # Without a token or a session the handshake is refused (anonymous users may not connect).
    assert "open" not in result["statuses"] and "closed" in result["statuses"]


@contextmanager
def elsewhere_server():
    """A page of another origin on the same site, http://127.0.0.1:<another port>/, that
    serves syncbind.js itself (a module script from another origin would need CORS). The
    browser sends it the site's cookies: they do not depend on the port."""
    client = (ROOT / "syncbind" / "static" / "syncbind" / "syncbind.js").read_bytes()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            script = self.path == "/syncbind.js"
            body = client if script else b"<!doctype html><title>elsewhere</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript" if script else "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_on_another_origin_connects_with_a_token_and_not_with_the_session(browser, site):
    """Issue 25, point 4: the demo's routing (the README's, SessionOriginValidator) lets
    a page on another origin connect with a token, as the token's user; the visitor's
    session (demo's, logged in on the site in the same browser, its cookie sent with
    both handshakes) opens no socket for that page."""
    token = manage(
        site,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        "from syncbind.authentication import make_token; "
        "print(make_token(get_user_model().objects.get(username='alice')))",
    )
    page = logged_in_page(browser, site)  # the demo's session cookie is in this browser
    with elsewhere_server() as elsewhere:
        page.goto(f"{elsewhere}/")
        result = page.evaluate(
            """async ([url, token]) => {
                const { SyncBind } = await import("/syncbind.js");
                const withToken = new SyncBind(url, {token});
                const row = await withToken.send("shop.Product.retrieve", {id: 1});
                // alice may not delete (demo may): the socket is alice's, not the session's.
                const asAlice = await withToken.send("shop.Product.delete", {id: 999999}).catch((e) => e.code);
                withToken.close();
                const bySession = new SyncBind(url, {maxDelay: 60000});
                const statuses = [];
                bySession.on("status", (status) => statuses.push(status));
                const refused = await bySession.send("shop.Product.retrieve", {id: 1}).catch((e) => e.code);
                bySession.close();
                return {origin: location.origin, name: row.name, asAlice, refused, statuses};
            }""",
            [f"ws://127.0.0.1:{site['port']}/ws/", token],
        )
        assert result["origin"] == elsewhere
        assert result["name"] == "Pocket Atlas"
        assert result["asAlice"] == "permission_denied"
        assert result["refused"] == "disconnected"
        assert "open" not in result["statuses"]


def test_a_live_list_with_a_query_keeps_updating(browser, site):
    """A list with a query is pushed as ``search``: live() follows it all the same."""
    page = logged_in_page(browser, site)
    page.evaluate(
        """async () => {
            window.names = [];
            sb.live("shop.Product.list", {query: "Rain Gauge"}, (page) => names.push(page.rows[0].name));
        }"""
    )
    page.wait_for_function("names.length === 1")
    page.evaluate(
        """async () => {
            const page = await sb.send("shop.Product.search", {query: "Rain Gauge", subscribe: false});
            await sb.send("shop.Product.update", {id: page.rows[0].id, name: "Rain Gauge (renamed)"});
        }"""
    )
    page.wait_for_function("names.includes('Rain Gauge (renamed)')")


def test_demo_edit_from_another_process_reaches_the_page(browser, site):
    from playwright.sync_api import expect

    page = logged_in_page(browser, site)
    page.fill("#query", "Seed Tray")
    expect(row(page, "Seed Tray")).to_contain_text("4.50")
    expect(row(page, "Seed Tray")).to_contain_text("Garden")  # the category's name, not its id
    manage(site, "demo_edit", "--port", str(site["port"]), "--product", "Seed Tray")
    expect(row(page, "Seed Tray")).to_contain_text("5.50")


def new_user(site, username, codenames):
    """Create ``username`` (password ``username``) holding the shop's ``codenames``; returns
    the pk of its view_product permission (its value in the admin's permission widget).

    Made in another process: creating rows needs no signal, unlike the change under test.
    """
    return manage(
        site,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        "from django.contrib.auth.models import Permission; "
        f"user = get_user_model().objects.create_user({username!r}, password={username!r}); "
        "shop = Permission.objects.filter(content_type__app_label='shop'); "
        f"user.user_permissions.add(*shop.filter(codename__in={codenames!r})); "
        "print(shop.get(codename='view_product').pk)",
    )


def revoke_in_the_admin(browser, site, username, permission_pk):
    """Take a permission from a user the way a staff member would: the user's admin page,
    in the server process, whose signals reach its connections."""
    from playwright.sync_api import expect

    admin = logged_in_page(browser, site)
    base = f"http://127.0.0.1:{site['port']}"
    admin.goto(f"{base}/admin/auth/user/?q={username}")
    admin.locator("#result_list tbody th a", has_text=username).click()
    admin.select_option("#id_user_permissions_to", value=permission_pk)
    admin.click("#id_user_permissions_remove")
    admin.click("input[name=_save]")
    expect(admin.locator("ul.messagelist li.success")).to_contain_text(username)


# The page's own connection: live views of a product row and of a page of products
# (tagged, so that their frames can be told apart), push handlers on the same events,
# an "ended" handler, and a live view of the user's notes, which it may still read.
ENDED_PAGE_SETUP = """async (pk) => {
    const { SyncBind } = await import("/static/syncbind/syncbind.js");
    const mine = new SyncBind();
    const render = (calls) => (data, info) => calls.push({
        name: data && (data.name || (data.rows && data.rows.map((row) => row.name || row.text).join())),
        code: info.error ? info.error.code : null,
        ended: info.ended === true,
    });
    window.mine = mine;
    window.seen = {row: [], page: [], notes: [], pushes: [], ended: []};
    for (const event of ["shop.Product.retrieve#followed-row", "shop.Product.delete#followed-row",
                         "shop.Product.list#followed-page", "shop.Product.search#followed-page"]) {
        mine.on(event, (data, message) => seen.pushes.push(message.event));
    }
    mine.on("ended", (error, message) => seen.ended.push(
        {event: message.event, code: error.code, ended: message.ended, data: message.data || null}
    ));
    mine.live("shop.Product.retrieve#followed-row", {id: pk}, render(seen.row));
    mine.live("shop.Product.list#followed-page", {filters: {name__icontains: "Compost"}}, render(seen.page));
    mine.live("shop.Note.list#notes", {}, render(seen.notes));
}"""

DENIED = "permission_denied"
FOLLOWED = ["shop.Product.list#followed-page", "shop.Product.retrieve#followed-row"]


def test_a_revoked_permission_ends_live_views_in_the_page(browser, site):
    """The server's ``ended`` frame (docs/protocol.md) in syncbind.js: each live() view
    gets render(null, {error, ended: true}) last, "ended" handlers run and push handlers
    do not, nothing more reaches the ended views, and a reconnect does not ask for them
    again."""
    permission = new_user(site, "bob", ["view_product", "view_category"])
    page = logged_in_page(browser, site, "bob")
    sent = []  # every frame the page writes, on any of its sockets
    page.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(frame)))
    editor = logged_in_page(browser, site)  # demo, who keeps every permission
    pk = editor.evaluate(
        """async () => {
            const found = await sb.send("shop.Product.list", {filters: {name__icontains: "Compost"}});
            const pk = found.rows[0].id;
            window.watched = [];
            sb.live("shop.Product.retrieve#watch", {id: pk}, (row) => watched.push(row.name));
            return pk;
        }"""
    )
    page.evaluate(ENDED_PAGE_SETUP, pk)
    page.wait_for_function("seen.row.length && seen.page.length && seen.notes.length")
    editor.wait_for_function("watched.length === 1")

    # Before the revocation the views follow the row, through the push handlers too.
    rename = 'async ([pk, name]) => { await sb.send("shop.Product.update", {id: pk, name}); }'
    editor.evaluate(rename, [pk, "Compost Bin (before)"])
    page.wait_for_function(
        "seen.row.at(-1).name === 'Compost Bin (before)' && "
        "seen.page.at(-1).name === 'Compost Bin (before)' && seen.pushes.length === 2"
    )
    assert sorted(page.evaluate("seen.pushes")) == FOLLOWED
    assert page.evaluate("seen.ended") == []

    revoke_in_the_admin(browser, site, "bob", permission)
    page.wait_for_function("seen.ended.length === 2")
    ended = page.evaluate("seen")
    last = {"name": None, "code": DENIED, "ended": True}
    assert ended["row"][-1] == last and ended["page"][-1] == last
    denied = {
        "code": DENIED,
        "message": "You do not have permission to perform this action.",
    }
    assert sorted(ended["ended"], key=lambda e: e["event"]) == [
        {"event": "shop.Product.list#followed-page", "code": DENIED, "ended": denied, "data": None},
        {
            "event": "shop.Product.retrieve#followed-row",
            "code": DENIED,
            "ended": denied,
            "data": {"id": pk},
        },
    ]
    assert sorted(ended["pushes"]) == FOLLOWED

    # A later change to the row: once the editor's own view of it shows the change, the
    # server has handled it (one process handles changes in order); then a note the user
    # may still read reaches its view, after anything that change could have sent.
    editor.evaluate(rename, [pk, "Compost Bin (after)"])
    editor.wait_for_function("watched.includes('Compost Bin (after)')")
    page.evaluate('async () => { await mine.send("shop.Note.create", {text: "still here"}); }')
    page.wait_for_function("seen.notes.at(-1).name === 'still here'")
    after = page.evaluate("seen")
    assert after["row"] == ended["row"] and after["page"] == ended["page"]
    assert after["pushes"] == ended["pushes"] and after["ended"] == ended["ended"]

    # After a server restart the page asks again for the views it follows, and for
    # those only: the notes' view, not the ended ones.
    before_restart = len(sent)
    renders = len(after["notes"])
    site["server"].__exit__(None, None, None)
    site["server"] = site["start"]()
    site["server"].__enter__()
    page.wait_for_function(
        f"seen.notes.length > {renders} && seen.notes.at(-1).name === 'still here'",
        timeout=20_000,
    )
    # The page re-sends its live views in the order it opened them, the notes' last:
    # once that frame is seen, any request for an ended view would have been seen too.
    events = [json.loads(frame)["event"] for frame in sent[before_restart:]]
    assert "shop.Note.list#notes" in events
    assert not [event for event in events if event.endswith(("#followed-row", "#followed-page"))]
    final = page.evaluate("seen")
    assert final["row"] == ended["row"] and final["page"] == ended["page"]
    assert final["pushes"] == ended["pushes"] and final["ended"] == ended["ended"]


def test_a_live_view_outlives_many_plain_reads(browser, site):
    """live() keeps its subscription ("subscribe": true): a page that reads 150 other
    pages still sees its row change, and each plain read's subscription ended to make
    room reaches the "ended" handlers (issue 23, point 3)."""
    page = logged_in_page(browser, site)
    page.evaluate(
        """async () => {
            window.names = [];
            window.endings = [];
            sb.on("ended", (error, message) => endings.push(`${message.event} ${error.code}`));
            sb.live("shop.Product.retrieve#kept", {id: 3}, (row, info) => names.push(row ? row.name : info));
        }"""
    )
    page.wait_for_function("names.length === 1")
    page.evaluate(
        """async () => {
            for (let number = 1; number <= 150; number++) {
                await sb.send("shop.Product.list#browse", {limit: 1, page: number});
            }
            await sb.send("shop.Product.update", {id: 3, name: "kept through the reads"});
        }"""
    )
    page.wait_for_function("names.includes('kept through the reads')")
    # MAX_SUBSCRIPTION_KEYS (100) less the page's own live views: at least 50 ended.
    page.wait_for_function("endings.length >= 50")
    endings = page.evaluate("endings")
    assert set(endings) == {"shop.Product.list#browse limit_exceeded"}
    assert page.evaluate("names.every((name) => typeof name === 'string')")


def test_the_client_reports_each_connection_attempt(browser, site):
    """docs/javascript.md: status handlers hear "connecting" when an attempt starts,
    the first one and each reconnection, then "open" or "closed"."""
    page = logged_in_page(browser, site)
    result = page.evaluate(
        """async (port) => {
            const { SyncBind } = await import("/static/syncbind/syncbind.js");
            const statuses = [];
            const connected = new SyncBind();
            connected.on("status", (status) => statuses.push(status));
            await connected.send("shop.Product.retrieve", {id: 1});
            const untilOpen = [...statuses];
            connected.close();
            // Nothing listens on that port: each attempt fails and is retried.
            const refused = [];
            const nowhere = new SyncBind(`ws://127.0.0.1:${port}/ws/`, {minDelay: 50, maxDelay: 50});
            nowhere.on("status", (status) => refused.push(status));
            while (refused.length < 4) await new Promise((resolve) => setTimeout(resolve, 20));
            nowhere.close();
            return {untilOpen, refused: refused.slice(0, 4)};
        }""",
        free_port(),
    )
    assert result == {
        "untilOpen": ["connecting", "open"],
        "refused": ["connecting", "closed", "connecting", "closed"],
    }


def test_a_live_view_renders_the_servers_refusal(browser, site):
    """docs/javascript.md, "What render() is called with": a request the server
    refuses calls render(null, {error}) once, error a SyncBindError with the reply's
    code, message and fields, and nothing follows for that view."""
    page = logged_in_page(browser, site)
    result = page.evaluate(
        """async () => {
            const { SyncBind, SyncBindError } = await import("/static/syncbind/syncbind.js");
            const sb = new SyncBind();
            const calls = [];
            const rendered = (event, data) => new Promise((resolve) => {
                sb.live(event, data, (shown, info) => {
                    const {error} = info;
                    calls.push({event, shown, keys: Object.keys(info), code: error.code,
                                fields: error.fields, message: error.message,
                                isError: error instanceof SyncBindError});
                    resolve();
                });
            });
            await rendered("shop.Product.retrieve#gone", {id: 999999});
            await rendered("shop.Product.list#bad", {filters: {nope: "1"}});
            await sb.send("shop.Product.update", {id: 1, name: "Pocket Atlas 2"});  // a change
            await sb.send("shop.Product.update", {id: 1, name: "Pocket Atlas"});
            sb.close();
            return calls;
        }"""
    )
    assert result == [
        {
            "event": "shop.Product.retrieve#gone",
            "shown": None,
            "keys": ["error"],
            "code": "not_found",
            "fields": {},
            "message": "Not found.",
            "isError": True,
        },
        {
            "event": "shop.Product.list#bad",
            "shown": None,
            "keys": ["error"],
            "code": "invalid",
            "fields": {"nope": ["Unknown filter."]},
            "message": "Invalid data.",
            "isError": True,
        },
    ]


def test_delete_buttons_only_for_users_who_may_delete(browser, site):
    """alice may change products but not delete them: her rows have no delete button."""
    from playwright.sync_api import expect

    alice = logged_in_page(browser, site, "alice")
    expect(alice.locator("#connection")).to_have_text("live")
    expect(alice.locator("#products tbody tr").first).to_be_visible()
    rows = alice.locator("#products tbody tr").count()
    expect(alice.locator("#products button.edit")).to_have_count(rows)
    expect(alice.locator("#products button.delete")).to_have_count(0)

    demo = logged_in_page(browser, site)
    expect(demo.locator("#products tbody tr").first).to_be_visible()
    rows = demo.locator("#products tbody tr").count()
    expect(demo.locator("#products button.delete")).to_have_count(rows)


def test_live_views_resume_after_a_dropped_connection(browser, site):
    """After a reconnect each live() view is asked for again with the version of the
    data it shows (docs/javascript.md, "Reconnecting"): nothing changed meanwhile, so
    the server answers ``resume: "unchanged"`` without the rows, the page keeps them,
    render() is called again with the data it had (never with none), and a change made
    after the reconnect is rendered."""
    from playwright.sync_api import expect

    page = logged_in_page(browser, site)
    frames = recorded_frames(page)
    page.reload()  # a socket of its own, whose frames are seen from the first
    products = page.locator("#products tbody tr")
    expect(products.first).to_be_visible()
    pk = int(products.first.get_attribute("data-id"))
    # A view of the first row, opened last: it is asked for again last, too.
    page.evaluate(
        """(pk) => {
            window.calls = [];
            sb.live("shop.Product.retrieve#resumed", {id: pk}, (row, info) => calls.push(
                {name: row ? row.name : null, info: JSON.parse(JSON.stringify(info))}));
        }""",
        pk,
    )
    page.wait_for_function("calls.length === 1")
    shown = products.all_inner_texts()
    name = page.evaluate("calls[0].name")
    assert page.evaluate("calls") == [{"name": name, "info": {}}]
    versions = {
        m["event"]: m["version"] for way, m in frames if way == "received" and "version" in m
    }
    views = ["shop.Category.list#all", "shop.Product.list#page", "shop.Product.retrieve#resumed"]
    assert sorted(versions) == views

    before = len(frames)
    page.evaluate("sb.socket.close()")  # the connection drops; nothing is written meanwhile
    page.wait_for_function("calls.length === 2")
    assert page.evaluate("calls[1]") == {"name": name, "info": {"resume": "unchanged"}}
    expect(page.locator("#connection")).to_have_text("live")
    # One connection's messages are answered in order: the last view's reply came last.
    after = frames[before:]
    resent = {m["request_id"]: m for way, m in after if way == "sent"}
    assert sorted(m["event"] for m in resent.values()) == views
    for request in resent.values():
        assert request["version"] == versions[request["event"]]
    replies = [m for way, m in after if way == "received" and m.get("request_id") in resent]
    assert [sorted(reply) for reply in replies] == [
        ["event", "request_id", "resume", "version"]
    ] * 3  # no data: the rows were not sent again
    assert {reply["resume"] for reply in replies} == {"unchanged"}
    assert products.all_inner_texts() == shown

    # Still live: a change made now reaches the view and the page (the list is ordered
    # by name, so the renamed row stays first).
    renamed = f"{name} (after the reconnect)"
    page.evaluate(
        'async ([pk, name]) => { await sb.send("shop.Product.update", {id: pk, name}); }',
        [pk, renamed],
    )
    page.wait_for_function("calls.length === 3")
    assert page.evaluate("calls[2]") == {"name": renamed, "info": {}}
    expect(products.first).to_contain_text(renamed)


# A WebSocket the test plays the server of: syncbind.js talks to it as to a real one.
SCRIPTED_SOCKET = """
window.sockets = [];
window.WebSocket = class ScriptedSocket extends EventTarget {
    static OPEN = 1;
    constructor(url) {
        super();
        this.readyState = 0;
        this.sent = [];
        sockets.push(this);
        setTimeout(() => { this.readyState = 1; this.dispatchEvent(new Event("open")); });
    }
    send(frame) { this.sent.push(JSON.parse(frame)); }
    // Each frame, and the close, is a task of its own, as from a real socket.
    close() { this.readyState = 3; this.later(new Event("close")); }
    receive(message) { this.later(new MessageEvent("message", {data: JSON.stringify(message)})); }
    later(event) { setTimeout(() => this.dispatchEvent(event)); }
    // Answer the request sent for `event` with `reply` (request_id and event added).
    answer(event, reply) {
        const request = this.sent.find((frame) => frame.event === event);
        this.receive({event, request_id: request.request_id, ...reply});
    }
};
// Resolves once the frames received so far have been handled.
window.delivered = () => new Promise((resolve) => setTimeout(resolve));
"""

SCRIPTED_VIEWS = """async () => {
    const { SyncBind } = await import("/static/syncbind/syncbind.js");
    window.sb = new SyncBind("ws://syncbind.test/ws/", {minDelay: 1, maxDelay: 1});
    window.calls = {page: [], row: []};
    const record = (calls) => (data, info) => calls.push({
        data: data ?? null, info: {...info, ...(info.error && {error: info.error.code})},
    });
    sb.live("shop.Product.list#page", {query: "lamp"}, record(calls.page));
    sb.live("shop.Product.retrieve#row", {id: 1}, record(calls.row));
}"""

PAGE = {"page": 1, "limit": 25, "count": 1, "rows": [{"id": 1, "name": "Lamp"}]}
LATER_PAGE = {**PAGE, "rows": [{"id": 1, "name": "Lamp (later)"}]}
ROW = {"id": 1, "name": "Lamp"}
LATER_ROW = {"id": 1, "name": "Lamp (later)"}


def scripted_page(browser):
    """A page whose syncbind.js talks to a scripted WebSocket (SCRIPTED_SOCKET)."""
    page = browser.new_context().new_page()
    script = (ROOT / "syncbind" / "static" / "syncbind" / "syncbind.js").read_text()
    page.route(
        "http://syncbind.test/**",
        lambda route: route.fulfill(
            content_type="text/javascript" if route.request.url.endswith(".js") else "text/html",
            body=script if route.request.url.endswith(".js") else "<!doctype html><title>t</title>",
        ),
    )
    page.add_init_script(SCRIPTED_SOCKET)
    page.goto("http://syncbind.test/")
    page.evaluate(SCRIPTED_VIEWS)
    return page


def reconnect(page, number):
    """Drop the connection; returns the frames sent on the next one (the views' requests)."""
    page.evaluate("sockets.at(-1).close()")
    page.wait_for_function(f"sockets.length === {number} && sockets.at(-1).sent.length === 2")
    return page.evaluate("sockets.at(-1).sent.map(({request_id, ...frame}) => frame)")


def test_live_views_resume_from_the_version_they_hold(browser):
    """syncbind.js against a scripted server: a view keeps the version of its last reply
    or push (a list's push under "search" included) and sends it again after a reconnect;
    "unchanged" renders the data held, "changed" the new data; a request that failed for
    the connection keeps the version, a deletion or an error from the server drops it,
    and replies without a version (a server without change capture) are asked for again
    without one."""
    page = scripted_page(browser)
    page.wait_for_function("sockets.length === 1 && sockets[0].sent.length === 2")
    page.evaluate(
        f"""async () => {{
            const socket = sockets[0];
            socket.answer("shop.Product.list#page", {{data: {json.dumps(PAGE)}, version: "5"}});
            socket.answer("shop.Product.retrieve#row", {{data: {json.dumps(ROW)}, version: "5"}});
            socket.receive({{event: "shop.Product.search#page", data: {json.dumps(LATER_PAGE)}, version: "7"}});
            await delivered();
        }}"""
    )
    page_request = {"event": "shop.Product.list#page", "data": {"query": "lamp", "subscribe": True}}
    row_request = {"event": "shop.Product.retrieve#row", "data": {"id": 1, "subscribe": True}}
    assert reconnect(page, 2) == [
        {**page_request, "version": "7"},
        {**row_request, "version": "5"},
    ]
    # The connection drops again before the replies: the views hear it, and keep
    # their versions.
    assert reconnect(page, 3) == [
        {**page_request, "version": "7"},
        {**row_request, "version": "5"},
    ]
    page.evaluate(
        f"""async () => {{
            const socket = sockets[2];
            socket.answer("shop.Product.list#page", {{resume: "unchanged", version: "9"}});
            socket.answer("shop.Product.retrieve#row", {{resume: "changed", data: {json.dumps(LATER_ROW)}, version: "9"}});
            await delivered();
        }}"""
    )
    disconnected = {"data": None, "info": {"error": "disconnected"}}
    assert page.evaluate("calls") == {
        "page": [
            {"data": PAGE, "info": {}},
            {"data": LATER_PAGE, "info": {}},
            disconnected,
            {"data": LATER_PAGE, "info": {"resume": "unchanged"}},
        ],
        "row": [
            {"data": ROW, "info": {}},
            disconnected,
            {"data": LATER_ROW, "info": {"resume": "changed"}},
        ],
    }

    # The row is deleted and the page refused: neither is resumed.
    page.evaluate(
        """async () => {
            sockets[2].receive({event: "shop.Product.delete#row", data: {id: 1}, version: "10"});
            await delivered();
        }"""
    )
    assert reconnect(page, 4) == [{**page_request, "version": "9"}, row_request]
    page.evaluate(
        f"""async () => {{
            const socket = sockets[3];
            socket.answer("shop.Product.list#page", {{error: {{code: "permission_denied", message: "No."}}}});
            socket.answer("shop.Product.retrieve#row", {{data: {json.dumps(ROW)}}});
            await delivered();
        }}"""
    )
    # That reply had no version (as from a server without change capture): nor does
    # the next request.
    assert reconnect(page, 5) == [page_request, row_request]
    calls = page.evaluate("calls")
    assert calls["page"][-1] == {"data": None, "info": {"error": "permission_denied"}}
    assert calls["row"][-2:] == [
        {"data": None, "info": {"deleted": True}},
        {"data": ROW, "info": {}},
    ]


def test_a_transaction_s_pushes_are_applied_in_one_task(browser):
    """A syncbind.batch frame (one transaction's pushes) reaches every view it names
    before any other work runs: each render, when it queues a microtask, finds the
    other view already rendered."""
    page = scripted_page(browser)
    page.wait_for_function("sockets.length === 1 && sockets[0].sent.length === 2")
    page.evaluate(
        f"""async () => {{
            const socket = sockets[0];
            socket.answer("shop.Product.list#page", {{data: {json.dumps(PAGE)}}});
            socket.answer("shop.Product.retrieve#row", {{data: {json.dumps(ROW)}}});
            await delivered();
            window.rendered = 0;
            window.seenAfter = [];
            for (const name of ["page", "row"]) {{
                const push = calls[name].push.bind(calls[name]);
                calls[name].push = (call) => {{
                    window.rendered += 1;
                    queueMicrotask(() => window.seenAfter.push(window.rendered));
                    return push(call);
                }};
            }}
            socket.receive({{event: "syncbind.batch", data: [
                {{event: "shop.Product.search#page", data: {json.dumps(LATER_PAGE)}}},
                {{event: "shop.Product.retrieve#row", data: {json.dumps(LATER_ROW)}}},
            ]}});
            await delivered();
        }}"""
    )
    assert page.evaluate("seenAfter") == [2, 2]
    calls = page.evaluate("calls")
    assert calls["page"][-1] == {"data": LATER_PAGE, "info": {}}
    assert calls["row"][-1] == {"data": LATER_ROW, "info": {}}
