"""channels-redis: the bookkeeping of its receive clean-up locks (private state of 4.x).

``RedisChannelLayer.receive_single`` takes a lock per channel
(``receive_clean_locks``, a ``ChannelLock``) and holds it until the message it
read is cleaned from its backup queue. ``ChannelLock.acquire`` counts a waiter
before it waits for the lock, and a cancel that lands in that wait is never
uncounted, so channels-redis never deletes that lock; the lock stays bound to
the event loop it was waited on in. Reported as django/channels_redis#313
("CancelledError ... acquiring lock", open; seen since 3.2, still so in 4.3).
"""

from __future__ import annotations

from typing import Any

from syncbind._compat import installed_version

DISTRIBUTION = "channels-redis"
# The major version whose private state (ChannelLock.locks and wait_counts,
# receive_count, receive_cleaners, wait_received) this module was checked against.
CHECKED_MAJOR = 4


def clean_locks_leak() -> bool:
    """Whether the installed channels-redis is one whose clean-up lock bookkeeping leaks
    on a cancel and is shaped as this module expects: 4.x (no fixed release is known)."""
    version = installed_version(DISTRIBUTION)
    return version is not None and version[0] == CHECKED_MAJOR


async def prepare_receive(layer: Any) -> None:
    """Before a receive on ``layer``: wait for channels-redis's clean-ups, then drop the
    clean-up locks it left behind. A no-op on other layers and on a channels-redis
    other than 4.x.

    django/channels_redis#313, channels-redis 3.2 to 4.3 (the latest checked). The
    layer waits for each message's clean-up before it reads the next (also while it
    skips messages for another of the process's channels); a cancel that lands in
    that wait leaves the lock behind, bound to that event loop, and any later
    receive that has to wait for it in another loop fails ("is bound to a different
    event loop"): where a process runs event loops one after another (a test suite,
    one loop per test) the hub stops receiving. So the hub waits for the clean-ups
    itself, where a cancel is harmless, and when nothing in the process is
    receiving or cleaning up, drops what was left, as channels-redis does itself
    when a lock is released with no one waiting.
    """
    wait_received = getattr(layer, "wait_received", None)
    if wait_received is None or not clean_locks_leak():
        return
    await wait_received()
    drop_stale_clean_locks(layer)


def drop_stale_clean_locks(layer: Any) -> None:
    """Drop ``layer``'s per-channel clean-up locks when nothing in the process receives
    or cleans up (so none is held or waited for); left alone if its private state is
    not shaped as in channels-redis 4.x."""
    clean_locks = getattr(layer, "receive_clean_locks", None)
    locks = getattr(clean_locks, "locks", None)
    counts = getattr(clean_locks, "wait_counts", None)
    if not isinstance(locks, dict) or not isinstance(counts, dict):
        return
    if getattr(layer, "receive_count", None) != 0 or getattr(layer, "receive_cleaners", True):
        return
    for key, lock in list(locks.items()):
        if not lock.locked():
            del locks[key]
            counts.pop(key, None)
