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
    """A bounded FIFO of ASGI send messages, and the task that writes them while any
    are queued.

    An idle connection keeps no writer task and no held queue: with thousands of
    sockets open, those are most of what a connection costs beside the server's own
    (BENCHMARKS.md, memory per idle connection).
    """

    def __init__(
        self, send: Callable[[dict[str, Any]], Coroutine[Any, Any, None]], max_bytes: int
    ) -> None:
        self._send = send
        self._max_bytes = max_bytes
        self._queue: deque[dict[str, Any]] = deque()
        # Pushes queued while a reply is being made, sent right after it (None: none).
        self._held: deque[dict[str, Any]] | None = None
        self._holding = 0
        self._bytes = 0
        self._loop = asyncio.get_running_loop()
        # Writing what is queued; None once the queue is empty (put() starts another).
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        self._sending = False

    @property
    def idle(self) -> bool:
        """Nothing queued (or held) and nothing being written."""
        return not self._queue and not self._held and not self._sending

    def put(self, message: dict[str, Any]) -> None:
        """Queue a message (on the event loop). Never blocks."""
        self._add(self._queue, message)
        self._write_soon()

    async def aput(self, message: dict[str, Any]) -> None:
        """``put`` as an ASGI-style async send callable."""
        self.put(message)

    def push(self, text: str) -> None:
        """Queue a push (on the event loop): behind the reply being made, if any."""
        message = {"type": "websocket.send", "text": text}
        if self._holding:
            if self._held is None:
                self._held = deque()
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
        if not self._holding and self._held is not None:
            self._queue.extend(self._held)
            self._held = None
            self._write_soon()

    def _write_soon(self) -> None:
        # One writer at a time, so frames go out in the order they were queued. It
        # stops only when it finds the queue empty, and nothing is queued between that
        # check and its end (both run on the loop without awaiting).
        if self._task is None and self._queue and not self.closed:
            self._task = self._loop.create_task(self._write(), name="syncbind-outbox")

    def _drop(self) -> None:
        self.closed = True
        self._queue.clear()
        self._held = None
        self._bytes = 0

    def _overflow(self) -> None:
        logger.warning(
            "Closing a WebSocket whose client does not read: over %d bytes waiting", self._max_bytes
        )
        self._drop()
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
        try:
            while self._queue:
                message = self._queue.popleft()
                self._bytes -= _size(message)
                self._sending = True
                try:
                    await self._send(message)
                except Exception:
                    # The socket is gone; the consumer's disconnect cleans up.
                    logger.debug("WebSocket send failed; dropping the outbox", exc_info=True)
                    self._drop()
                    return
                finally:
                    self._sending = False
        finally:
            self._task = None

    async def aclose(self, timeout: float = 1.0) -> None:
        """Let queued frames go out, the one being written included (within
        ``timeout``), then stop the writer."""
        deadline = self._loop.time() + timeout
        while not self.idle and self._task is not None and self._loop.time() < deadline:
            await asyncio.sleep(0.01)
        self.closed = True
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
