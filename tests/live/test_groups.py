"""[syncbind/_live/groups.py] The hub's channel-layer membership: against a layer double that
fails the way channels-redis over redis-py does (marked ``unit``), then against a real Redis.

On Python 3.11, redis-py sends each command under ``asyncio.wait_for``, which loses a
cancel that lands as the send completes; channels-redis then goes on waiting for the
reply, and its receive loops for ever. A hub stopped just after it started receiving
(a connection that subscribes and goes at once) kept a task alive that closing the
event loop waited on: the PostgreSQL + Redis leg's intermittent teardown hang.
"""

import asyncio
import contextlib
import uuid

import pytest
from channels_redis.core import RedisChannelLayer

from syncbind._compat import cpython
from syncbind._compat.cpython import CANCEL_AGAIN_AFTER
from syncbind._live.groups import Membership
from syncbind.layers import redis_channel_layer
from tests.servers import require_services

# Unit: no database, no server.


class ClosingLayer:
    """A layer whose ``receive`` turns a cancel into ``ConnectionError``, as redis-py does
    when the cancel lands while it reads a reply; ``fail_first`` makes the first receive
    fail on its own."""

    def __init__(self, fail_first=False, on_cancel="error"):
        self.fail_first = fail_first
        self.on_cancel = on_cancel
        self.receives = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.hidden = 0
        self.honoured = 0
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
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self.queue.get()
        except asyncio.CancelledError:
            if self.honest:
                raise
            if self.on_cancel == "reply":  # the reply was already read: the cancel is lost
                return {"type": "late"}
            if self.on_cancel == "hide":  # asyncio.wait_for before Python 3.12: it goes on waiting
                self.hidden += 1
                try:
                    return await self.queue.get()
                except asyncio.CancelledError:
                    self.honoured += 1  # a cancel that lands while it waits is not lost
                    raise
            raise ConnectionError("Connection closed by server.") from None
        finally:
            self.in_flight -= 1


async def until(condition, rounds=500):
    """Wait (a bounded number of loop turns) for ``condition()``."""
    for _ in range(rounds):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


@pytest.fixture
def wait_for_loses_cancel(monkeypatch):
    """The layer doubles that hide a cancel act as on Python 3.11 (CPython gh-86296), on
    whatever Python runs the tests: so does the hub's workaround."""
    monkeypatch.setattr(cpython, "wait_for_loses_cancel", lambda: True)


def membership(layer):
    delivered = []

    async def deliver(message):
        delivered.append(message)

    joined = Membership(asyncio.get_running_loop(), deliver)
    joined._layer = layer
    return joined, delivered


@pytest.mark.unit
@pytest.mark.asyncio
@pytest.mark.parametrize("on_cancel", ["error", "reply"])
async def test_a_cancelled_receive_loop_ends_even_when_the_layer_hides_the_cancel(on_cancel):
    layer = ClosingLayer(on_cancel=on_cancel)
    joined, _ = membership(layer)
    await joined.join("stream")
    task = joined._receive_task
    await until(lambda: layer.receives)  # let it block in receive
    assert layer.receives == 1

    task.cancel()
    try:
        await asyncio.wait({task}, timeout=3)
        assert task.cancelled()
        assert layer.receives == 1  # no retry after the cancel
    finally:
        layer.honest = True
        joined._stop_tasks()


@pytest.mark.unit
@pytest.mark.asyncio
async def test_a_stopped_hub_cancels_again_a_receive_that_hid_the_cancel(wait_for_loses_cancel):
    layer = ClosingLayer(on_cancel="hide")
    joined, delivered = membership(layer)
    await joined.join("stream")
    loop_task = joined._receive_task
    await until(lambda: layer.in_flight)

    await joined.leave("stream", lambda: False)
    await asyncio.wait({loop_task}, timeout=3)
    assert loop_task.cancelled()  # the loop ends at once, whatever the receive does
    assert layer.in_flight == 1 and not joined.idle()

    assert await until(joined.idle)  # cancelled again, the receive ends too
    assert (layer.hidden, layer.honoured) == (1, 1)
    assert delivered == []


@pytest.mark.unit
@pytest.mark.asyncio
async def test_a_hub_joined_again_takes_over_the_receive_still_in_flight(
    wait_for_loses_cancel, monkeypatch
):
    layer = ClosingLayer(on_cancel="hide")
    joined, delivered = membership(layer)
    looked = asyncio.Event()  # the second cancel came due and decided

    def cancel_again(*args):
        cancel_again_as_written(*args)
        looked.set()

    cancel_again_as_written = cpython._cancel_again
    monkeypatch.setattr(cpython, "_cancel_again", cancel_again)
    await joined.join("stream")
    await until(lambda: layer.in_flight)
    await joined.leave("stream", lambda: False)
    await joined.join("stream")  # before the abandoned receive is cancelled again
    try:
        await asyncio.wait_for(looked.wait(), CANCEL_AGAIN_AFTER * 20)
        assert layer.honoured == 0  # taken over: no longer cancelled
        await layer.queue.put({"type": "change"})
        assert await until(lambda: delivered)
        assert delivered == [{"type": "change"}]
        assert layer.most_in_flight == 1  # never two receives on one channel
        await layer.queue.put({"type": "change", "n": 2})
        assert await until(lambda: len(delivered) == 2)
    finally:
        layer.honest = True
        await joined.leave("stream", lambda: False)
        assert await until(joined.idle)


