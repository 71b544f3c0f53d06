"""[syncbind/_workers/pool.py, syncbind/_workers/executor.py] The worker pool: many threads for
waiting, about one per CPU for running (marked ``unit``); connections in parallel, one
connection in order; and the real server.
"""

import asyncio
import contextlib
import json
import threading
import time

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from syncbind import AsyncBindingConsumer, BindingConsumer, SyncBinding, event
from syncbind._workers import executor, pool
from syncbind._workers.pool import WorkerPool
from syncbind.permissions import AllowAny
from syncbind.testing import connect, override_bindings
from tests import factories
from tests.servers import test_database_env, token_protocols, uvicorn_server
from tests.testapp import bindings
from tests.testapp.models import Product

# Unit: no database, no server.

WAIT = 10  # seconds any one step may take before the test fails


def wait_until(condition, what):
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


@pytest.fixture
def make_pool():
    made = []

    def make(size, running_limit, handoff, **kwargs):
        made.append(WorkerPool(size, running_limit, handoff, **kwargs))
        return made[-1]

    yield make
    for each in made:
        each.shutdown(wait=True, cancel_futures=True)


class Gate:
    """Calls that record that they started and wait until let through."""

    def __init__(self):
        self.started = []
        self.go = threading.Event()

    def call(self, name):
        self.started.append(name)
        assert self.go.wait(WAIT)
        return name


@pytest.mark.unit
def test_no_more_than_the_limit_start_and_a_finishing_worker_takes_the_next(make_pool):
    workers = make_pool(4, 2, handoff=3600)  # no hand-off within the test
    gate = Gate()
    futures = [workers.submit(gate.call, n) for n in range(4)]
    wait_until(lambda: len(gate.started) == 2, "two calls to start")
    # The other two wait in the queue: no thread was even started for them.
    assert workers.threads == 2 and workers.running == 2 and len(gate.started) == 2
    gate.go.set()
    assert [f.result(WAIT) for f in futures] == [0, 1, 2, 3]
    assert workers.threads == 2  # the two took the queued calls themselves


@pytest.mark.unit
def test_a_call_that_runs_too_long_makes_room(make_pool):
    """Two calls meet at a barrier with a limit of one: only the hand-off lets the
    second start while the first, blocked, still runs."""
    workers = make_pool(2, 1, handoff=0.01)
    barrier = threading.Barrier(2, timeout=WAIT)
    futures = [workers.submit(barrier.wait) for _ in range(2)]
    assert sorted(f.result(WAIT) for f in futures) == [0, 1]


@pytest.mark.unit
def test_calls_queued_while_the_watchdog_sleeps_until_a_handoff_do_not_wake_it(make_pool):
    """Under load calls are queued all the time: waking the watchdog for each would be
    a thread switch per call. Condition.notify() takes its waiter off the list at once,
    so an empty list right after submit() means it was woken."""
    workers = make_pool(2, 1, handoff=3600)
    gate = Gate()
    futures = [workers.submit(gate.call, 0), workers.submit(gate.call, 1)]
    wait_until(lambda: len(workers._watch._waiters) == 1, "the watchdog to sleep")
    futures += [workers.submit(gate.call, n) for n in range(2, 6)]
    assert len(workers._watch._waiters) == 1
    gate.go.set()
    assert [f.result(WAIT) for f in futures] == [0, 1, 2, 3, 4, 5]


@pytest.mark.unit
def test_the_watchdog_waiting_for_calls_is_woken_by_the_next_queued_one(make_pool):
    """After the queue drained, two calls meet at a barrier with a limit of one: only
    the hand-off, by a watchdog woken for the queued second, lets them meet."""
    workers = make_pool(2, 1, handoff=0.01)
    barrier = threading.Barrier(2, timeout=WAIT)
    assert sorted(f.result(WAIT) for f in [workers.submit(barrier.wait) for _ in range(2)]) == [
        0,
        1,
    ]
    wait_until(lambda: workers._watchdog_idle, "the watchdog to wait for calls")
    barrier.reset()
    futures = [workers.submit(barrier.wait) for _ in range(2)]
    assert sorted(f.result(WAIT) for f in futures) == [0, 1]


