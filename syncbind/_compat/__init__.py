"""Workarounds for other libraries' bugs and private state, kept apart from syncbind's own code.

One module per library. Each workaround is a small function whose docstring
names the upstream report, the versions that need it and what goes wrong
without it; it is gated on those versions (or on the private state being
shaped as in them), so it goes away where the library is fixed and leaves
alone a version whose internals it has not been checked against. Call sites
make short calls into these modules and keep no library internals of their own.

- :mod:`.cpython`: ``asyncio.wait_for`` losing a cancel (Python 3.11).
- :mod:`.redis_py`: a cancel that redis-py hides behind another outcome.
- :mod:`.channels_redis`: the receive clean-up lock bookkeeping of channels-redis 4.x.
- :mod:`.asgiref`: the event loop of a ``SyncToAsync`` worker thread, and its
  thread-sensitive executor (asgiref has no public way to get either); making a
  test's thread the one a loop's sync calls run on (``SyncClient``).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import metadata


@cache
def installed_version(distribution: str) -> tuple[int, ...] | None:
    """The release numbers of ``distribution`` as installed (``"4.3.0"``: ``(4, 3, 0)``),
    or None when it is not installed or its version does not start with numbers."""
    try:
        text = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
    found = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(part) for part in found.group().split(".")) if found else None
