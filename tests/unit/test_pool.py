"""syncbind._workers.pool: many threads for waiting, about one per CPU for running."""

import threading
import time

import pytest

from syncbind._workers import executor, pool
from syncbind._workers.pool import WorkerPool

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


def test_a_call_that_runs_too_long_makes_room(make_pool):
    """Two calls meet at a barrier with a limit of one: only the hand-off lets the
    second start while the first, blocked, still runs."""
    workers = make_pool(2, 1, handoff=0.01)
    barrier = threading.Barrier(2, timeout=WAIT)
    futures = [workers.submit(barrier.wait) for _ in range(2)]
    assert sorted(f.result(WAIT) for f in futures) == [0, 1]


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


def test_a_statement_handoff_of_zero_wakes_a_worker_as_the_statement_begins(make_pool):
    """As before the hand-off existed: no clock needs to move."""
    workers = make_pool(2, 1, handoff=3600, statement_handoff=0, clock=FrozenClock())
    statement = Statement()
    first = workers.submit(statement.run)
    assert statement.inside.wait(WAIT)
    second = workers.submit(statement.done.set)
    second.result(WAIT)
    assert first.result(WAIT) is True


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


def test_stepping_aside_outside_a_pool_does_nothing():
    pool.step_aside()
    pool.step_back()
    assert pool.waiting_on_database(lambda *args: "ran", "SELECT 1", (), False, {}) == "ran"


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


def test_one_running_thread_by_default_where_python_has_a_gil(monkeypatch):
    monkeypatch.setattr(pool.sys, "_is_gil_enabled", lambda: True, raising=False)
    assert pool.default_running_limit() == 1
    monkeypatch.setattr(pool.sys, "_is_gil_enabled", lambda: False, raising=False)
    assert pool.default_running_limit() == pool.cpu_count()
