"""The hub's channel-layer membership (syncbind/live/groups.py), against a layer double
that fails the way channels-redis over redis-py does.

Part of the fast unit layer (tests/unit): no database, no server.
"""

import asyncio
import contextlib

import pytest

from syncbind.live.groups import Membership


class ClosingLayer:
    """A layer whose ``receive`` turns a cancel into ``ConnectionError``, as redis-py does
    when the cancel lands while it reads a reply; ``fail_first`` makes the first receive
    fail on its own."""

    def __init__(self, fail_first=False, on_cancel="error"):
        self.fail_first = fail_first
        self.on_cancel = on_cancel
        self.receives = 0
        self.group_adds = []
        self.queue = asyncio.Queue()
        self.honest = False  # set to let a stuck test end: cancels then surface as such

    async def new_channel(self):
        return "hub!1"

    async def group_add(self, group, channel):
        self.group_adds.append((group, channel))

    async def group_discard(self, group, channel):
        pass

    async def receive(self, channel):
        self.receives += 1
        if self.fail_first and self.receives == 1:
            raise ConnectionError("Connection closed by server.")
        try:
            return await self.queue.get()
        except asyncio.CancelledError:
            if self.honest:
                raise
            if self.on_cancel == "reply":  # the reply was already read: the cancel is lost
                return {"type": "late"}
            raise ConnectionError("Connection closed by server.") from None


def membership(layer):
    delivered = []

    async def deliver(message):
        delivered.append(message)

    joined = Membership(asyncio.get_running_loop(), deliver)
    joined._layer = layer
    return joined, delivered


@pytest.mark.asyncio
@pytest.mark.parametrize("on_cancel", ["error", "reply"])
async def test_a_cancelled_receive_loop_ends_even_when_the_layer_hides_the_cancel(on_cancel):
    layer = ClosingLayer(on_cancel=on_cancel)
    joined, _ = membership(layer)
    await joined.join("stream")
    task = joined._receive_task
    await asyncio.sleep(0)  # let it block in receive
    assert layer.receives == 1

    task.cancel()
    try:
        await asyncio.wait({task}, timeout=3)
        assert task.cancelled()
        assert layer.receives == 1  # no retry after the cancel
    finally:
        layer.honest = True
        joined._stop_tasks()


@pytest.mark.asyncio
async def test_a_receive_failure_rejoins_the_groups_and_goes_on_delivering():
    layer = ClosingLayer(fail_first=True)
    joined, delivered = membership(layer)
    await joined.join("stream")
    await layer.queue.put({"type": "change"})
    for _ in range(300):
        if delivered:
            break
        await asyncio.sleep(0.01)
    assert delivered == [{"type": "change"}]
    assert layer.group_adds == [("stream", "hub!1"), ("stream", "hub!1")]  # joined, rejoined
    joined._stop_tasks()


class HidingJoinLayer(ClosingLayer):
    """``group_add`` waits, and a cancel that lands then is lost: it returns normally."""

    def __init__(self):
        super().__init__()
        self.adding = asyncio.Event()
        self.release = asyncio.Event()

    async def group_add(self, group, channel):
        self.adding.set()
        # The reply was already read: the cancel is lost.
        with contextlib.suppress(asyncio.CancelledError):
            await self.release.wait()
        self.group_adds.append((group, channel))


@pytest.mark.asyncio
async def test_a_cancelled_join_ends_even_when_the_layer_hides_the_cancel():
    layer = HidingJoinLayer()
    joined, _ = membership(layer)
    task = asyncio.create_task(joined.join("stream"))
    await layer.adding.wait()
    task.cancel()
    await asyncio.wait({task}, timeout=3)
    try:
        assert task.cancelled()
        assert "stream" not in joined.joined
        assert joined._receive_task is None and joined._refresh_task is None
    finally:
        joined._stop_tasks()
