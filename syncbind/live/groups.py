"""The hub's channel-layer side: one channel per process, each group joined once.

The hub joins a stream's group when its first local subscription on that
stream appears and leaves it when the last one goes, so a burst of
subscribing connections costs at most one ``group_add`` per stream per
process. Memberships expire in channels-redis, so they are renewed every
``GROUP_REFRESH_INTERVAL``; a restarted Redis has forgotten them, so after a
receive failure they are made again once the layer answers. A join that fails
(the layer does not answer) is tried again every second until it succeeds or
the group is no longer wanted. Each successful join of a group is reported to
``on_join`` (the hub then evaluates again what was subscribed while it was
pending: a change announced before the join did not reach this process).

Stopping does not rely on one cancel reaching the layer's ``receive()``: on
Python 3.11 redis-py sends each command under ``asyncio.wait_for``, which
loses a cancel that lands as the send completes, and channels-redis then
waits for messages for ever. Each receive therefore runs in a task of its
own that the loop only waits on; a receive that outlives its loop is
cancelled again until it ends (a cancel lands while it waits for Redis), and
a loop started meanwhile takes it over instead of starting a second receive
on the same channel. It is not ended with a message to the channel: the
receive would then start channels-redis's clean-up task, which holds a lock
shared by every event loop of the process until it finishes, and an event
loop closing at that moment would leave the lock held for good.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import get_channel_layer

from ..settings import api_settings

logger = logging.getLogger("syncbind.live")

# Seconds between the cancels of a receive that outlived its loop.
CANCEL_AGAIN_AFTER = 0.2


class Membership:
    """The groups one hub has joined, and the tasks that receive and renew them."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[dict], Awaitable[None]],
        on_join: Callable[[str], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
    ) -> None:
        self.loop = loop
        self.deliver = deliver
        self.on_join = on_join
        # Called once the groups' receive works again after a failure (messages sent
        # meanwhile are lost: see Hub.resync).
        self.on_recovered = on_recovered
        self.joined: set[str] = set()
        # Groups whose join failed, tried again until they succeed or are left.
        self.failed: set[str] = set()
        self._retry_task: asyncio.Task | None = None
        self.channel: str | None = None
        self._lock = asyncio.Lock()
        self._receive_task: asyncio.Task | None = None
        self._refresh_task: asyncio.Task | None = None
        # The layer's receive() in flight, kept across a stop (see the module docstring).
        self._receiving: asyncio.Future | None = None
        self._layer: Any = None

    @property
    def layer(self) -> Any:
        if self._layer is None:
            self._layer = get_channel_layer(api_settings.CHANNEL_LAYER)
        return self._layer

    async def join(self, group: str, still_wanted: Callable[[], bool] | None = None) -> None:
        """Join ``group`` (unless ``still_wanted()`` says it is no longer needed, by the
        time the joins and leaves started before have ended)."""
        if group in self.joined or self.layer is None:
            return
        async with self._lock:
            if group in self.joined or (still_wanted is not None and not still_wanted()):
                return
            try:
                if self.channel is None:
                    # The default prefix: channels-redis serves all of a process's channels
                    # with that prefix through one receive loop; another prefix would get
                    # its own.
                    self.channel = await self.layer.new_channel()
                await self.layer.group_add(group, self.channel)
            except Exception:
                _raise_if_cancelling()
                self._retry_later(group)
                raise
            finally:
                # A cancel the layer hid must not go on to start the loops (they would
                # outlive the cancelled caller, e.g. an event loop shutting down).
                _raise_if_cancelling()
            self.failed.discard(group)
            self.joined.add(group)
            self._ensure_tasks()
        if self.on_join is not None:
            self.on_join(group)

    async def leave(self, group: str, still_wanted: Callable[[], bool]) -> None:
        async with self._lock:
            if still_wanted():
                return
            self.failed.discard(group)
            if group not in self.joined:
                return
            self.joined.discard(group)
            try:
                await self.layer.group_discard(group, self.channel)
            finally:
                if not self.joined:
                    self._stop_tasks()

    def idle(self) -> bool:
        """Whether no task of this membership is running (no loop, no receive)."""
        return all(
            task is None or task.done()
            for task in (self._receive_task, self._refresh_task, self._receiving, self._retry_task)
        )

    def _retry_later(self, group: str) -> None:
        self.failed.add(group)
        if self._retry_task is None or self._retry_task.done():
            self._retry_task = self.loop.create_task(
                self._retry_loop(), name="syncbind-hub-join-retry"
            )

    async def _retry_loop(self) -> None:
        """Join the groups whose join failed, every second, until none is left (a group
        left meanwhile is no longer tried)."""
        while self.failed:
            await asyncio.sleep(1)
            _raise_if_cancelling()
            for group in list(self.failed):
                try:
                    await self.join(group)
                except Exception:
                    _raise_if_cancelling()
                    break  # the layer still does not answer: all of them later
                logger.warning("syncbind hub joined group %s after a failure", group)

    def _ensure_tasks(self) -> None:
        if self._receive_task is None or self._receive_task.done():
            self._receive_task = self.loop.create_task(self._receive_loop(), name="syncbind-hub")
        if self._refresh_task is None or self._refresh_task.done():
            self._refresh_task = self.loop.create_task(
                self._refresh_loop(), name="syncbind-hub-refresh"
            )

    def _stop_tasks(self) -> None:
        """Stop the loops; the retry of failed joins too, unless some are still wanted."""
        tasks = [self._receive_task, self._refresh_task]
        if not self.failed:
            tasks.append(self._retry_task)
            self._retry_task = None
        for task in tasks:
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
        self._receive_task = self._refresh_task = None

    async def _refresh_loop(self) -> None:
        while True:
            _raise_if_cancelling()
            await asyncio.sleep(api_settings.GROUP_REFRESH_INTERVAL)
            for group in list(self.joined):
                _raise_if_cancelling()
                try:
                    await self.layer.group_add(group, self.channel)
                except Exception:
                    logger.warning("syncbind hub could not renew group %s", group, exc_info=True)

    async def _receive_loop(self) -> None:
        while True:
            _raise_if_cancelling()
            try:
                message = await self._receive()
            except Exception:
                _raise_if_cancelling()
                logger.error(
                    "syncbind hub cannot receive changes from the channel layer", exc_info=True
                )
                await self._recover()
                continue
            try:
                await self.deliver(message)
            except Exception:
                logger.exception("syncbind hub failed to take a message")

    async def _receive(self) -> dict:
        """The next message on the hub's channel.

        The layer's ``receive()`` runs in a task this loop only waits on, so a
        cancel ends the loop at once even when the layer would lose it; the
        receive is then cancelled too, again and again until it ends
        (``CANCEL_AGAIN_AFTER``), unless a loop takes it over first.
        """
        while True:
            receiving = self._receiving
            if receiving is None or receiving.done():
                # A receive that ended while abandoned answered nobody: it is not
                # delivered (the groups were left), and a new one is made.
                await self._prepare_receive()
                receiving = self._receiving = asyncio.ensure_future(
                    self.layer.receive(self.channel)
                )
            try:
                await asyncio.wait((receiving,))
            except asyncio.CancelledError:
                receiving.cancel()
                receiving.add_done_callback(_forget)
                self.loop.call_later(CANCEL_AGAIN_AFTER, self._cancel_again, receiving)
                raise
            self._receiving = None
            if not receiving.cancelled():
                return receiving.result()
            # Taken over while it was ending by an earlier cancel: receive anew.

    async def _prepare_receive(self) -> None:
        """Prepare channels-redis for a new receive (a no-op on other layers).

        channels-redis receives for all of a process's channels at once and, under
        a lock per process, waits for each message to be cleaned up before it reads
        the next (also while it skips messages for other channels). A cancel that
        lands in that wait leaves the lock's bookkeeping behind (channels-redis
        4.3), bound to the event loop of the moment: any later receive that has to
        wait for it, in another loop (one per test), fails. So the hub waits for
        the clean-ups itself, where a cancel is harmless, and when nothing in the
        process is receiving or cleaning up, it drops what was left behind, as
        channels-redis does itself when a lock is released with no one waiting.
        """
        wait_received = getattr(self.layer, "wait_received", None)
        if wait_received is not None:
            await wait_received()
            _drop_stale_clean_locks(self.layer)

    def _cancel_again(self, receiving: asyncio.Future) -> None:
        """Cancel an abandoned receive that has not ended yet, and check again later
        (unless a receive loop has started since and taken it over)."""
        taken_over = self._receive_task is not None and not self._receive_task.done()
        if receiving.done() or receiving is not self._receiving or taken_over:
            return
        receiving.cancel()
        self.loop.call_later(CANCEL_AGAIN_AFTER, self._cancel_again, receiving)

    async def _recover(self) -> None:
        """Wait for the channel layer to answer again, then join the groups anew,
        retrying every second and logging nothing more until it succeeds."""
        while True:
            await asyncio.sleep(1)
            _raise_if_cancelling()
            try:
                for group in list(self.joined):
                    await self.layer.group_add(group, self.channel)
            except Exception:
                continue
            logger.warning("syncbind hub receives changes again")
            if self.on_recovered is not None:
                self.on_recovered()
            return


