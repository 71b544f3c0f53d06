"""[syncbind/_workers/pool.py, syncbind/_workers/executor.py] The worker pool: connections in parallel, one connection in order; and the real server."""

import asyncio
import contextlib
import json
import threading

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from syncbind import AsyncBindingConsumer, BindingConsumer, SyncBinding, event
from syncbind.permissions import AllowAny
from syncbind.testing import connect, override_bindings
from tests import factories
from tests.servers import test_database_env, token_protocols, uvicorn_server
from tests.testapp import bindings
from tests.testapp.models import Product

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rendezvous(monkeypatch):
    """A fresh barrier for ProductBinding.rendezvous, with a short timeout."""

    def make(parties, timeout):
        barrier = threading.Barrier(parties, timeout=timeout)
        monkeypatch.setattr(bindings, "sleepy_barrier", barrier)
        return barrier

    return make


@pytest.mark.parametrize("max_running", [1, 16])
@pytest.mark.parametrize("consumer", [BindingConsumer, AsyncBindingConsumer])
async def test_connections_run_in_parallel(consumer, max_running, rendezvous, superuser, settings):
    """8 handlers wait on one barrier: it opens only if all 8 run at the same time. With
    one running worker (the default), each holding its place past THREAD_HANDOFF while
    blocked on something other than the database makes room for the next."""
    settings.SYNCBIND = {"MAX_RUNNING_THREADS": max_running, "THREAD_HANDOFF": 0.005}
    rendezvous(8, timeout=10)
    clients = [await connect(superuser, application=consumer.as_asgi()) for _ in range(8)]
    try:
        replies = await asyncio.gather(
            *(c.send_event("testapp.Product.rendezvous", timeout=15) for c in clients)
        )
        assert [reply["data"] for reply in replies] == [{"met": True}] * 8
    finally:
        for client in clients:
            await client.close()


async def test_a_worker_waiting_on_the_database_lets_another_run(settings):
    """One running thread and no hand-off within the test: the second call can only
    run while the first waits in a statement if that wait does not count as running."""
    from django.db import connection

    from syncbind._workers.executor import run_in_pool
    from syncbind._workers.pool import waiting_on_database

    settings.SYNCBIND = {"MAX_RUNNING_THREADS": 1, "THREAD_HANDOFF": 3600}
    in_statement, released = threading.Event(), threading.Event()

    def statement_that_waits(execute, sql, params, many, context):
        in_statement.set()
        assert released.wait(10), "the other call never ran"
        return execute(sql, params, many, context)

    def query():
        with contextlib.ExitStack() as stack:
            if connection.vendor == "sqlite":  # not installed there (the next test)
                stack.enter_context(connection.execute_wrapper(waiting_on_database))
            stack.enter_context(connection.execute_wrapper(statement_that_waits))
            return Product.objects.count()

    first = asyncio.ensure_future(run_in_pool(query))
    assert await asyncio.to_thread(in_statement.wait, 10)
    await asyncio.wait_for(run_in_pool(released.set), 10)
    assert await first == 0


async def test_statements_wait_except_on_sqlite(settings):
    """SQLite runs a statement in this process, on a CPU: that is running, not waiting."""
    from django.db import connection

    from syncbind._workers.executor import run_in_pool
    from syncbind._workers.pool import waiting_on_database

    def installed():
        connection.ensure_connection()
        return waiting_on_database in connection.execute_wrappers

    assert await run_in_pool(installed) is (connection.vendor != "sqlite")


async def test_pool_size_bounds_parallelism(rendezvous, superuser, settings):
    settings.SYNCBIND = {"THREAD_POOL_SIZE": 4}
    rendezvous(8, timeout=1)
    clients = [await connect(superuser) for _ in range(8)]
    try:
        replies = await asyncio.gather(
            *(c.send_event("testapp.Product.rendezvous", timeout=15) for c in clients)
        )
        # Only 4 can wait at once: the barrier breaks, every handler fails cleanly.
        assert {reply["error"]["code"] for reply in replies} == {"server_error"}
    finally:
        for client in clients:
            await client.close()


async def test_one_connection_runs_in_order(make_client, superuser):
    client = await make_client(superuser)
    await client.send_raw(
        json.dumps({"event": "testapp.Product.nap", "data": {"seconds": 0.3}, "request_id": 1})
    )
    await client.send_raw(json.dumps({"event": "testapp.Product.ping", "request_id": 2}))
    first, second = await client.receive(), await client.receive()
    assert (first["request_id"], second["request_id"]) == (1, 2)
    assert first["data"] == {"slept": True}


async def test_worker_threads_are_the_pool(make_client, superuser, monkeypatch):
    seen = []
    original = bindings.ProductBinding.ping

    def ping(self, request):
        seen.append(threading.current_thread().name)
        return original(self, request)

    monkeypatch.setattr(bindings.ProductBinding, "ping", ping)
    client = await make_client(superuser)
    await client.send_event("testapp.Product.ping")
    assert seen and seen[0].startswith("syncbind")


