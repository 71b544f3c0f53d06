"""From one stream's changes to pushes: which keys, evaluated how, sent to whom.

1. **Which keys.** Row subscriptions of the changed primary keys; page
   subscriptions that the change may affect (:mod:`.matching`: the row may be
   in the page's queryset before or after the change, or was on what it last
   showed). Other pages are not evaluated at all.
2. **Evaluated how.** The changed rows are fetched once, with their current
   values. Where a key's predicate decides, from those values, whether the
   row is in its queryset (and, for a page ordered by primary key, the row
   stays where it was), the key's new state follows without a query: the
   fresh row, a delete, or its last page with the row replaced. Every other
   key is evaluated by its read, once whatever the number of its
   subscribers; keys whose reads have one shape together, ``LIVE_BATCH_SIZE``
   per statement (:func:`syncbind._reads.execution.execute`). Work runs in the worker
   pool, on at most half of its threads, so that requests keep the rest, and
   one stream on all of them but one (:class:`.lanes.FairSlots`); a row state
   is serialized once however many keys show it.
3. **Sent to whom.** Each subscriber's own permission classes (and object
   permissions, for a row) are checked before each push; a refused push sends
   nothing. A subscriber receives a frame only when it differs from the last
   one it received.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from syncbind import _capture as capture
from syncbind._bindings.registry import registry
from syncbind._live import affected, delivery, transactions
from syncbind._live.changes import DELETE, decode_values
from syncbind._live.keys import INSTANCE
from syncbind._live.matching import ABSENT, UNKNOWN
from syncbind._live.subscriptions import DELETED, Subscription
from syncbind._reads import execution
from syncbind._workers.executor import run_in_pool
from syncbind.exceptions import SyncbindError
from syncbind.settings import api_settings

if TYPE_CHECKING:
    from syncbind._live.hub import Hub
    from syncbind._live.keys import KeyState

logger = logging.getLogger("syncbind.live")

# Keys whose new state follows from the fetched rows, per worker task.
EXACT_CHUNK = 200

Job = tuple["KeyState", Any, list[Subscription]]
T = TypeVar("T")


class Change:
    __slots__ = ("pk", "op", "before", "after")

    def __init__(self, pk: Any, op: str, before: Any, after: Any) -> None:
        self.pk, self.op, self.before, self.after = pk, op, before, after


async def process(hub: Hub, stream: Any, wire_changes: Any) -> None:
    """Evaluate every local key the changes may affect, and push."""
    try:
        binding_class = registry.get(stream)
    except SyncbindError:
        return
    model = binding_class.get_model()
    # Before anything is read: the states read below reflect at least this position.
    version = capture.version_for(model)
    pk_field = model._meta.pk
    changes = None
    if wire_changes is not None:
        changes = [
            Change(pk_field.to_python(pk), op, decode_values(before), decode_values(after))
            for pk, op, before, after in wire_changes
        ]
    with hub.lock:
        on_rows = hub.rows.get(stream, {})
        if changes is None:
            row_jobs = [(state, "save") for states in on_rows.values() for state in states]
        else:
            row_jobs = [(state, c.op) for c in changes for state in on_rows.get(c.pk, ())]
        pages = list(hub.pages.get(stream, ()))
    row_jobs = [job for job in row_jobs if _needs_push(job)]
    if not row_jobs and not pages:
        return
    started = time.perf_counter()
    fresh: dict[Any, Any] = {}
    template = affected.template(row_jobs, pages) if changes is not None else None
    if changes is not None:
        saved = [c.pk for c in changes if c.op != DELETE]
        unknown = pages and any(c.after is UNKNOWN for c in changes if c.op != DELETE)
        if saved and (template is not None or unknown):
            fresh = await run_in_pool(affected.fetch, model, saved, template)
            for change in changes:
                if change.op != DELETE and (template is not None or change.after is UNKNOWN):
                    # What the table holds now is what counts, not what the writer believed.
                    change.after = fresh[change.pk][1] if change.pk in fresh else ABSENT
        if pages:
            pages = affected.affected_pages(hub, stream, changes, pages)
    candidates = [*row_jobs, *((state, None) for state in pages)]
    with hub.lock:
        jobs = [(state, op, list(state.subs)) for state, op in candidates if state.subs]
    exact: list[tuple[Job, Any]] = []
    queried: list[Job] = []
    for job in jobs:
        outcome = affected.settle(job, changes, fresh, template)
        if outcome is affected.QUERY:
            queried.append(job)
        else:
            exact.append((job, outcome))
    batches, pushed, evaluated = await _evaluate_and_push(
        hub, ("stream", stream), exact, queried, version=version
    )
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "syncbind: %s: %d keys settled from %d fetched rows, %d evaluated in %d batches, "
            "in %.1f ms; %d pushes queued in %.1f ms",
            stream,
            len(exact),
            len(fresh),
            len(queried),
            batches,
            (evaluated - started) * 1000,
            pushed,
            (time.perf_counter() - evaluated) * 1000,
        )


async def reevaluate(hub: Hub, stream: str, states: Any) -> None:
    """Evaluate ``states`` (keys of ``stream``) again by their reads and push to each
    subscriber what differs from what it last received (keys subscribed while their
    stream's group was being joined: a change announced meanwhile did not reach this
    process). Row subscribers of a binding without ``post_save_retrieve`` are told of
    a delete only."""
    jobs: list[Job] = []
    with hub.lock:
        for state in states:
            # Only the subscribers whose first read may have missed a change.
            subs = [sub for sub in state.subs if sub.unjoined]
            if subs:
                jobs.append((state, None, subs))
    if jobs:
        version = capture.version_for(jobs[0][0].binding_class.get_model())
        await _evaluate_and_push(
            hub, ("stream", stream), [], jobs, keep=_reevaluated_push, version=version
        )


def _reevaluated_push(sub: Subscription, frame: str, last: Any) -> bool:
    state = sub.state
    if (
        state is not None
        and state.key.kind == INSTANCE
        and not state.binding_class.post_save_retrieve
        and last is not DELETED
    ):
        return False
    # Evaluated while the first reply was on its way: compared with that reply.
    return sub.catch_up_now(frame, last)


async def _evaluate_and_push(
    hub: Hub,
    lane: Any,
    exact: list[tuple[Job, Any]],
    queried: list[Job],
    keep: Any = None,
    version: str | None = None,
) -> tuple[int, int, float]:
    """Evaluate the jobs in the worker pool, within ``lane``'s share of the evaluation
    budget, and push their frames (carrying ``version``, the change-log position read
    before them): ``(batches, pushes, time evaluated)``."""
    batches = plan(queried)
    tasks = [in_slot(hub, lane, evaluate, batch, version) for batch in batches]
    tasks += [
        in_slot(hub, lane, settle_exact, exact[start : start + EXACT_CHUNK], version)
        for start in range(0, len(exact), EXACT_CHUNK)
    ]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    evaluated = time.perf_counter()
    pushed = 0
    for result in results:
        if isinstance(result, BaseException):
            logger.error("syncbind failed to evaluate subscriptions", exc_info=result)
            continue
        pushed += await send(result, keep)
    return len(batches), pushed, evaluated


def _needs_push(job: tuple[KeyState, Any]) -> bool:
    state, op = job
    # With post_save_retrieve = False, row subscribers are told of deletes only.
    return op == DELETE or state.binding_class.post_save_retrieve


async def send(frames: list[tuple], keep: Any = None) -> int:
    """Push evaluated frames, ``(subscription, frame, last)``, to the subscriptions still
    active (and, with ``keep``, that it keeps); returns how many went out."""
    pushed = 0
    for sub, frame, last in frames:
        if not sub.active or (keep is not None and not keep(sub, frame, last)):
            continue
        # A subscription whose first reply is still being read (a change committed
        # before it was read, and read from the change table after it subscribed): kept,
        # and sent after that reply only if it differs from it.
        if keep is None and not sub.catch_up_now(frame, last):
            continue
        sub.last = last
        sub.catch_up = None  # newer than what a join caught up on
        batch = transactions.current.get()
        if batch is None or not sub.owner.hub.transactions.stage(batch, sub.owner, frame):
            await sub.owner.push(frame)
        pushed += 1
    return pushed


async def in_slot(hub: Hub, lane: Any, function: Callable[..., T], *args: Any) -> T:
    """Run ``function`` in the worker pool within the evaluations' budget: half the
    pool's threads, shared fairly between lanes (:class:`.lanes.FairSlots`), so that
    requests keep the rest and no stream or user takes them all."""
    async with hub.evaluation_slots().slot(lane):
        return await run_in_pool(function, *args)


# -- evaluation ----------------------------------------------------------------------


def plan(jobs: list[Job]) -> list[list[Job]]:
    """Jobs in batches: each batch is one statement's worth of reads of one shape."""
    size = max(1, api_settings.LIVE_BATCH_SIZE)
    by_shape: dict[Any, list[Job]] = {}
    alone: list[list[Job]] = []
    for job in jobs:
        state = job[0]
        if state.read is None:
            alone.append([job])
        else:
            by_shape.setdefault(state.read.shape, []).append(job)
    batches = alone
    for group in by_shape.values():
        batches.extend(group[start : start + size] for start in range(0, len(group), size))
    return batches


