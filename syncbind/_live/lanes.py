"""The hub's lanes: work of one stream, user or kind apart, so that none waits for another's.

Each stream's changes are processed in a lane of their own, in order (a
stream's next batch waits for its previous one; what arrives meanwhile is
merged, :func:`.server_push.merge`); server pushes have a lane, and credential
messages another. A lane waits for nothing but the credential messages
received before its messages (so a push or a change is never decided on
permissions a credential message already revoked). Refresh jobs
(:meth:`.hub.Hub.holds`) run beside the lanes, one per connection.

The worker threads evaluations may take are :class:`FairSlots`: a lane (one
stream, or one user's refresh jobs) holds at most all of them but one, and a
slot given back goes to the waiting lanes in turn, not to the first waiter.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from syncbind._live import messages, server_push

logger = logging.getLogger("syncbind.live")

AUTH = "auth"  # credential messages (syncbind.auth)
PUSHES = "pushes"  # server pushes (syncbind.push)


def lane_of(message: dict[str, Any]) -> Any:
    """The lane a group message is processed in."""
    kind = messages.kind(message)
    if kind in (messages.CHANGES, messages.JOINED):
        return ("stream", message.get("stream"))
    if kind == messages.AUTH:
        return AUTH
    return PUSHES


class Lane:
    """One lane's messages, processed in order by one task at a time."""

    def __init__(self) -> None:
        # Each message with how many credential messages had been received before it.
        self.messages: list[tuple[dict[str, Any], int]] = []
        self.task: asyncio.Task | None = None
        self.received = 0
        self.done = 0
        self._waiters: list[tuple[int, asyncio.Future]] = []

    async def reached(self, count: int) -> None:
        """Return once ``count`` messages of this lane have been processed."""
        if self.done >= count:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((count, future))
        await future

    def advance(self, count: int) -> None:
        self.done += count
        waiting = []
        for target, future in self._waiters:
            if target > self.done:
                waiting.append((target, future))
            elif not future.done():
                future.set_result(None)
        self._waiters = waiting


class Lanes:
    """The hub's lanes (see the module docstring); ``process`` acts on one message."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, process: Callable[[dict[str, Any]], Awaitable[None]]
    ) -> None:
        self.loop = loop
        self.process = process
        self.auth = Lane()
        # The credential lane stays: the others count its messages.
        self.lanes: dict[Any, Lane] = {AUTH: self.auth}
        # Refresh jobs and markers running, kept until done (the loop keeps weak references).
        self.jobs: set[asyncio.Task] = set()
        self._markers: set[asyncio.Task] = set()

    def put(self, message: dict[str, Any]) -> None:
        """Take a message (on the loop): into its lane, or, for a marker, acted on once
        every lane has processed what it had received before it."""
        if messages.kind(message) == messages.MARKER:
            self._keep(self._markers, self._after_all(message), "syncbind-marker")
            return
        key = lane_of(message)
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = Lane()
        lane.received += 1
        lane.messages.append((message, self.auth.received))
        if lane.task is None:
            lane.task = self.loop.create_task(self._run(key, lane), name=f"syncbind-lane {key}")

    def start_job(self, job: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``job`` beside the lanes (a marker waits for it too)."""
        self._keep(self.jobs, job, name)

    def _keep(self, tasks: set[asyncio.Task], coro: Coroutine[Any, Any, None], name: str) -> None:
        task = self.loop.create_task(coro, name=name)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _run(self, key: Any, lane: Lane) -> None:
        try:
            while lane.messages:
                batch, lane.messages = lane.messages, []
                if lane is not self.auth:
                    await self.auth.reached(max(after for _message, after in batch))
                for message in server_push.merge([message for message, _after in batch]):
                    try:
                        await self.process(message)
                    except Exception:
                        logger.exception("syncbind hub failed to process a message")
                lane.advance(len(batch))
        finally:
            lane.task = None
            if lane is not self.auth and not lane.messages and self.lanes.get(key) is lane:
                del self.lanes[key]

    async def _after_all(self, marker: dict[str, Any]) -> None:
        """Act on ``marker`` once what every lane had received before it is processed,
        and the refresh jobs then running are done."""
        for lane, count in [(lane, lane.received) for lane in self.lanes.values()]:
            await lane.reached(count)
        if self.jobs:
            await asyncio.wait(set(self.jobs))
        await self.process(marker)


class FairSlots:
    """The evaluation threads' budget, shared fairly between lanes (module docstring)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        # What one lane may hold at once: every slot but one, when there are several.
        self.cap = max(1, self.size - 1)
        self.free = self.size
        self.held: dict[Any, int] = {}
        # Lanes waiting, the one served longest ago first.
        self.waiting: OrderedDict[Any, deque[asyncio.Future]] = OrderedDict()

    @asynccontextmanager
    async def slot(self, lane: Any) -> AsyncIterator[None]:
        await self._acquire(lane)
        try:
            yield
        finally:
            self._release(lane)

    async def _acquire(self, lane: Any) -> None:
        if self.free and lane not in self.waiting and self.held.get(lane, 0) < self.cap:
            self._take(lane)
            return
        future = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(lane, deque()).append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release(lane)  # granted as it was cancelled
            else:
                self._forget(lane, future)
            raise

    def _take(self, lane: Any) -> None:
        self.free -= 1
        self.held[lane] = self.held.get(lane, 0) + 1

    def _release(self, lane: Any) -> None:
        self.free += 1
        self.held[lane] -= 1
        if not self.held[lane]:
            del self.held[lane]
        self._grant()

    def _forget(self, lane: Any, future: asyncio.Future) -> None:
        queue = self.waiting.get(lane)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self.waiting[lane]

    def _grant(self) -> None:
        """Give free slots to waiting lanes in turn; a lane at its cap waits."""
        while self.free:
            lane = next((w for w in self.waiting if self.held.get(w, 0) < self.cap), None)
            if lane is None:
                return
            queue = self.waiting[lane]
            future = queue.popleft()
            if queue:
                self.waiting.move_to_end(lane)  # its next turn comes after the others'
            else:
                del self.waiting[lane]
            if future.done():
                continue  # cancelled while waiting
            self._take(lane)
            future.set_result(None)
