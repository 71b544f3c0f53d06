"""The consumers (syncbind/consumers.py): what they do per message beyond the core."""

import asyncio
import json
import threading
from typing import ClassVar

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer
from channels.routing import URLRouter
from django.core.exceptions import ImproperlyConfigured
from django.urls import path

from syncbind import AsyncBindingConsumer, BindingConsumer, SyncBinding, consumers, event
from syncbind._compat import cpython
from syncbind.testing import connect, override_bindings, settle
from tests import factories
from tests.testapp.models import Product

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def channels_closes(monkeypatch):
    """Count Channels' per-message hop to close old connections on its shared thread."""
    calls = []

    async def counting():
        calls.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", counting)
    monkeypatch.setattr("syncbind._bindings.lifecycle.aclose_old_connections", counting)
    return calls


async def test_the_sync_consumer_skips_channels_per_message_close(superuser, channels_closes):
    # Its handlers run in syncbind's workers, which close their own connections.
    async with connect(superuser, application=BindingConsumer.as_asgi()) as client:
        for _ in range(3):
            assert "data" in await client.send_event("testapp.Product.ping")
    assert channels_closes == []


async def test_a_consumer_with_events_on_the_loop_makes_it_only_for_those(
    superuser, channels_closes
):
    # async def events run on the loop and may use Django's async ORM (Channels'
    # thread), and so may AsyncBindingConsumer's connect(): those get the hop first.
    async with connect(superuser, application=AsyncBindingConsumer.as_asgi()) as client:
        assert len(channels_closes) == 1  # the connect
        for _ in range(3):
            assert "data" in await client.send_event("testapp.Product.ping")
        assert len(channels_closes) == 1  # sync events run in the workers
        reply = await client.send_event("testapp.Product.async_echo", {"x": 1})
        assert "data" in reply
        assert len(channels_closes) == 2


class LoopBinding(SyncBinding):
    """Its dispatch() is its own; its async event reports the loop it ran on."""

    model = Product
    stream = "testapp.LoopProduct"
    fields = ["id", "name"]
    dispatched: ClassVar[list[str]] = []

    def dispatch(self):
        LoopBinding.dispatched.append(self.action)
        return super().dispatch()

    @event
    async def where(self, request):
        loop = asyncio.get_running_loop()
        return {"on_the_sockets_loop": loop is request.connection.consumer.loop}


@override_bindings(LoopBinding)
@pytest.mark.parametrize("consumer", [BindingConsumer, AsyncBindingConsumer])
async def test_every_event_goes_through_dispatch_and_async_ones_run_on_the_sockets_loop(
    superuser, consumer
):
    LoopBinding.dispatched.clear()
    async with connect(superuser, application=consumer.as_asgi()) as client:
        reply = await client.send_event("testapp.LoopProduct.where")
        assert reply["data"] == {"on_the_sockets_loop": True}
        assert (await client.send_event("testapp.LoopProduct.list"))["data"]["count"] == 0
    assert LoopBinding.dispatched == ["where", "list"]


def test_an_async_event_cannot_be_declared_atomic():
    with pytest.raises(ImproperlyConfigured, match="'nightly' is async def"):

        class Atomic(SyncBinding):
            model = Product
            fields = ["id"]

            @event(atomic=True)
            async def nightly(self, request):
                return None

    assert LoopBinding.get_event("where")[1].atomic is False  # the default for async def


class DetachedBinding(SyncBinding):
    """``report`` runs beside the socket's other messages and waits on a gate."""

    model = Product
    stream = "testapp.DetachedProduct"
    fields = ["id", "name"]
    started = threading.Semaphore(0)
    gate = threading.Event()

    @event(detached=True)
    def report(self, request):
        DetachedBinding.started.release()
        assert DetachedBinding.gate.wait(10)
        return {"report": request.data["n"]}


def detached_frame(n, request_id):
    return json.dumps(
        {"event": "testapp.DetachedProduct.report", "data": {"n": n}, "request_id": request_id}
    )