@pytest.mark.unit
@pytest.mark.asyncio
async def test_a_receive_failure_rejoins_the_groups_and_goes_on_delivering():
    layer = ClosingLayer(fail_first=True)
    joined, delivered = membership(layer)
    recovered = []
    joined.on_recovered = lambda: recovered.append(len(layer.group_adds))
    await joined.join("stream")
    await layer.queue.put({"type": "change"})
    for _ in range(300):
        if delivered:
            break
        await asyncio.sleep(0.01)
    assert delivered == [{"type": "change"}]
    assert layer.group_adds == [("stream", "hub!1"), ("stream", "hub!1")]  # joined, rejoined
    assert recovered == [2]  # told once, after the rejoin: the hub resyncs (Hub.resync)
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


@pytest.mark.unit
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


# Against a real Redis.

ROUNDS = 40


@pytest.fixture
def redis_layer():
    require_services()
    config = redis_channel_layer(prefix=f"syncbind-groups-{uuid.uuid4().hex[:8]}")["CONFIG"]
    return RedisChannelLayer(**config)


@pytest.mark.asyncio
async def test_a_hub_stopped_as_it_starts_receiving_leaves_no_task_behind(redis_layer):
    joined, delivered = membership(redis_layer)
    try:
        for round_ in range(ROUNDS):
            await joined.join("stream")
            loop_task = joined._receive_task
            # Let the receive reach redis-py's send (the window where a cancel is lost).
            for _ in range(round_ % 4):
                await asyncio.sleep(0)
            await joined.leave("stream", lambda: False)
            assert await until(loop_task.done), f"round {round_}: the receive loop goes on"
            assert await until(joined.idle), f"round {round_}: a receive outlived the hub"
        # The membership still works after all that: a message to the group arrives once.
        # The second message is the barrier: the layer hands a channel's messages over in
        # order, so once it has arrived the first has arrived as often as it ever will.
        await joined.join("stream")
        await redis_layer.group_send("stream", {"type": "syncbind.changes", "n": 1})
        await redis_layer.group_send("stream", {"type": "syncbind.changes", "n": 2})
        assert await until(lambda: {"type": "syncbind.changes", "n": 2} in delivered)
        assert delivered == [
            {"type": "syncbind.changes", "n": 1},
            {"type": "syncbind.changes", "n": 2},
        ]
    finally:
        await joined.leave("stream", lambda: False)
        await until(joined.idle)
        await redis_layer.flush()
        await redis_layer.close_pools()


def test_event_loops_closed_under_a_joined_hub_leave_the_layer_working(redis_layer):
    """A test's event loop closes with its hub still joined (asyncio.Runner cancels every
    task and waits for them): a receive that lost its cancel kept the close waiting for
    ever, and nothing channels-redis shares between the process's loops may be left
    behind for the next loop."""

    async def joined_then_closed(round_):
        joined, _ = membership(redis_layer)
        await joined.join("stream")
        if round_ % 2:  # a message on its way as the loop closes
            await redis_layer.group_send("stream", {"type": "syncbind.changes", "n": 0})
        for _ in range(round_ % 5):
            await asyncio.sleep(0)

    for round_ in range(ROUNDS):
        asyncio.run(joined_then_closed(round_))

    async def still_receives():
        joined, delivered = membership(redis_layer)
        await joined.join("stream")
        try:
            await redis_layer.group_send("stream", {"type": "syncbind.changes", "n": 1})
            return await until(lambda: delivered) and delivered
        finally:
            await joined.leave("stream", lambda: False)
            await until(joined.idle)
            await redis_layer.flush()

    assert asyncio.run(still_receives()) == [{"type": "syncbind.changes", "n": 1}]


def test_a_hub_stopped_while_skipping_other_channels_messages_leaves_the_layer_working(
    redis_layer,
):
    """channels-redis receives for all of a process's channels at once and waits, under a
    lock shared by every event loop of the process, for each message to be cleaned up
    before it reads the next. A hub stopped while its receive reads messages for other
    channels (a closed loop's hub still in the group, as between tests) left that lock's
    bookkeeping behind, bound to its loop, and later loops' receives then failed."""
    stale = asyncio.run(redis_layer.new_channel())

    async def stopped_amid_other_messages(round_):
        joined, _ = membership(redis_layer)
        await redis_layer.group_add("stream", stale)
        await joined.join("stream")
        for n in range(30):
            await redis_layer.group_send("stream", {"type": "syncbind.changes", "n": n})
        for _ in range(round_ % 9):
            await asyncio.sleep(0.0005)
        await joined.leave("stream", lambda: False)
        assert await until(joined.idle)

    for round_ in range(2 * ROUNDS):
        asyncio.run(stopped_amid_other_messages(round_))

    async def receives_a_burst():
        joined, delivered = membership(redis_layer)
        await redis_layer.group_discard("stream", stale)
        await joined.join("stream")
        try:
            for n in range(5):
                await redis_layer.group_send("stream", {"type": "syncbind.changes", "n": n})
            await until(lambda: len(delivered) == 5)
            return [message["n"] for message in delivered]
        finally:
            await joined.leave("stream", lambda: False)
            await until(joined.idle)

    assert asyncio.run(receives_a_burst()) == [0, 1, 2, 3, 4]
