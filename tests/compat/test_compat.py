"""The workarounds for other libraries (syncbind/_compat/): each acts on the versions that
need it and leaves alone what it was not written for.

Marked ``unit``: no database, no server.
"""

import asyncio
import gc
import os
import sys
import threading
from types import SimpleNamespace

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from channels_redis.core import RedisChannelLayer

import syncbind._compat
from syncbind._compat import asgiref, channels_redis, cpython
from syncbind._compat.redis_py import raise_if_cancelling

pytestmark = pytest.mark.unit


# -- the shared version check ---------------------------------------------------------
@pytest.fixture
def installed(monkeypatch):
    """Make ``importlib.metadata.version`` answer ``versions`` (a name missing: not
    installed), with the version cache cleared before and after."""

    def install(**versions):
        def version(name):
            try:
                return versions[name.replace("-", "_")]
            except KeyError:
                raise syncbind._compat.metadata.PackageNotFoundError(name) from None

        monkeypatch.setattr(syncbind._compat.metadata, "version", version)
        syncbind._compat.installed_version.cache_clear()

    yield install
    syncbind._compat.installed_version.cache_clear()


@pytest.mark.parametrize(
    ("text", "release"),
    [("4.3.0", (4, 3, 0)), ("5.0rc1", (5, 0)), ("4.3.0.post1", (4, 3, 0)), ("dev", None)],
)
def test_an_installed_version_is_read_as_its_release_numbers(installed, text, release):
    installed(channels_redis=text)
    assert syncbind._compat.installed_version("channels-redis") == release


def test_a_distribution_not_installed_has_no_version(installed):
    installed()
    assert syncbind._compat.installed_version("channels-redis") is None


# -- CPython gh-86296: asyncio.wait_for loses a cancel before 3.12 ----------------------
@pytest.mark.parametrize(
    ("version", "loses"),
    [((3, 11, 0), True), ((3, 11, 7, "final", 0), True), ((3, 12, 0), False), ((3, 13, 1), False)],
)
def test_wait_for_loses_a_cancel_before_python_3_12(version, loses):
    assert cpython.wait_for_loses_cancel(version) is loses


def test_the_running_python_is_the_default():
    assert cpython.wait_for_loses_cancel() is (sys.version_info < (3, 12))


class RecordingLoop:
    """Takes ``call_later`` calls without running them: the test runs them, in turn."""

    def __init__(self):
        self.later = []

    def call_later(self, delay, callback, *args):
        self.later.append((delay, callback, args))

    def run_next(self):
        _delay, callback, args = self.later.pop(0)
        callback(*args)


@pytest.fixture
def future():
    loop = asyncio.new_event_loop()
    try:
        yield loop.create_future()
    finally:
        loop.close()


def test_on_python_3_12_and_later_an_abandoned_receive_is_not_cancelled_again(monkeypatch, future):
    monkeypatch.setattr(cpython, "wait_for_loses_cancel", lambda: False)
    loop = RecordingLoop()
    cpython.cancel_until_done(loop, future, lambda: True)
    assert loop.later == []
    assert not future.cancelled()


def test_before_python_3_12_it_is_cancelled_again_until_it_ends(monkeypatch, future):
    monkeypatch.setattr(cpython, "wait_for_loses_cancel", lambda: True)
    loop = RecordingLoop()
    cpython.cancel_until_done(loop, future, lambda: True)
    assert [delay for delay, _, _ in loop.later] == [cpython.CANCEL_AGAIN_AFTER]
    assert not future.cancelled()  # the first cancel is the caller's

    loop.run_next()
    assert future.cancelled()
    assert len(loop.later) == 1  # checked again later
    loop.run_next()
    assert loop.later == []  # ended: nothing more


def test_before_python_3_12_a_receive_taken_over_is_left_alone(monkeypatch, future):
    monkeypatch.setattr(cpython, "wait_for_loses_cancel", lambda: True)
    loop = RecordingLoop()
    abandoned = [True]
    cpython.cancel_until_done(loop, future, lambda: abandoned[0])
    abandoned[0] = False  # a receive loop started since and waits for it again
    loop.run_next()
    assert not future.cancelled() and loop.later == []


@pytest.mark.asyncio
async def test_a_task_that_loses_its_cancel_is_cancelled_again_until_it_ends(monkeypatch):
    monkeypatch.setattr(cpython, "wait_for_loses_cancel", lambda: True)
    cancels = []

    async def loses_the_first():
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancels.append(asyncio.current_task().cancelling())
                if len(cancels) > 1:
                    raise

    task = asyncio.ensure_future(loses_the_first())
    await asyncio.sleep(0)
    await cpython.cancel_and_wait(task)
    assert task.cancelled() and cancels == [1, 2]


@pytest.mark.asyncio
async def test_what_a_cancelled_task_gave_back_instead_is_taken_not_raised():
    async def answers_with_an_error():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionError("Connection closed by server.") from None

    reported = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
    task = asyncio.ensure_future(answers_with_an_error())
    await asyncio.sleep(0)
    await cpython.cancel_and_wait(task)
    assert task.done() and not task.cancelled()
    del task
    gc.collect()
    # Not "Task exception was never retrieved" in the log of a socket that closed.
    assert reported == []


