"""redis-py (under channels-redis): a cancel that comes back as another outcome.

A task cancelled while channels-redis talks to Redis may see something other
than ``CancelledError``: a ``ConnectionError`` (redis-py answers a cancel that
lands while it reads a reply by closing the connection; reported as
redis/redis-py#2717, "Redis pubsub task cancellation raises ConnectionError",
redis-py 4.5.4) or a normal reply (Python 3.11's ``asyncio.wait_for``, under
which redis-py sends each command, losing the cancel: CPython gh-86296, see
:mod:`.cpython`).
"""

from __future__ import annotations

import asyncio


def raise_if_cancelling() -> None:
    """Raise ``CancelledError`` if the current task was asked to cancel and is still
    running (the layer turned the cancel into an error or a reply).

    redis/redis-py#2717 (closed upstream) and, on Python 3.11, CPython gh-86296.
    Not gated on a version: no redis-py release is known to give every cancel back
    as such, and the check only acts on a task already asked to cancel, so it
    costs nothing where no library hides one. Without it, a loop that retries
    after an error (or goes on after a reply) keeps a cancelled task alive for
    ever, and an event loop closing at shutdown waits on it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
