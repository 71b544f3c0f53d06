"""A WebSocket communicator for ASGI applications in this process, without daphne.

``channels.testing`` imports its live-server test case, which imports daphne, a
server syncbind neither needs nor installs. This communicator is asgiref's, with
the WebSocket calls the test client makes; Channels' ``WebsocketCommunicator``
(a subclass of the same asgiref class) is accepted wherever this one is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock
from urllib.parse import unquote, urlsplit

from asgiref.testing import ApplicationCommunicator


@contextmanager
def _keeping_connections() -> Iterator[None]:
    # As Channels' communicator does: the test owns its database connection (and its
    # transaction); the consumer's per-message clean-up must not close it.
    with mock.patch("channels.db.close_old_connections", lambda: None):
        yield


class WebsocketCommunicator(ApplicationCommunicator):
    """Drive a WebSocket ASGI application: connect, send frames, read what it sends."""

    def __init__(
        self,
        application: Any,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        subprotocols: list[str] | None = None,
    ) -> None:
        url = urlsplit(path)
        scope = {
            "type": "websocket",
            "path": unquote(url.path),
            "query_string": url.query.encode(),
            "headers": list(headers or []),
            "subprotocols": list(subprotocols or []),
        }
        super().__init__(application, scope)

    async def send_input(self, message: dict[str, Any]) -> None:
        with _keeping_connections():
            await super().send_input(message)

    async def receive_output(self, timeout: float = 1) -> dict[str, Any]:
        with _keeping_connections():
            return await super().receive_output(timeout)

    async def connect(self, timeout: float = 1) -> tuple[bool, Any]:
        """``(True, subprotocol)`` if the application accepts, ``(False, close code)`` if not."""
        await self.send_input({"type": "websocket.connect"})
        answer = await self.receive_output(timeout)
        if answer["type"] == "websocket.close":
            return False, answer.get("code", 1000)
        if answer["type"] != "websocket.accept":
            raise AssertionError(f"Expected the handshake's answer, got {answer['type']!r}.")
        return True, answer.get("subprotocol")

    async def send_to(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Send one text or binary frame."""
        if (text_data is None) == (bytes_data is None):
            raise ValueError("Send exactly one of text_data and bytes_data.")
        if text_data is not None:
            await self.send_input({"type": "websocket.receive", "text": text_data})
        else:
            await self.send_input({"type": "websocket.receive", "bytes": bytes_data})

    async def receive_from(self, timeout: float = 1) -> str | bytes:
        """The next frame the application sends (an AssertionError if it closes instead)."""
        message = await self.receive_output(timeout)
        if message["type"] != "websocket.send":
            raise AssertionError(f"Expected a frame, got {message['type']!r}.")
        text = message.get("text")
        return text if text is not None else message["bytes"]

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:
        """Close the socket from the client's side and wait for the application to end."""
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)
