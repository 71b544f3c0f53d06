"""The per-process announcer (syncbind/_live/announcer.py), against layer doubles: order,
the bound on what waits, failures, and event loops that stop under it.

Marked ``unit``: no database, no server.
"""

import asyncio
import logging
import threading

import pytest

from syncbind._live.announcer import Announcer

pytestmark = pytest.mark.unit

WAIT = 10  # seconds: a bound on waits that end at once when the code is right


class GateLayer:
    """Records what it sends, and on which event loop; ``group_send`` waits for ``gate``
    (set by default) and fails ``fail`` times first."""

    def __init__(self, fail=0):
        self.sent = []
        self.loops = []
        self.attempts = 0
        self.fail = fail
        self.gate = threading.Event()
        self.gate.set()
        self.sending = threading.Event()

    async def group_send(self, group, message):
        self.attempts += 1
        self.sending.set()
        if not self.gate.is_set():
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait)
        if self.fail:
            self.fail -= 1
            raise ConnectionError("Connection closed by server.")
        self.sent.append((group, message["n"]))
        self.loops.append(asyncio.get_running_loop())


class Bounded(Announcer):
    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def get_max_pending(self):
        return self.limit


def announce(announcer, layer, n, group="g"):
    announcer.announce(layer, group, {"type": "syncbind.changes", "n": n}, f"change {n}")


def test_messages_are_sent_in_the_order_announced_and_announcing_never_waits():
    announcer = Bounded(100)
    layer = GateLayer()
    layer.gate.clear()  # the layer does not answer
    for n in range(20):
        announce(announcer, layer, n, group=f"g{n % 3}")  # returns although nothing is sent
    assert layer.sent == []
    layer.gate.set()
    assert announcer.wait(WAIT)
    assert layer.sent == [(f"g{n % 3}", n) for n in range(20)]
    assert announcer._thread is not None and announcer._thread.daemon  # never holds up an exit


def test_past_the_bound_the_oldest_are_dropped_and_logged_once(caplog):
    announcer = Bounded(3)
    layer = GateLayer()
    layer.gate.clear()
    with caplog.at_level(logging.WARNING, logger="syncbind.live"):
        announce(announcer, layer, 0)
        assert layer.sending.wait(WAIT)  # 0 is on its way, held by the layer
        for n in range(1, 7):
            announce(announcer, layer, n)
        assert announcer.pending() == 3
        layer.gate.set()
        assert announcer.wait(WAIT)
    assert layer.sent == [("g", 0), ("g", 4), ("g", 5), ("g", 6)]
    dropped = [r for r in caplog.records if "dropped announcements" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].levelno == logging.ERROR
    assert [r.getMessage() for r in caplog.records][-1] == "syncbind announces changes again"

    # A later outage is logged again, once.
    caplog.clear()
    layer.gate.clear()
    with caplog.at_level(logging.WARNING, logger="syncbind.live"):
        announce(announcer, layer, 7)
        for n in range(8, 14):
            announce(announcer, layer, n)
        layer.gate.set()
        assert announcer.wait(WAIT)
    assert sum("dropped announcements" in r.getMessage() for r in caplog.records) == 1


def test_a_stale_connection_is_retried_once_and_an_outage_logged_once(caplog):
    announcer = Bounded(100)
    stale = GateLayer(fail=1)
    with caplog.at_level(logging.WARNING, logger="syncbind.live"):
        announce(announcer, stale, 1)
        assert announcer.wait(WAIT)
    assert stale.sent == [("g", 1)] and stale.attempts == 2
    assert caplog.records == []

    down = GateLayer(fail=1000)
    with caplog.at_level(logging.WARNING, logger="syncbind.live"):
        for n in range(3):
            announce(announcer, down, n)
        assert announcer.wait(WAIT)
        assert down.attempts == 6 and down.sent == []
        down.fail = 0
        announce(announcer, down, 3)
        assert announcer.wait(WAIT)
    assert down.sent == [("g", 3)]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "syncbind could not announce change 0; pushes are lost until the channel layer "
        "answers again",
        "syncbind announces changes again",
    ]


def test_a_message_is_sent_on_the_loop_that_announced_it():
    announcer = Bounded(100)
    layer = GateLayer()

    async def from_a_coroutine():
        announce(announcer, layer, 1)
        await announcer.drained()  # the loop stays free to send it
        return asyncio.get_running_loop()

    loop = asyncio.new_event_loop()
    try:
        home = loop.run_until_complete(from_a_coroutine())
    finally:
        loop.close()
    assert layer.sent == [("g", 1)] and layer.loops == [home]


def test_a_loop_that_stops_with_a_message_on_it_does_not_wedge_the_announcer():
    announcer = Bounded(100)
    layer = GateLayer()
    layer.gate.clear()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        # Announced from that loop, which stops while the layer holds the message.
        loop.call_soon_threadsafe(announce, announcer, layer, 1)
        assert layer.sending.wait(WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        layer.gate.set()
        announce(announcer, layer, 2)
        assert announcer.wait(WAIT)
    finally:
        loop.close()
    # The message cut off with its loop is sent from the announcer's own loop, then the next.
    assert layer.sent == [("g", 1), ("g", 2)]
    assert loop not in layer.loops


@pytest.mark.asyncio
async def test_drained_waits_for_what_was_announced_before_it():
    announcer = Bounded(100)
    layer = GateLayer()
    layer.gate.clear()
    announce(announcer, layer, 1)
    waiting = asyncio.ensure_future(announcer.drained())
    assert await asyncio.to_thread(layer.sending.wait, WAIT)
    assert not waiting.done()  # the layer holds it
    layer.gate.set()
    await asyncio.wait_for(waiting, WAIT)
    assert layer.sent == [("g", 1)]


EXITING = """
import asyncio, sys
from syncbind._live.announcer import Announcer

class SlowLayer:
    async def group_send(self, group, message):
        await asyncio.sleep(0.2)  # a layer that takes its time: the process exits meanwhile
        print("sent", message["n"], flush=True)

announcer = Announcer()
announcer.get_max_pending = lambda: 10
for n in range(3):
    announcer.announce(SlowLayer(), "g", {"n": n}, "change")
print("exiting", flush=True)
"""


def test_an_exiting_process_sends_what_is_queued_first():
    """A process that saved a row and ends (a management command) still announces it."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", EXITING], capture_output=True, text=True, timeout=WAIT * 2
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == ["exiting", "sent 0", "sent 1", "sent 2", ""]