@override_bindings(DetachedBinding)
@pytest.mark.parametrize("consumer", [BindingConsumer, AsyncBindingConsumer])
async def test_a_detached_event_runs_beside_the_sockets_next_messages(superuser, consumer):
    """While ``report`` waits on its gate, the socket answers the messages after it; its
    reply comes when it is done. Proven with the gate, not with time."""
    DetachedBinding.gate.clear()
    async with connect(superuser, application=consumer.as_asgi()) as client:
        await client.send_raw(detached_frame(1, "slow"))
        assert await asyncio.to_thread(DetachedBinding.started.acquire, True, 10)
        # report is running (and blocked): a later message is answered first.
        assert (await client.send_event("testapp.DetachedProduct.list"))["data"]["count"] == 0
        DetachedBinding.gate.set()
        reply = await client.receive()
        assert reply == {
            "event": "testapp.DetachedProduct.report",
            "data": {"report": 1},
            "request_id": "slow",
        }


@override_bindings(DetachedBinding)
async def test_detached_events_beyond_the_limit_are_refused(superuser, settings):
    settings.SYNCBIND = {"MAX_DETACHED_EVENTS": 1}
    DetachedBinding.gate.clear()
    async with connect(superuser, application=BindingConsumer.as_asgi()) as client:
        await client.send_raw(detached_frame(1, "first"))
        assert await asyncio.to_thread(DetachedBinding.started.acquire, True, 10)
        await client.send_raw(detached_frame(2, "second"))
        assert await client.receive() == {
            "event": "testapp.DetachedProduct.report",
            "error": {
                "code": "limit_exceeded",
                "message": "Too many detached events running on this connection "
                "(MAX_DETACHED_EVENTS=1).",
            },
            "request_id": "second",
        }
        DetachedBinding.gate.set()
        assert (await client.receive())["data"] == {"report": 1}
        # The slot is free again.
        DetachedBinding.gate.clear()
        await client.send_raw(detached_frame(3, "third"))
        assert await asyncio.to_thread(DetachedBinding.started.acquire, True, 10)
        DetachedBinding.gate.set()
        assert (await client.receive())["data"] == {"report": 3}


class ChatConsumer(BindingConsumer):
    """The Channels tutorial's chat consumer, written for JsonWebsocketConsumer, with
    its base class changed to BindingConsumer and nothing else."""

    def connect(self):
        self.room_group_name = f"chat_{self.scope['url_route']['kwargs']['room_name']}"
        async_to_sync(self.channel_layer.group_add)(self.room_group_name, self.channel_name)
        self.accept()

    def disconnect(self, close_code):
        async_to_sync(self.channel_layer.group_discard)(self.room_group_name, self.channel_name)

    def receive_json(self, content):
        async_to_sync(self.channel_layer.group_send)(
            self.room_group_name, {"type": "chat.message", "message": content["message"]}
        )

    def chat_message(self, event):
        self.send_json({"message": event["message"]})


def chat_app():
    return URLRouter([path("ws/chat/<str:room_name>/", ChatConsumer.as_asgi())])


async def test_a_channels_tutorial_consumer_keeps_working_beside_the_bindings(superuser, db_call):
    """connect(), disconnect(), receive_json() for frames that name no stream, a group
    handler and self.channel_layer work as before; the bindings answer and push beside
    them on the same socket."""
    alice = await connect(superuser, application=chat_app(), path="/ws/chat/lobby/")
    bob = await connect(superuser, application=chat_app(), path="/ws/chat/lobby/")
    try:
        page = await alice.send_event("testapp.Product.list")
        assert page["data"]["count"] == 0
        await bob.send_raw(json.dumps({"message": "hello"}))
        assert await alice.receive() == {"message": "hello"}
        assert await bob.receive() == {"message": "hello"}
        await settle()
        await db_call(factories.ProductFactory, name="lamp")
        pushed = await alice.receive_push("testapp.Product.list")
        assert [row["name"] for row in pushed["data"]["rows"]] == ["lamp"]
    finally:
        await bob.close()
    await alice.send_raw(json.dumps({"message": "anyone?"}))
    assert await alice.receive() == {"message": "anyone?"}  # bob left the room
    await alice.assert_nothing_more()
    await alice.close()


