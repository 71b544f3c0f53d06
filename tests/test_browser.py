"""The sample site in a real browser: Playwright driving Debian's headless Chromium.

Two pages stay in sync without reloads; admin edits appear live; validation errors
appear next to their fields; the raw WebSocket snippet works from the console; and
after the server restarts the page reconnects and keeps updating.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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

    site["server"].__exit__(None, None, None)
    expect(page.locator("#connection")).to_have_text("reconnecting…")
    site["server"] = site["start"]()
    site["server"].__enter__()
    expect(page.locator("#connection")).to_have_text("live", timeout=20_000)

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
