"""syncbind/_transport/outbox.py: one WebSocket's bounded, ordered queue of outgoing ASGI messages.

Marked ``unit``: no database, no server. The socket is a
double that records what it is sent and can be made to stall or fail.
"""

import asyncio
import logging

import pytest

from syncbind._transport.outbox import Outbox
from syncbind._wire.protocol import SLOW_CLIENT_CLOSE_CODE, SLOW_CLIENT_REASON

pytestmark = pytest.mark.unit

CLOSE = {"type": "websocket.close", "code": 4008, "reason": "Client too slow: outgoing queue full"}


def text(value):
    return {"type": "websocket.send", "text": value}


class Socket:
    """An ASGI ``send`` double. ``stall`` holds every ``websocket.send`` until released;
    ``fail_on`` makes sending that text raise, as a closed transport does."""

    def __init__(self, stall=False, fail_on=None):
        self.sent = []
        self.attempts = []
        self.gate = asyncio.Event()
        if not stall:
            self.gate.set()
        self.fail_on = fail_on

    async def send(self, message):
        self.attempts.append(message)
        if self.fail_on is not None and message.get("text") == self.fail_on:
            raise OSError("transport closed")
        if message["type"] == "websocket.send":
            await self.gate.wait()
        self.sent.append(message)


async def settle(rounds=5):
    for _ in range(rounds):
        await asyncio.sleep(0)


@pytest.fixture
async def make_outbox():
    made = []

    def make(socket, max_bytes=1000):
        outbox = Outbox(socket.send, max_bytes)
        made.append((outbox, socket))
        return outbox

    yield make
    for outbox, socket in made:
        socket.gate.set()
        await outbox.aclose(timeout=0.1)


def test_the_close_code_and_reason():
    assert (CLOSE["code"], CLOSE["reason"]) == (SLOW_CLIENT_CLOSE_CODE, SLOW_CLIENT_REASON)


async def test_messages_go_out_in_order(make_outbox):
    socket = Socket()
    outbox = make_outbox(socket)
    messages = [{"type": "websocket.accept"}, text("a"), {"type": "websocket.send", "bytes": b"b"}]
    messages += [text(str(n)) for n in range(20)]
    for message in messages:
        outbox.put(message)
    await outbox.aclose()
    assert socket.sent == messages


async def test_aput_is_put_as_an_async_send(make_outbox):
    socket = Socket()
    outbox = make_outbox(socket)
    await outbox.aput(text("a"))
    await outbox.aput(text("b"))
    await settle()
    assert socket.sent == [text("a"), text("b")]


async def test_idle_means_nothing_queued_and_nothing_being_written(make_outbox):
    socket = Socket(stall=True)
    outbox = make_outbox(socket)
    assert outbox.idle
    outbox.put(text("a"))
    assert not outbox.idle  # queued
    await settle()
    assert socket.attempts == [text("a")] and socket.sent == []
    assert not outbox.idle  # being written, the queue empty
    socket.gate.set()
    await settle()
    assert socket.sent == [text("a")]
    assert outbox.idle


async def test_put_never_waits_for_a_stalled_socket(make_outbox):
    socket = Socket(stall=True)
    outbox = make_outbox(socket, max_bytes=10_000)
    for n in range(100):
        outbox.put(text(f"{n:03}"))  # returns at once: put is not a coroutine
    assert not outbox.closed
    socket.gate.set()
    await settle(200)
    assert [m["text"] for m in socket.sent] == [f"{n:03}" for n in range(100)]


async def test_pushes_made_while_a_reply_is_made_go_out_right_after_it(make_outbox):
    socket = Socket()
    outbox = make_outbox(socket)
    outbox.push("before")
    outbox.hold()
    outbox.push("push 1")
    outbox.push("push 2")
    await settle()
    assert not outbox.idle  # two pushes held
    outbox.put(text("reply"))
    outbox.release()
    await settle()
    assert [m["text"] for m in socket.sent] == ["before", "reply", "push 1", "push 2"]
    assert outbox.idle


async def test_held_pushes_count_against_the_same_byte_limit(make_outbox):
    """One queue: pushes held behind a reply cannot grow past MAX_OUTGOING_BYTES either."""
    socket = Socket()
    outbox = make_outbox(socket, max_bytes=25)
    outbox.hold()
    outbox.push("a" * 20)
    outbox.push("b" * 10)  # 30 bytes waiting behind a reply not yet made
    assert outbox.closed
    outbox.put(text("reply"))
    outbox.release()
    await settle()
    assert socket.sent == [CLOSE]


