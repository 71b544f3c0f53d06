"""What one transaction pushes to a connection goes out together, in one frame.

The change reader hands a hub the records of whole transactions at once (one
read of the change log, :mod:`syncbind._capture`), as one message per stream;
the hub processes those messages in separate lanes (:mod:`.lanes`), so the
pushes they cause would reach a client one by one, and a page could show
half of a transfer. Instead, each read's messages carry its number, and the
pushes they cause are staged per connection until every message of the read
is processed: one frame goes out as it is, several as one frame::

    {"event": "syncbind.batch", "data": [<frame>, <frame>, ...]}

which a client applies at once (syncbind.js renders them in one go; the test
client hands them out one by one). When a lane merges the messages of two
reads, their pushes go out together too. Pushes a connection's refresh job
holds (:meth:`.hub.Hub.holds`) are sent by that job, after the batch.
"""

from __future__ import annotations

import contextvars
import itertools
from collections import Counter
from typing import Any

BATCH_EVENT = "syncbind.batch"

# The read (its group's number) whose message the running task is processing.
current: contextvars.ContextVar[int | None] = contextvars.ContextVar("syncbind_batch", default=None)


def batch_frame(frames: list[str]) -> str:
    """One frame carrying ``frames`` (each already a frame's text), in order."""
    return f'{{"event":"{BATCH_EVENT}","data":[{",".join(frames)}]}}'


class Transactions:
    """A hub's reads in flight and the pushes staged for them (on the hub's loop).

    A connection's staged frames wait only for the read's messages of streams that
    connection follows: a slow evaluation of one stream holds up the pushes of no
    one who does not follow it (``lanes.py``), even within one transaction.
    """

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        # Reads merged together (union-find): read -> the read it joined; per root,
        # its messages not processed yet, by stream, and the frames staged per
        # connection (a ConnectionSubscriptions).
        self.parent: dict[int, int] = {}
        self.waiting: dict[int, Counter[Any]] = {}
        self.staged: dict[int, dict[Any, list[str]]] = {}

    def open(self, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Number one read's messages (one per stream it wrote: even one message can
        push a connection several frames, a row's and a page's)."""
        if not found:
            return found
        number = next(self._numbers)
        self.waiting[number] = Counter(message.get("stream") for message in found)
        return [{**message, "batch": [number]} for message in found]

    def root(self, number: int) -> int:
        while self.parent.get(number, number) != number:
            number = self.parent[number]
        return number

    def begin(self, numbers: list[int]) -> int:
        """A (merged) message of these reads is processed: they go out together."""
        root = self.root(numbers[0])
        for number in numbers[1:]:
            other = self.root(number)
            if other == root:
                continue
            self.parent[other] = root
            self.waiting[root].update(self.waiting.pop(other))
            for owner, frames in self.staged.pop(other, {}).items():
                self.staged.setdefault(root, {}).setdefault(owner, []).extend(frames)
        return root

    def stage(self, number: int, owner: Any, frame: str) -> bool:
        """Keep ``frame`` for ``owner`` until the read's group is done; False when that
        group was sent already (the caller pushes it alone)."""
        root = self.root(number)
        if root not in self.waiting:
            return False
        self.staged.setdefault(root, {}).setdefault(owner, []).append(frame)
        return True

    async def done(self, numbers: list[int], stream: Any) -> None:
        """A message of ``stream`` of these reads is processed: send each connection what
        was staged for it once no message of a stream it follows is left."""
        root = self.root(numbers[0])
        waiting = self.waiting[root]
        waiting[stream] -= len(numbers)
        left = {name for name, count in waiting.items() if count > 0}
        staged = self.staged.get(root, {})
        for owner in [owner for owner in staged if left.isdisjoint(owner.streams())]:
            frames = staged.pop(owner)
            await owner.push(frames[0] if len(frames) == 1 else batch_frame(frames))
        if not left:
            del self.waiting[root]
            self.staged.pop(root, None)
            for number in [n for n, parent in self.parent.items() if self.root(n) == root]:
                del self.parent[number]