def evaluate(batch: list[Job], version: str | None = None) -> list[tuple]:
    """Evaluate a batch of keys by their reads (worker thread): ``(subscription, frame,
    last)`` to send."""
    # Taken before the reads: a page kept meanwhile from a later read is newer (keys.py).
    tickets = {state: state.ticket() for state, _op, _subs in batch}
    to_read = [state.read for state, _op, _subs in batch if state.read is not None]
    outcomes = iter(execution.execute(to_read, api_settings.LIVE_BATCH_SIZE) if to_read else ())
    cache: dict[Any, Any] = {}
    out: list[tuple] = []
    for state, _op, subs in batch:
        if state.read is not None:
            outcome = next(outcomes)
        else:
            outcome = delivery.evaluate_with_binding(state, subs)
            if outcome is delivery.REFUSED:
                continue
        out.extend(
            delivery.frames_for(state, subs, outcome, cache, version=version, ticket=tickets[state])
        )
    return out


def settle_exact(work: list[tuple[Job, Any]], version: str | None = None) -> list[tuple]:
    """Frames for keys whose new state the fetched rows decided (worker thread)."""
    tickets = {state: state.ticket() for (state, _op, _subs), _outcome in work}
    cache: dict[Any, Any] = {}
    out: list[tuple] = []
    for (state, _op, subs), outcome in work:
        out.extend(
            delivery.frames_for(state, subs, outcome, cache, version=version, ticket=tickets[state])
        )
    return out
