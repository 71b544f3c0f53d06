"""The hub's channel-layer membership (syncbind/live/groups.py) against a real Redis.

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
from syncbind.live.groups import Membership
from tests.servers import require_services

ROUNDS = 40


@pytest.fixture
def redis_layer():
    require_services()
    config = redis_channel_layer(prefix=f"syncbind-groups-{uuid.uuid4().hex[:8]}")["CONFIG"]
    return RedisChannelLayer(**config)


def membership(layer, delivered):
    async def deliver(message):
        delivered.append(message)

    joined = Membership(asyncio.get_running_loop(), deliver)
    joined._layer = layer
    return joined


async def until(condition, rounds=500):
    """Wait (a bounded number of loop turns) for ``condition()``."""
    for _ in range(rounds):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


@pytest.mark.asyncio
async def test_a_hub_stopped_as_it_starts_receiving_leaves_no_task_behind(redis_layer):
    delivered = []
    joined = membership(redis_layer, delivered)
    try:
        for round_ in range(ROUNDS):
            await joined.join("stream")
            receiving = joined._receive_task
            # Let the receive reach redis-py's send (the window where a cancel is lost).
            for _ in range(round_ % 4):
                await asyncio.sleep(0)
            await joined.leave("stream", lambda: False)
            assert await until(receiving.done), f"round {round_}: the receive loop goes on"
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
