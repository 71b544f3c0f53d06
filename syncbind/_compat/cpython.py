"""Python's own asyncio: a cancel that ``asyncio.wait_for`` loses before Python 3.12.

CPython gh-86296 (bpo-42130), "AsyncIO's wait_for can hide cancellation in a rare
race condition": when a cancel lands as the awaited operation completes,
``wait_for`` returns its outcome (a result, or its own error) and the cancel is
lost. Fixed in 3.12, where ``wait_for`` was rewritten on ``asyncio.timeout``
(gh-96764, not backported); 3.11, which syncbind supports, still has it.
redis-py sends every command under ``wait_for``, so on 3.11 a cancel can miss
channels-redis's receive.

Two remedies, for two kinds of waiter: :func:`cancel_until_done` for a receive
nobody waits for any more (the hub's), :func:`cancel_and_wait` for one whose
owner waits for it to end (a consumer's own channel, as it closes).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

# The first Python whose wait_for no longer loses a cancel (gh-96764).
WAIT_FOR_FIXED_IN = (3, 12)
# Seconds between the cancels of an operation that may have lost one.
CANCEL_AGAIN_AFTER = 0.2


def wait_for_loses_cancel(version_info: tuple[int, ...] | None = None) -> bool:
    """Whether ``asyncio.wait_for`` can lose a cancel (gh-86296) on this Python (or on
    ``version_info``): before 3.12."""
    version = tuple(sys.version_info if version_info is None else version_info)
    return version[:2] < WAIT_FOR_FIXED_IN


def cancel_until_done(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future, abandoned: Callable[[], bool]
) -> None:
    """Cancel ``future`` again every ``CANCEL_AGAIN_AFTER`` seconds until it ends, or until
    ``abandoned()`` turns false (someone waits for it again); ``future`` was just cancelled
    once and nobody waits for it. A no-op on Python 3.12 and later.

    Python 3.11 (gh-86296): a cancel that lands as redis-py's ``wait_for`` around a
    send completes is lost, and channels-redis's ``receive()`` then goes on waiting
    for messages for ever. A cancel that lands while it waits for Redis is not
    lost, so cancelling again ends it. Without this, the hub's receive outlives a
    stopped hub, and an event loop closing under it (a test's, a server's at
    shutdown) waits for that task for ever.
    """
    if wait_for_loses_cancel():
        loop.call_later(CANCEL_AGAIN_AFTER, _cancel_again, loop, future, abandoned)


def _cancel_again(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future, abandoned: Callable[[], bool]
) -> None:
    if future.done() or not abandoned():
        return
    future.cancel()
    loop.call_later(CANCEL_AGAIN_AFTER, _cancel_again, loop, future, abandoned)


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and return once it has ended, whatever it ended with.

    Python 3.11 (gh-86296): while it runs on, it is cancelled again every
    ``CANCEL_AGAIN_AFTER`` seconds; a cancel that lands while it waits for Redis
    is not lost. Elsewhere this is ``task.cancel()`` and a wait. Without it, a
    consumer closing while channels-redis's ``receive()`` on its channel lost
    the cancel waits for that receive for ever (Channels' ``await_many_dispatch``
    does), and so does an event loop closing under it. What the task ended with
    is taken and dropped: a receive cancelled on its way out may give back an
    error instead (redis/redis-py#2717, :mod:`.redis_py`), which is no failure of
    the connection that is ending.
    """
    task.cancel()
    again = CANCEL_AGAIN_AFTER if wait_for_loses_cancel() else None
    while not task.done():
        await asyncio.wait((task,), timeout=again)
        if not task.done():
            task.cancel()
    if not task.cancelled():
        task.exception()