@pytest.mark.unit
def test_a_worker_stepping_aside_lets_a_queued_call_run(make_pool):
    workers = make_pool(2, 1, handoff=3600)
    released = threading.Event()

    def waits_for_the_other():
        pool.step_aside()
        try:
            return released.wait(WAIT)
        finally:
            pool.step_back()

    first = workers.submit(waits_for_the_other)
    second = workers.submit(released.set)
    assert first.result(WAIT) is True
    second.result(WAIT)


class FrozenClock:
    """A clock that moves only when the test moves it: no hand-off is ever due by itself."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Statement:
    """A call that steps aside as a worker does around a statement, and waits inside."""

    def __init__(self):
        self.inside, self.done = threading.Event(), threading.Event()
        self.thread = None

    def run(self):
        self.thread = threading.get_ident()
        pool.step_aside()
        try:
            self.inside.set()
            return self.done.wait(WAIT)
        finally:
            pool.step_back()


@pytest.mark.unit
def test_a_fast_statement_wakes_nobody_and_the_same_worker_takes_the_next_call(make_pool):
    """The clock stands still: the statement never reaches the hand-off, so the queued
    call waits for the statement's worker instead of waking a thread of its own."""
    workers = make_pool(2, 1, handoff=3600, statement_handoff=0.001, clock=FrozenClock())
    statement = Statement()
    first = workers.submit(statement.run)
    assert statement.inside.wait(WAIT)
    second = workers.submit(threading.get_ident)
    assert workers.threads == 1 and workers.running == 1
    statement.done.set()
    assert first.result(WAIT) is True
    assert second.result(WAIT) == statement.thread
    assert workers.threads == 1


@pytest.mark.unit
def test_a_statement_past_the_handoff_lets_a_queued_call_run(make_pool):
    """The second call releases the first's statement: it can only run once the clock
    has passed the statement hand-off and the watchdog woke a worker for it."""
    clock = FrozenClock()
    workers = make_pool(2, 1, handoff=3600, statement_handoff=0.001, clock=clock)
    statement = Statement()
    first = workers.submit(statement.run)
    assert statement.inside.wait(WAIT)
    second = workers.submit(statement.done.set)
    assert workers.threads == 1
    clock.now += 0.001
    second.result(WAIT)
    assert first.result(WAIT) is True
    assert workers.threads == 2


@pytest.mark.unit
def test_a_worker_back_from_its_statement_does_not_wait_for_another_in_one(make_pool):
    """The second statement never reaches its hand-off (the clock stands still after the
    first's): the third call runs only if the first worker, back from its statement,
    takes it while the second is still waiting in its own."""
    clock = FrozenClock()
    workers = make_pool(2, 1, handoff=3600, statement_handoff=0.001, clock=clock)
    first, second = Statement(), Statement()
    one = workers.submit(first.run)
    assert first.inside.wait(WAIT)
    two = workers.submit(second.run)
    clock.now += 0.001  # the first statement is handed off: a worker is woken for the second
    assert second.inside.wait(WAIT)
    three = workers.submit(threading.get_ident)
    first.done.set()
    assert three.result(WAIT) == first.thread
    assert not two.done()
    second.done.set()
    assert one.result(WAIT) is True and two.result(WAIT) is True


@pytest.mark.unit
def test_a_statement_handoff_of_zero_wakes_a_worker_as_the_statement_begins(make_pool):
    """As before the hand-off existed: no clock needs to move."""
    workers = make_pool(2, 1, handoff=3600, statement_handoff=0, clock=FrozenClock())
    statement = Statement()
    first = workers.submit(statement.run)
    assert statement.inside.wait(WAIT)
    second = workers.submit(statement.done.set)
    second.result(WAIT)
    assert first.result(WAIT) is True


@pytest.mark.unit
def test_the_statement_handoff_is_read_through_its_hook(make_pool):
    class Patient(WorkerPool):
        def get_statement_handoff(self):
            return 0.002

    clock = FrozenClock()
    workers = Patient(2, 1, handoff=3600, clock=clock)
    try:
        statement = Statement()
        first = workers.submit(statement.run)
        assert statement.inside.wait(WAIT)
        second = workers.submit(statement.done.set)
        clock.now += 0.0015  # past the class attribute's millisecond, not the hook's two
        assert not second.done() and workers.threads == 1
        clock.now += 0.001
        second.result(WAIT)
        assert first.result(WAIT) is True
    finally:
        workers.shutdown(wait=True, cancel_futures=True)
    assert WorkerPool.statement_handoff == 0.001


