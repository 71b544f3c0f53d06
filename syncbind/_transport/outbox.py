"""The outgoing side of one WebSocket: every frame, in order, through one bounded queue.

Replies, pushes, the accept and the close all go through a connection's
:class:`Outbox`, written to the socket by one task. While a reply is being made
(:meth:`Outbox.hold`), pushes wait behind it in the same queue and byte budget,
so a push never overtakes the reply that subscribed to it. So a worker thread never
waits for a slow client (it only queues its reply), the hub never waits for one
either (it only queues pushes), and a client that stops reading cannot make the
server's memory grow without limit: past ``MAX_OUTGOING_BYTES`` queued, the
queue is dropped and the connection closed with code 4008.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from syncbind._wire.protocol import SLOW_CLIENT_CLOSE_CODE, SLOW_CLIENT_REASON

logger = logging.getLogger("syncbind")


def _size(message: dict[str, Any]) -> int:
    return len(message.get("text") or message.get("bytes") or "")


class Outbox:
    """A bounded FIFO of ASGI send messages and the task that writes them."""

    def __init__(
        self, send: Callable[[dict[str, Any]], Coroutine[Any, Any, None]], max_bytes: int
    ) -> None:
        self._send = send
        self._max_bytes = max_bytes
        self._queue: deque[dict[str, Any]] = deque()
        # Pushes queued while a reply is being made, sent right after it.
        self._held: deque[dict[str, Any]] = deque()
        self._holding = 0
        self._bytes = 0
        self._wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._write(), name="syncbind-outbox")
        self.closed = False
        self._sending = False

    @property
    def idle(self) -> bool:
        """Nothing queued (or held) and nothing being written."""
        return not self._queue and not self._held and not self._sending

    def put(self, message: dict[str, Any]) -> None:
        """Queue a message (on the event loop). Never blocks."""
        self._add(self._queue, message)
        self._wakeup.set()

    async def aput(self, message: dict[str, Any]) -> None:
        """``put`` as an ASGI-style async send callable."""
        self.put(message)

    def push(self, text: str) -> None:
        """Queue a push (on the event loop): behind the reply being made, if any."""
        message = {"type": "websocket.send", "text": text}
        if self._holding:
            self._add(self._held, message)
        else:
            self.put(message)

    def _add(self, queue: deque[dict[str, Any]], message: dict[str, Any]) -> None:
        """Append ``message`` to ``queue`` within the byte budget both queues share."""
        if self.closed:
            return
        size = _size(message)
        if self._bytes and self._bytes + size > self._max_bytes:
            self._overflow()
            return
        queue.append(message)
        self._bytes += size

    def hold(self) -> None:
        """A reply is being made: pushes wait behind it from now on (on the loop)."""
        self._holding += 1

    def release(self) -> None:
        """The reply is queued: the pushes held behind it follow it (on the loop)."""
        self._holding -= 1
        if not self._holding and self._held:
            self._queue.extend(self._held)
            self._held.clear()
            self._wakeup.set()

    def _overflow(self) -> None:
        logger.warning(
            "Closing a WebSocket whose client does not read: over %d bytes waiting", self._max_bytes
        )
        self.closed = True
        self._queue.clear()
        self._held.clear()
        self._bytes = 0
        # The writer may be stuck in a send the client never drains: close beside it.
        self._loop.create_task(
            self._send(
                {
                    "type": "websocket.close",
                    "code": SLOW_CLIENT_CLOSE_CODE,
                    "reason": SLOW_CLIENT_REASON,
                }
            )
        )

    async def _write(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                message = self._queue.popleft()
                self._bytes -= _size(message)
                self._sending = True
                try:
                    await self._send(message)
                except Exception:
                    # The socket is gone; the consumer's disconnect cleans up.
                    logger.debug("WebSocket send failed; dropping the outbox", exc_info=True)
                    self.closed = True
                    self._queue.clear()
                    self._held.clear()
                    self._bytes = 0
                    return
                finally:
                    self._sending = False

    async def aclose(self, timeout: float = 1.0) -> None:
        """Let queued frames go out, the one being written included (within
        ``timeout``), then stop the writer."""
        deadline = self._loop.time() + timeout
        while not self.idle and not self._task.done() and self._loop.time() < deadline:
            await asyncio.sleep(0.01)
        self.closed = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
