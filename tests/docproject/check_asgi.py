"""The project's asgi.py as a browser meets it: static files over HTTP, a logged-in
WebSocket on /ws/ through the origin check and the session middleware, and a token
client on another origin.

``python check_asgi.py`` after the README's files are written (tests/test_docs.py).
"""

import asyncio
import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

from mysite.asgi import application  # noqa: E402, I001  (first: it sets Django up)

from asgiref.testing import ApplicationCommunicator  # noqa: E402
from channels.testing import WebsocketCommunicator  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from syncbind.authentication import make_token  # noqa: E402

TOKENS_TOO = {
    "AUTHENTICATION_CLASSES": [
        "syncbind.authentication.SessionAuthentication",
        "syncbind.authentication.TokenAuthentication",
    ]
}


def session_cookie(username):
    """Log ``username`` in as a browser would: the page sends them to the login form,
    which sends them back to the page (LOGIN_REDIRECT_URL); their session cookie."""
    get_user_model().objects.create_user(username, password="pw")
    client = Client(enforce_csrf_checks=True)
    assert client.get("/").url == "/accounts/login/?next=/"
    form = client.get("/accounts/login/")
    assert form.status_code == 200 and b'name="username"' in form.content, form.content
    credentials = {"username": username, "password": "pw"}
    logged_in = client.post(
        "/accounts/login/",
        {**credentials, "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
    )
    assert logged_in.url == "/", logged_in  # LOGIN_REDIRECT_URL: the notes page
    page = client.get("/")
    assert page.status_code == 200 and b"/static/syncbind/syncbind.js" in page.content
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def get(path):
    """(status, body) of a GET, the body read whole however it is streamed."""
    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": []}
    http = ApplicationCommunicator(application, {**scope, "http_version": "1.1"})
    await http.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await http.receive_output(5)
    body = b""
    while True:
        chunk = await http.receive_output(5)
        body += chunk.get("body", b"")
        if not chunk.get("more_body"):
            return start["status"], body


async def main():
    status, body = await get("/static/syncbind/syncbind.js")
    assert status == 200, status
    assert b"export class SyncBind" in body

    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost")]
    ada = await asyncio.to_thread(session_cookie, "ada")
    socket = WebsocketCommunicator(application, "/ws/", headers=[*headers, (b"cookie", ada)])
    connected, _ = await socket.connect()
    assert connected, "the logged-in handshake was refused"
    await socket.send_to(
        text_data=json.dumps({"event": "shop.Note.create", "data": {"text": "hi"}})
    )
    reply = json.loads(await socket.receive_from(5))
    assert reply["data"]["success"] is True, reply
    await socket.disconnect()

    elsewhere = [(b"host", b"localhost"), (b"origin", b"http://evil.example"), (b"cookie", ada)]
    refused = WebsocketCommunicator(application, "/ws/", headers=elsewhere)
    connected, _ = await refused.connect()
    assert not connected, "another site's page was let in"

    anonymous = WebsocketCommunicator(application, "/ws/", headers=headers)
    connected, _ = await anonymous.connect()
    assert not connected, "an anonymous handshake was accepted"

    # A page on another origin (or a mobile web view) with a token of its own.
    token = await asyncio.to_thread(
        lambda: make_token(get_user_model().objects.get(username="ada"))
    )
    with override_settings(SYNCBIND=TOKENS_TOO):
        elsewhere = [(b"host", b"localhost"), (b"origin", b"https://app.elsewhere.example")]
        protocols = ["syncbind", f"syncbind.token.{token}"]
        socket = WebsocketCommunicator(
            application, "/ws/", headers=elsewhere, subprotocols=protocols
        )
        connected, _ = await socket.connect()
        assert connected, "a token client on another origin was refused"
        await socket.send_to(text_data=json.dumps({"event": "shop.Note.list", "data": {}}))
        reply = json.loads(await socket.receive_from(5))
        assert [row["text"] for row in reply["data"]["rows"]] == ["hi"], reply
        await socket.disconnect()


call_command("migrate", run_syncdb=True, verbosity=0)
asyncio.run(main())
print("asgi ok")