# -- the real server ------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("path", ["/ws/", "/ws/async/"])
def test_real_server_with_websockets_client(path, transactional_db):
    user = factories.SuperUserFactory()
    category = factories.CategoryFactory()
    product = factories.ProductFactory(name="served")
    from syncbind.authentication import make_token

    env = {**test_database_env(), "SYNCBIND_TEST_TOKEN_AUTH": "1"}
    with uvicorn_server("tests.asgi:application", env=env) as port:

        async def scenario():
            url = f"ws://127.0.0.1:{port}{path}"
            with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                async with ws_connect(url):
                    pass
            assert refused.value.response.status_code == 403

            async with ws_connect(url, subprotocols=token_protocols(make_token(user))) as ws:
                assert ws.subprotocol == "syncbind"

                async def call(event, data, request_id):
                    await ws.send(
                        json.dumps({"event": event, "data": data, "request_id": request_id})
                    )
                    return json.loads(await ws.recv())

                reply = await call("testapp.Product.retrieve", {"id": product.pk}, 1)
                assert reply["event"] == "testapp.Product.retrieve" and reply["request_id"] == 1
                assert reply["data"]["name"] == "served"
                await ws.send("not json")
                assert json.loads(await ws.recv()) == {
                    "event": None,
                    "error": {"code": "bad_request", "message": "The message is not valid JSON."},
                }
                created = await call(
                    "testapp.Product.create",
                    {"name": "new", "price": "2", "category": category.pk},
                    2,
                )
                assert created["data"]["success"] is True
                page = await call(
                    "testapp.Product.list", {"ordering": "name", "subscribe": False}, 3
                )
                assert [row["name"] for row in page["data"]["rows"]] == ["new", "served"]
                # The retrieve subscribed: a change by another connection is pushed.
                async with ws_connect(url, subprotocols=token_protocols(make_token(user))) as other:
                    await other.send(
                        json.dumps(
                            {
                                "event": "testapp.Product.update",
                                "data": {"id": product.pk, "name": "renamed"},
                            }
                        )
                    )
                    assert json.loads(await other.recv())["data"]["row"]["name"] == "renamed"
                push = json.loads(await asyncio.wait_for(ws.recv(), 10))
                # Each carries the change-log position its state reflects (a later one).
                assert isinstance(reply["version"], str) and push["version"] != reply["version"]
                assert push == {
                    "event": "testapp.Product.retrieve",
                    "data": {**reply["data"], "name": "renamed"},
                    "version": push["version"],
                }

        asyncio.run(scenario())


def _connection_identity():
    from django.db import connection

    connection.ensure_connection()
    return connection.connection  # the DB-API object itself, kept alive so ids can't repeat


@pytest.mark.parametrize(("max_age", "reused"), [(0, False), (60, True)])
async def test_workers_reuse_connections_as_conn_max_age_says(max_age, reused, settings):
    """One worker: two messages in a row see the same database connection only when
    CONN_MAX_AGE keeps it (as in a Django request cycle)."""
    from django.db import connections

    from syncbind._workers.executor import run_in_pool, shutdown_executor

    settings.SYNCBIND = {"THREAD_POOL_SIZE": 1}
    database = connections["default"].settings_dict
    original = database["CONN_MAX_AGE"]
    database["CONN_MAX_AGE"] = max_age
    try:
        first = await run_in_pool(_connection_identity)
        second = await run_in_pool(_connection_identity)
        assert (first is second) is reused
    finally:
        database["CONN_MAX_AGE"] = original
        await asyncio.to_thread(shutdown_executor)


class ChattyConsumer(BindingConsumer):
    """Sends frames of its own from its sync hooks, from its worker thread."""

    def connect(self):
        super().connect()
        if self.connection is not None:
            self.send(text_data="welcome")


class ChattyBinding(SyncBinding):
    model = Product
    stream = "testapp.Chatty"
    fields = ["id"]
    permission_classes = [AllowAny]

    @event(atomic=False)
    def chat(self, request):
        consumer = request.consumer
        consumer.send(text_data="one")
        # Another thread's frame goes out in the order it was sent, too.
        helper = threading.Thread(target=consumer.send, kwargs={"text_data": "two"})
        helper.start()
        helper.join()
        consumer.send(text_data="three")
        return {"said": 3}


@override_bindings(ChattyBinding)
async def test_frames_a_worker_sends_go_out_in_order_before_its_reply(superuser):
    async with connect(superuser, application=ChattyConsumer.as_asgi()) as client:
        assert await client.communicator.receive_from(5) == "welcome"
        await client.communicator.send_to(text_data='{"event": "testapp.Chatty.chat"}')
        assert [await client.communicator.receive_from(5) for _ in range(3)] == [
            "one",
            "two",
            "three",
        ]
        assert json.loads(await client.communicator.receive_from(5)) == {
            "event": "testapp.Chatty.chat",
            "data": {"said": 3},
        }
