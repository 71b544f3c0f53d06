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
cancelled again until it ends, on Python 3.11 (``compat.cpython``), and a
loop started meanwhile takes it over instead of starting a second receive on
the same channel. It is not ended with a message to the channel: the receive
would then start channels-redis's clean-up task, which holds a lock shared by
every event loop of the process until it finishes, and an event loop closing
at that moment would leave the lock held for good. The workarounds for those
libraries live in ``syncbind/_compat/``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from channels.layers import get_channel_layer

from syncbind._compat import channels_redis, cpython
from syncbind._compat.redis_py import raise_if_cancelling
from syncbind.settings import api_settings

logger = logging.getLogger("syncbind.live")


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
                raise_if_cancelling()
                self._retry_later(group)
                raise
            finally:
                # A cancel the layer hid must not go on to start the loops (they would
                # outlive the cancelled caller, e.g. an event loop shutting down).
                raise_if_cancelling()
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
            raise_if_cancelling()
            for group in list(self.failed):
                try:
                    await self.join(group)
                except Exception:
                    raise_if_cancelling()
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
            raise_if_cancelling()
            await asyncio.sleep(api_settings.GROUP_REFRESH_INTERVAL)
            for group in list(self.joined):
                raise_if_cancelling()
                try:
                    await self.layer.group_add(group, self.channel)
                except Exception:
                    logger.warning("syncbind hub could not renew group %s", group, exc_info=True)

    async def _receive_loop(self) -> None:
        while True:
            raise_if_cancelling()
            try:
                message = await self._receive()
            except Exception:
                raise_if_cancelling()
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
        receive is then cancelled too, and on Python 3.11 again and again until
        it ends (``compat.cpython.cancel_until_done``), unless a loop takes it
        over first.
        """
        while True:
            receiving = self._receiving
            if receiving is None or receiving.done():
                # A receive that ended while abandoned answered nobody: it is not
                # delivered (the groups were left), and a new one is made.
                # channels-redis 4.x leaves lock bookkeeping behind when a cancel
                # lands in its receive: cleared first (a no-op on other layers).
                await channels_redis.prepare_receive(self.layer)
                receiving = self._receiving = asyncio.ensure_future(
                    self.layer.receive(self.channel)
                )
            try:
                await asyncio.wait((receiving,))
            except asyncio.CancelledError:
                receiving.cancel()
                receiving.add_done_callback(_forget)
                cpython.cancel_until_done(self.loop, receiving, partial(self._abandoned, receiving))
                raise
            self._receiving = None
            if not receiving.cancelled():
                return receiving.result()
            # Taken over while it was ending by an earlier cancel: receive anew.

    def _abandoned(self, receiving: asyncio.Future) -> bool:
        """Whether ``receiving`` is still the receive in flight and no receive loop has
        started since to take it over."""
        taken_over = self._receive_task is not None and not self._receive_task.done()
        return receiving is self._receiving and not taken_over

    async def _recover(self) -> None:
        """Wait for the channel layer to answer again, then join the groups anew,
        retrying every second and logging nothing more until it succeeds."""
        while True:
            await asyncio.sleep(1)
            raise_if_cancelling()
            try:
                for group in list(self.joined):
                    await self.layer.group_add(group, self.channel)
            except Exception:
                continue
            logger.warning("syncbind hub receives changes again")
            if self.on_recovered is not None:
                self.on_recovered()
            return


def _forget(receiving: asyncio.Future) -> None:
    """Retrieve what an abandoned receive ended with: nobody waits for it any more."""
    if not receiving.cancelled():
        receiving.exception()