def _drop_stale_clean_locks(layer: Any) -> None:
    """Drop channels-redis's per-channel clean-up locks when nothing in the process
    receives or cleans up (so none is held or waited for); private state of
    channels-redis 4.x, left alone if it is not as expected."""
    clean_locks = getattr(layer, "receive_clean_locks", None)
    locks = getattr(clean_locks, "locks", None)
    counts = getattr(clean_locks, "wait_counts", None)
    if not isinstance(locks, dict) or not isinstance(counts, dict):
        return
    if getattr(layer, "receive_count", None) != 0 or getattr(layer, "receive_cleaners", True):
        return
    for key, lock in list(locks.items()):
        if not lock.locked():
            del locks[key]
            counts.pop(key, None)


def _forget(receiving: asyncio.Future) -> None:
    """Retrieve what an abandoned receive ended with: nobody waits for it any more."""
    if not receiving.cancelled():
        receiving.exception()


def _raise_if_cancelling() -> None:
    """Re-raise a cancellation that the channel layer turned into another error.

    redis-py answers a cancel that lands while it reads a reply by closing the
    connection, and the caller may then see ``ConnectionError`` (or, later, a
    normal reply) instead of ``CancelledError``; each loop here checks before
    going on, because retrying would keep a cancelled task alive forever (an
    event loop closing at shutdown waits on it)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
