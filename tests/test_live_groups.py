"""The hub's channel-layer membership (syncbind/_live/groups.py) against a real Redis.

On Python 3.11, redis-py sends each command under ``asyncio.wait_for``, which loses a
cancel that lands as the send completes; channels-redis then goes on waiting for the
reply, and its receive loops for ever. A hub stopped just after it started receiving
(a connection that subscribes and goes at once) kept a task alive that closing the
event loop waited on: the PostgreSQL + Redis leg's intermittent teardown hang.
"""

import asyncio
import uuid

import pytest
from channels_redis.core import RedisChannelLayer

from syncbind.layers import redis_channel_layer
from tests.servers import require_services
from tests.unit.test_live_groups import membership, until

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
        await joined.join("stream")
        await redis_layer.group_send("stream", {"type": "syncbind.changes", "n": 1})
        assert await until(lambda: delivered)
        await asyncio.sleep(0.05)
        assert delivered == [{"type": "syncbind.changes", "n": 1}]
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
