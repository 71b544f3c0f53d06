"""syncbind/_live/lanes.py: the hub's lanes, and the evaluation slots shared fairly between them.

Marked ``unit``: no database, no channel layer. The
hub's ``process`` is a double that records what it is given and can be made to
wait on an event per stream.
"""

import asyncio

import pytest

from syncbind._live.lanes import FairSlots, Lanes

pytestmark = pytest.mark.unit


def changes(stream, *pks):
    return {"type": "syncbind.changes", "stream": stream, "changes": [[pk] for pk in pks]}


class Processor:
    """Records each message it processes; a stream in ``blocked`` waits for its event."""

    def __init__(self):
        self.seen = []
        self.blocked = {}

    async def __call__(self, message):
        self.seen.append(message)
        event = self.blocked.get(message.get("stream"))
        if event is not None:
            await event.wait()

    def kinds(self):
        return [(m["type"], m.get("stream"), m.get("changes")) for m in self.seen]


async def marker_done(lanes, processor):
    """Put a marker and wait until it is processed (as Hub.settle does)."""
    lanes.put({"type": "syncbind.marker", "marker": "m"})
    while not any(m["type"] == "syncbind.marker" for m in processor.seen):
        await asyncio.sleep(0)


async def test_a_stream_waiting_holds_up_no_other_stream_nor_push():
    processor = Processor()
    processor.blocked["slow"] = asyncio.Event()
    lanes = Lanes(asyncio.get_running_loop(), processor)
    lanes.put(changes("slow", 1))
    lanes.put(changes("fast", 2))
    lanes.put({"type": "syncbind.push", "frame": "x"})
    for _ in range(5):
        await asyncio.sleep(0)
    assert processor.kinds() == [
        ("syncbind.changes", "slow", [[1]]),
        ("syncbind.changes", "fast", [[2]]),
        ("syncbind.push", None, None),
    ]
    processor.blocked["slow"].set()
    await marker_done(lanes, processor)


async def test_a_stream_keeps_its_order_and_merges_what_arrived_while_it_waited():
    processor = Processor()
    processor.blocked["slow"] = asyncio.Event()
    lanes = Lanes(asyncio.get_running_loop(), processor)
    lanes.put(changes("slow", 1))
    await asyncio.sleep(0)
    lanes.put(changes("slow", 2))
    lanes.put(changes("slow", 3))
    await asyncio.sleep(0)
    assert processor.kinds() == [("syncbind.changes", "slow", [[1]])]
    processor.blocked["slow"].set()
    await marker_done(lanes, processor)
    assert processor.kinds()[:2] == [
        ("syncbind.changes", "slow", [[1]]),
        ("syncbind.changes", "slow", [[2], [3]]),
    ]
    assert "slow" not in {key[1] for key in lanes.lanes if isinstance(key, tuple)}


async def test_a_marker_waits_for_every_lane_and_a_change_for_earlier_credentials():
    processor = Processor()
    processor.blocked[None] = asyncio.Event()  # the credential message waits
    lanes = Lanes(asyncio.get_running_loop(), processor)
    lanes.put({"type": "syncbind.auth", "user": "1"})
    lanes.put(changes("s", 1))
    lanes.put({"type": "syncbind.marker", "marker": "m"})
    for _ in range(5):
        await asyncio.sleep(0)
    # The change waits for the credential message received before it; so does the marker.
    assert [m["type"] for m in processor.seen] == ["syncbind.auth"]
    processor.blocked[None].set()
    while len(processor.seen) < 3:
        await asyncio.sleep(0)
    assert [m["type"] for m in processor.seen] == [
        "syncbind.auth",
        "syncbind.changes",
        "syncbind.marker",
    ]


async def hold(slots, lane, release, log):
    async with slots.slot(lane):
        log.append(lane)
        await release.wait()


async def test_one_lane_takes_every_slot_but_one():
    slots = FairSlots(4)
    release = asyncio.Event()
    log = []
    tasks = [asyncio.create_task(hold(slots, "big", release, log)) for _ in range(10)]
    await asyncio.sleep(0)
    assert log == ["big"] * 3
    other = asyncio.create_task(hold(slots, "small", release, log))
    await asyncio.sleep(0)
    assert log == ["big"] * 3 + ["small"]
    release.set()
    await asyncio.gather(*tasks, other)
    assert slots.free == 4 and not slots.held and not slots.waiting


async def test_a_freed_slot_goes_to_the_waiting_lanes_in_turn():
    slots = FairSlots(3)  # a lane holds two at most
    release = {}
    log = []

    async def hold_named(lane, name):
        async with slots.slot(lane):
            log.append(name)
            await release[name].wait()

    tasks = {}
    for lane, name in [
        ("a", "a1"),
        ("a", "a2"),
        ("a", "a3"),
        ("a", "a4"),
        ("b", "b1"),
        ("b", "b2"),
    ]:
        release[name] = asyncio.Event()
        tasks[name] = asyncio.create_task(hold_named(lane, name))
        await asyncio.sleep(0)
    assert log == ["a1", "a2", "b1"]  # b takes the slot a may not
    for done, granted in [("a1", "a3"), ("a2", "b2"), ("b1", "a4")]:
        release[done].set()
        await tasks[done]
        await asyncio.sleep(0)
        assert log[-1] == granted  # in turn, not in the order they queued
    for name in ("a3", "a4", "b2"):
        release[name].set()
    await asyncio.gather(*tasks.values())
    assert slots.free == 3 and not slots.held and not slots.waiting


async def test_a_cancelled_waiter_loses_no_slot():
    slots = FairSlots(2)
    release = asyncio.Event()
    log = []
    holder = asyncio.create_task(hold(slots, "a", release, log))
    waiter = asyncio.create_task(hold(slots, "a", release, log))
    await asyncio.sleep(0)
    assert log == ["a"]
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    assert slots.free == 2 and not slots.held and not slots.waiting