def _tasks_running(*names: str) -> list[str]:
    """The qualified names of the coroutines of the loop's tasks among ``names``."""
    running = (task.get_coro().__qualname__ for task in asyncio.all_tasks())
    return sorted(name for name in running if name in names)


IDLE_TASKS = ("Outbox._write", "_Transport._channel_receive")


@pytest.mark.parametrize("consumer", [BindingConsumer, AsyncBindingConsumer])
async def test_an_idle_connection_keeps_no_writer_and_no_channel_receive(superuser, consumer):
    # What an idle socket costs in memory (BENCHMARKS.md): its frames written, no task
    # waits on its empty outbox, and none on a channel it never used.
    async with connect(superuser, application=consumer.as_asgi()) as client:
        assert "data" in await client.send_event("testapp.Product.ping")
        await settle()
        assert _tasks_running(*IDLE_TASKS) == []


async def test_a_consumer_that_uses_its_channel_receives_from_it(superuser):
    async with connect(superuser, application=chat_app(), path="/ws/chat/lobby/") as client:
        # Its connect() read channel_name in a worker; the socket's next message is
        # taken only once connect() has returned, and after the channel's receive began.
        assert "data" in await client.send_event("testapp.Product.ping")
        await settle()
        assert _tasks_running(*IDLE_TASKS) == ["_Transport._channel_receive"]
        await client.send_raw(json.dumps({"message": "hello"}))
        assert await client.receive() == {"message": "hello"}


class LosesACancel(InMemoryChannelLayer):
    """A layer whose receive loses the first cancel, as channels-redis's does on Python
    3.11 when it lands as redis-py's ``wait_for`` around a send completes (gh-86296)."""

    lost = 0

    async def receive(self, channel):
        while True:
            try:
                return await super().receive(channel)
            except asyncio.CancelledError:
                if self.lost:
                    raise
                self.lost += 1


async def test_a_closed_socket_ends_even_when_its_channel_receive_loses_a_cancel(
    superuser, monkeypatch
):
    # Channels' way (cancel, then await) waited on such a receive for ever, and with it
    # the consumer, and an event loop closing under both.
    layer = LosesACancel()
    monkeypatch.setattr(consumers, "get_channel_layer", lambda alias: layer)
    monkeypatch.setattr(cpython, "wait_for_loses_cancel", lambda: True)
    client = await connect(superuser, application=chat_app(), path="/ws/chat/lobby/")
    communicator = client.communicator
    assert "data" in await client.send_event("testapp.Product.ping")
    assert _tasks_running(*IDLE_TASKS) == ["_Transport._channel_receive"]
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    # Bounded only so that the old way fails rather than hangs.
    await asyncio.wait([communicator.future], timeout=10)
    assert communicator.future.done() and not communicator.future.cancelled()
    assert layer.lost == 1 and _tasks_running(*IDLE_TASKS) == []


@pytest.mark.parametrize("consumer", [BindingConsumer, AsyncBindingConsumer])
async def test_a_frame_naming_no_event_is_refused_when_nothing_takes_it(superuser, consumer):
    async with connect(superuser, application=consumer.as_asgi()) as client:
        await client.send_raw(json.dumps({"message": "hello", "request_id": 7}))
        assert await client.receive() == {
            "event": None,
            "error": {
                "code": "bad_request",
                "message": "Unknown key 'message': a message has 'event', 'data', "
                "'request_id' and 'version' (list parameters such as 'ordering' go in "
                "'data').",
            },
            "request_id": 7,
        }


def test_the_pre_release_consumer_names_are_gone():
    # syncbind was never released under them: no alias, no warning, an import error.
    import syncbind
    from syncbind import consumers

    with pytest.raises(ImportError, match="SyncConsumer"):
        from syncbind import SyncConsumer  # noqa: F401
    with pytest.raises(AttributeError, match="AsyncConsumer"):
        syncbind.AsyncConsumer  # noqa: B018
    assert not hasattr(consumers, "SyncConsumer")
    assert not hasattr(consumers, "AsyncConsumer")