# -- redis-py: a cancel given back as another outcome -----------------------------------
@pytest.mark.asyncio
async def test_a_cancel_the_layer_turned_into_an_error_is_raised_again():
    hidden = asyncio.Event()

    async def layer_call():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionError("Connection closed by server.") from None

    async def loop_that_retries():
        while True:
            raise_if_cancelling()
            try:
                await layer_call()
            except ConnectionError:
                hidden.set()

    task = asyncio.create_task(loop_that_retries())
    await asyncio.sleep(0)  # into layer_call
    task.cancel()
    await asyncio.wait({task}, timeout=3)
    assert hidden.is_set() and task.cancelled()


@pytest.mark.asyncio
async def test_a_task_not_asked_to_cancel_goes_on():
    raise_if_cancelling()  # nothing raised


# -- channels-redis: the clean-up locks a cancel leaves behind (django/channels_redis#313)
def never_connected_layer():
    """A real channels-redis layer (as installed) that is never connected."""
    return RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"])


async def leak_a_clean_lock(layer, key="asgi:specific.x!"):
    """Cancel a receive's wait for a clean-up lock, as a stopping hub can."""
    locks = layer.receive_clean_locks
    await locks.acquire(key)
    waiter = asyncio.create_task(locks.acquire(key))
    await asyncio.sleep(0)  # waiting for the lock
    waiter.cancel()
    await asyncio.wait({waiter})
    locks.release(key)
    return key


@pytest.mark.asyncio
async def test_channels_redis_4_keeps_a_clean_lock_a_cancel_left_and_the_hub_drops_it():
    layer = never_connected_layer()
    key = await leak_a_clean_lock(layer)
    # The upstream bug, on the channels-redis installed: if this fails, a release fixed
    # it, and compat.channels_redis should be gated on that release.
    assert key in layer.receive_clean_locks.locks, "channels-redis no longer leaks the lock"
    assert channels_redis.clean_locks_leak()

    await channels_redis.prepare_receive(layer)
    assert layer.receive_clean_locks.locks == {}
    assert layer.receive_clean_locks.wait_counts == {}


@pytest.mark.asyncio
async def test_a_clean_lock_held_or_a_receive_running_is_not_dropped():
    layer = never_connected_layer()
    key = await leak_a_clean_lock(layer)
    await layer.receive_clean_locks.acquire(key)  # held again
    channels_redis.drop_stale_clean_locks(layer)
    assert key in layer.receive_clean_locks.locks
    layer.receive_clean_locks.release(key)

    layer.receive_count = 1  # someone in the process is receiving
    channels_redis.drop_stale_clean_locks(layer)
    assert key in layer.receive_clean_locks.locks


@pytest.mark.asyncio
@pytest.mark.parametrize("version", ["5.0.0", "3.3.1", None])
async def test_a_channels_redis_other_than_4_is_left_alone(installed, version):
    layer = never_connected_layer()
    key = await leak_a_clean_lock(layer)
    waited = []

    async def wait_received():
        waited.append(True)

    layer.wait_received = wait_received
    installed(**({"channels_redis": version} if version else {}))
    assert not channels_redis.clean_locks_leak()
    await channels_redis.prepare_receive(layer)
    assert waited == []
    assert key in layer.receive_clean_locks.locks


class ReshapedLocks:
    """Clean-up locks kept otherwise than channels-redis 4.x keeps them."""

    def __init__(self, lock):
        self.locks = {"k": lock}  # and no wait_counts


@pytest.mark.parametrize(
    "reshape",
    [
        lambda layer, lock: setattr(layer, "receive_clean_locks", ReshapedLocks(lock)),
        lambda layer, lock: delattr(layer, "receive_count"),
        lambda layer, lock: delattr(layer, "receive_cleaners"),
    ],
    ids=["no wait_counts", "no receive_count", "no receive_cleaners"],
)
def test_a_layer_whose_private_state_is_not_shaped_as_in_4_x_is_left_alone(reshape):
    lock = asyncio.Lock()
    layer = SimpleNamespace(
        receive_clean_locks=SimpleNamespace(locks={"k": lock}, wait_counts={"k": 1}),
        receive_count=0,
        receive_cleaners=[],
    )
    reshape(layer, lock)
    channels_redis.drop_stale_clean_locks(layer)
    assert layer.receive_clean_locks.locks == {"k": lock}


@pytest.mark.asyncio
async def test_another_layer_is_not_prepared():
    await channels_redis.prepare_receive(SimpleNamespace())  # no wait_received: nothing


# -- asgiref: the loop of a sync_to_async call (django/asgiref#197) ----------------------
@pytest.mark.asyncio
async def test_a_worker_thread_knows_the_loop_of_its_sync_to_async_call():
    assert await sync_to_async(asgiref.sync_caller_loop)() is asyncio.get_running_loop()


def test_a_thread_outside_sync_to_async_has_no_caller_loop():
    found = []
    thread = threading.Thread(target=lambda: found.append(asgiref.sync_caller_loop()))
    thread.start()
    thread.join()
    assert found == [None]


def test_an_asgiref_that_keeps_the_loop_otherwise_gives_none(monkeypatch):
    loop = asyncio.new_event_loop()
    try:
        reshaped = SimpleNamespace(loop=loop, loop_pid=os.getpid())
        monkeypatch.setattr(SyncToAsync, "threadlocal", reshaped)
        assert asgiref.sync_caller_loop() is None
    finally:
        loop.close()


def test_the_thread_sensitive_executor_is_asgiref_s_or_none(monkeypatch):
    assert asgiref.thread_sensitive_executor() is SyncToAsync.single_thread_executor
    monkeypatch.delattr(SyncToAsync, "single_thread_executor")
    assert asgiref.thread_sensitive_executor() is None