@pytest.mark.unit
def test_stepping_aside_outside_a_pool_does_nothing():
    pool.step_aside()
    pool.step_back()
    assert pool.waiting_on_database(lambda *args: "ran", "SELECT 1", (), False, {}) == "ran"


@pytest.mark.unit
def test_results_exceptions_and_cancelled_calls(make_pool):
    workers = make_pool(1, 1, handoff=3600)
    gate = Gate()
    blocking = workers.submit(gate.call, "first")
    wait_until(lambda: gate.started, "the first call to start")
    cancelled = workers.submit(gate.call, "never")
    failing = workers.submit(int, "not a number")
    assert cancelled.cancel()
    gate.go.set()
    assert blocking.result(WAIT) == "first"
    with pytest.raises(ValueError):
        failing.result(WAIT)
    assert gate.started == ["first"]


@pytest.mark.unit
def test_shutdown_runs_each_thread_exit_and_refuses_new_calls(make_pool):
    exited = []
    workers = make_pool(
        3, 3, handoff=3600, thread_exit=lambda: exited.append(threading.get_ident())
    )
    barrier = threading.Barrier(3, timeout=WAIT)
    for future in [workers.submit(barrier.wait) for _ in range(3)]:
        future.result(WAIT)
    workers.shutdown(wait=True)
    assert len(set(exited)) == 3
    with pytest.raises(RuntimeError):
        workers.submit(print)


@pytest.mark.unit
def test_the_process_pool_follows_the_settings(settings):
    settings.SYNCBIND = {
        "THREAD_POOL_SIZE": 8,
        "MAX_RUNNING_THREADS": 3,
        "THREAD_HANDOFF": 0.02,
        "STATEMENT_HANDOFF": 0.003,
    }
    first = executor.get_executor()
    assert (first.size, first.running_limit, first.handoff) == (8, 3, 0.02)
    assert first.get_statement_handoff() == 0.003
    assert executor.get_executor() is first
    settings.SYNCBIND = {"THREAD_POOL_SIZE": 8}
    second = executor.get_executor()
    assert second is not first
    assert second.running_limit == pool.default_running_limit() and second.handoff == 0.005
    assert second.get_statement_handoff() == WorkerPool.statement_handoff


@pytest.mark.unit
def test_one_running_thread_by_default_where_python_has_a_gil(monkeypatch):
    monkeypatch.setattr(pool.sys, "_is_gil_enabled", lambda: True, raising=False)
    assert pool.default_running_limit() == 1
    monkeypatch.setattr(pool.sys, "_is_gil_enabled", lambda: False, raising=False)
    assert pool.default_running_limit() == pool.cpu_count()


# Through consumers and a real server, on the test database.


@pytest.fixture
def rendezvous(monkeypatch):
    """A fresh barrier for ProductBinding.rendezvous, with a short timeout."""

    def make(parties, timeout):
        barrier = threading.Barrier(parties, timeout=timeout)
        monkeypatch.setattr(bindings, "sleepy_barrier", barrier)
        return barrier

    return make


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
async def test_statements_wait_except_on_sqlite(settings):
    """SQLite runs a statement in this process, on a CPU: that is running, not waiting."""
    from django.db import connection

    from syncbind._workers.executor import run_in_pool
    from syncbind._workers.pool import waiting_on_database

    def installed():
        connection.ensure_connection()
        return waiting_on_database in connection.execute_wrappers

    assert await run_in_pool(installed) is (connection.vendor != "sqlite")


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
async def test_one_connection_runs_in_order(make_client, superuser):
    client = await make_client(superuser)
    await client.send_raw(
        json.dumps({"event": "testapp.Product.nap", "data": {"seconds": 0.3}, "request_id": 1})
    )
    await client.send_raw(json.dumps({"event": "testapp.Product.ping", "request_id": 2}))
    first, second = await client.receive(), await client.receive()
    assert (first["request_id"], second["request_id"]) == (1, 2)
    assert first["data"] == {"slept": True}


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
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