async def test_queued_bytes_up_to_the_limit_are_kept(make_outbox):
    socket = Socket()
    outbox = make_outbox(socket, max_bytes=25)
    outbox.put(text("a" * 10))
    outbox.put(text("b" * 15))  # 25 queued: exactly the limit
    outbox.put({"type": "websocket.accept"})  # no text: counts 0
    assert not outbox.closed
    await settle()
    assert [m.get("text") for m in socket.sent] == ["a" * 10, "b" * 15, None]


async def test_past_the_limit_the_queue_is_dropped_and_the_socket_closed_4008(make_outbox, caplog):
    socket = Socket(stall=True)
    outbox = make_outbox(socket, max_bytes=25)
    with caplog.at_level(logging.WARNING, logger="syncbind"):
        outbox.put(text("a" * 10))
        outbox.put(text("b" * 15))
        outbox.put(text("c"))  # 26 bytes
    assert outbox.closed
    assert outbox.idle  # the queue was dropped
    assert "over 25 bytes waiting" in caplog.text
    await settle()
    # The close goes out beside the writer (which may be stuck in a send).
    assert socket.sent == [CLOSE]
    outbox.put(text("later"))
    socket.gate.set()
    await settle()
    assert socket.sent == [CLOSE]
    assert text("later") not in socket.attempts


async def test_the_close_goes_out_even_while_a_send_is_stuck(make_outbox):
    socket = Socket(stall=True)
    outbox = make_outbox(socket, max_bytes=20)
    outbox.put(text("x" * 5))
    await settle()
    assert socket.attempts == [text("x" * 5)]  # taken off the queue, stuck in the send
    outbox.put(text("y" * 20))  # the stuck frame no longer counts: 20 queued
    assert not outbox.closed
    outbox.put(text("z"))  # 21
    assert outbox.closed
    await settle()
    assert socket.sent == [CLOSE]


async def test_bytes_frames_count_their_length(make_outbox):
    socket = Socket(stall=True)
    outbox = make_outbox(socket, max_bytes=8)
    outbox.put({"type": "websocket.send", "bytes": b"12345"})
    outbox.put({"type": "websocket.send", "bytes": b"123"})
    assert not outbox.closed
    outbox.put({"type": "websocket.send", "bytes": b"1"})
    assert outbox.closed


async def test_one_message_larger_than_the_limit_goes_out_when_nothing_waits(make_outbox):
    socket = Socket()
    outbox = make_outbox(socket, max_bytes=5)
    outbox.put(text("x" * 100))
    assert not outbox.closed
    await settle()
    assert socket.sent == [text("x" * 100)]


async def test_a_failed_send_drops_the_rest_and_ignores_later_messages(make_outbox):
    socket = Socket(fail_on="boom")
    outbox = make_outbox(socket)
    outbox.put(text("a"))
    outbox.put(text("boom"))
    outbox.put(text("c"))
    await settle()
    assert socket.sent == [text("a")]
    assert socket.attempts == [text("a"), text("boom")]
    assert outbox.closed and outbox.idle
    outbox.put(text("d"))
    await settle()
    assert text("d") not in socket.attempts


async def test_aclose_stops_after_its_timeout_when_the_socket_never_drains():
    socket = Socket(stall=True)
    outbox = Outbox(socket.send, 1000)
    outbox.put(text("a"))
    outbox.put(text("b"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await outbox.aclose(timeout=0.05)
    assert 0.04 <= loop.time() - started < 1.0
    assert outbox.closed
    assert socket.sent == []
    assert text("b") not in socket.attempts
    outbox.put(text("c"))
    socket.gate.set()
    await settle()
    assert socket.sent == []


async def test_aclose_twice_is_harmless():
    socket = Socket()
    outbox = Outbox(socket.send, 1000)
    outbox.put(text("a"))
    await outbox.aclose()
    await outbox.aclose()
    assert socket.sent == [text("a")]


async def test_aclose_lets_the_frame_being_written_finish():
    sent = []

    async def slow_send(message):
        await asyncio.sleep(0.05)  # a client reading slowly, well within aclose's timeout
        sent.append(message)

    outbox = Outbox(slow_send, 1000)
    outbox.put(text("a"))
    outbox.put(text("b"))
    await outbox.aclose(timeout=2.0)
    assert sent == [text("a"), text("b")]
