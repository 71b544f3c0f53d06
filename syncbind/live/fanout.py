"""From one stream's changes to pushes: which keys, evaluated how, sent to whom.

1. **Which keys.** Row subscriptions of the changed primary keys; page
   subscriptions that the change may affect (:mod:`.matching`: the row may be
   in the page's queryset before or after the change, or was on what it last
   showed). Other pages are not evaluated at all.
2. **Evaluated how.** Each key once, whatever the number of its subscribers.
   Keys whose reads have one shape are evaluated together, ``LIVE_BATCH_SIZE``
   per statement (:func:`syncbind.reads.execute`), in the worker pool, using
   at most half of its threads so that requests keep the rest. A row state
   is serialized once however many keys show it.
3. **Sent to whom.** Each subscriber's own permission classes (and object
   permissions, for a row) are checked before each push; a refused push sends
   nothing. A subscriber receives a frame only when it differs from the last
   one it received.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from .. import protocol, reads
from ..exceptions import NotFound, SyncbindError
from ..executor import run_in_pool
from ..registry import registry
from ..settings import api_settings
from .changes import DELETE, decode_values
from .keys import INSTANCE
from .matching import ABSENT, SAME, UNKNOWN, matchable_fields, may_contain
from .subscriptions import DELETED, FirstReply, Subscription

if TYPE_CHECKING:
    from .hub import Hub, KeyState

logger = logging.getLogger("syncbind.live")

# More changed rows than this in one message: every page of the stream is evaluated
# rather than each matched against each row.
MATCH_LIMIT = 64
# Rows whose last announced values a hub keeps per stream (see _may_affect).
RECENT_ROWS = 10_000


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
    if changes is not None and pages:
        pages = await _affected_pages(hub, stream, model, changes, pages)
    jobs = [job for job in row_jobs if _needs_push(job)] + [(state, None) for state in pages]
    if not jobs:
        return
    with hub.lock:
        jobs = [(state, op, list(state.subs)) for state, op in jobs if state.subs]
    semaphore = _semaphore(hub)

    async def run(batch: list[tuple[KeyState, Any, list[Subscription]]]) -> list[tuple]:
        async with semaphore:
            return await run_in_pool(evaluate, batch)

    results = await asyncio.gather(*(run(batch) for batch in plan(jobs)), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            logger.error("syncbind failed to evaluate subscriptions", exc_info=result)
            continue
        for sub, frame, last in result:
            if sub.active:
                sub.last = last
                await sub.owner.push(frame)


def _needs_push(job: tuple[KeyState, Any]) -> bool:
    state, op = job
    # With post_save_retrieve = False, row subscribers are told of deletes only.
    return op == DELETE or state.binding_class.post_save_retrieve


def _semaphore(hub: Hub) -> asyncio.Semaphore:
    if hub.evaluations is None:
        hub.evaluations = asyncio.Semaphore(max(1, api_settings.THREAD_POOL_SIZE // 2))
    return hub.evaluations


async def _affected_pages(
    hub: Hub, stream: str, model: Any, changes: list[Change], pages: list[KeyState]
) -> list[KeyState]:
    if len(changes) > MATCH_LIMIT:
        return pages
    names = tuple(matchable_fields(model))
    unknown = [c.pk for c in changes if c.after is UNKNOWN]
    if unknown:
        found = await run_in_pool(_current_values, model, unknown, names)
        for change in changes:
            if change.after is UNKNOWN:
                change.after = found.get(change.pk, ABSENT)
    recent = hub.recent.setdefault(stream, OrderedDict())
    affected = []
    for state in pages:
        if state.predicate is None or any(_may_affect(state, c, recent) for c in changes):
            affected.append(state)
    for change in changes:
        recent.pop(change.pk, None)
        if isinstance(change.after, dict):
            recent[change.pk] = change.after
    while len(recent) > RECENT_ROWS:
        recent.popitem(last=False)
    return affected


def _may_affect(state: KeyState, change: Change, recent: OrderedDict) -> bool:
    if change.pk in state.pks:
        return True
    assert state.predicate is not None
    if may_contain(state.predicate, change.before, change.after):
        return True
    # The writer's idea of the row before its change may be older than the last change
    # announced here (it loaded the row before another process saved it): test that too.
    last = recent.get(change.pk)
    before = change.after if change.before is SAME else change.before
    return last is not None and last != before and may_contain(state.predicate, last, ABSENT)


def _current_values(model: Any, pks: list[Any], names: tuple[str, ...]) -> dict[Any, Any]:
    pk_name = model._meta.pk.attname
    rows = model._base_manager.filter(pk__in=pks).values(pk_name, *names)
    return {row[pk_name]: row for row in rows}


def plan(jobs: list[tuple[KeyState, Any, list[Subscription]]]) -> list[list[tuple]]:
    """Jobs in batches: each batch is one statement's worth of reads of one shape."""
    size = max(1, api_settings.LIVE_BATCH_SIZE)
    by_shape: dict[Any, list[tuple]] = {}
    alone: list[list[tuple]] = []
    unread: list[tuple] = []  # deleted rows: nothing to read
    for job in jobs:
        state, op, _subs = job
        if state.key.kind == INSTANCE and op == DELETE:
            unread.append(job)
        elif state.read is None:
            alone.append([job])
        else:
            by_shape.setdefault(state.read.shape, []).append(job)
    batches = [unread, *alone] if unread else alone
    for group in by_shape.values():
        batches.extend(group[start : start + size] for start in range(0, len(group), size))
    return batches


def evaluate(batch: list[tuple[KeyState, Any, list[Subscription]]]) -> list[tuple]:
    """Evaluate a batch of keys (worker thread): ``(subscription, frame, last)`` to send."""
    to_read = [
        state.read
        for state, op, _subs in batch
        if state.read is not None and not (state.key.kind == INSTANCE and op == DELETE)
    ]
    outcomes = iter(reads.execute(to_read, api_settings.LIVE_BATCH_SIZE) if to_read else ())
    cache: dict[Any, Any] = {}
    frames: list[tuple] = []
    for state, op, subs in batch:
        if state.key.kind == INSTANCE and op == DELETE:
            outcome: Any = None
        elif state.read is not None:
            outcome = next(outcomes)
        else:
            outcome = _evaluate_with_binding(state, subs)
            if outcome is _REFUSED:
                continue
        frames.extend(_frames(state, subs, outcome, cache))
    return frames


_REFUSED = object()


def _evaluate_with_binding(state: KeyState, subs: list[Subscription]) -> Any:
    """A key the reads cannot compile: its binding's own get_object()/get_page()."""
    first = next((sub for sub in subs if sub.active), None)
    if first is None:
        return _REFUSED
    binding = state.binding_class(request=first.request, action=first.action)
    try:
        if state.key.kind == INSTANCE:
            return binding.get_object()
        return binding.get_page()
    except NotFound:
        return None
    except SyncbindError:
        return _REFUSED


def _frame(event: str, data_text: str) -> str:
    return f'{{"event":{protocol.encode(event)},"data":{data_text}}}'


def _frames(state: KeyState, subs: list[Subscription], outcome: Any, cache: dict) -> list[tuple]:
    key = state.key
    binding_class = state.binding_class
    first = subs[0]
    binding = binding_class(request=first.request, action=first.action)
    data_text = None
    if key.kind == INSTANCE:
        obj = outcome
        if obj is not None:
            data_text = _encoded(cache, (binding_class, key.scope, id(obj)), binding, obj)
    elif state.read is None:
        data_text = protocol.encode(outcome)
    else:
        data_text = _page_text(cache, state, binding, outcome)
    out: list[tuple] = []
    decoded = None  # data_text decoded once, for subscribers still holding a FirstReply
    for sub in subs:
        if not sub.active:
            continue
        request = sub.request
        connection = request.connection
        if connection is not None and connection.refresh():
            if not connection.valid:
                connection.revoke_soon()
                continue
            # The user was read again: its subscriptions are compiled again, and the
            # ones whose reads changed moved; those are evaluated on their own.
            for moved in connection.subscriptions.rekey():
                if moved.state is not None:
                    out.extend(_alone(moved))
            if not sub.active:
                continue
        if connection is not None and not connection.valid:
            continue
        checker = binding_class(request=request, action=sub.action)
        try:
            checker.check_permissions(request)
            if key.kind == INSTANCE and outcome is not None:
                checker.check_object_permissions(request, outcome)
        except SyncbindError:
            continue  # refused: nothing is sent, not even an id
        if key.kind == INSTANCE and outcome is None:
            if sub.last is not DELETED:
                delete = protocol.encode({"id": key.pk})
                out.append((sub, _frame(sub.delete_event, delete), DELETED))
            continue
        if isinstance(sub.last, FirstReply):
            if decoded is None:
                decoded = json.loads(data_text)
            if sub.last.data != decoded:
                out.append((sub, _frame(sub.event, data_text), data_text))
        elif sub.last != data_text:
            out.append((sub, _frame(sub.event, data_text), data_text))
    return out


def _alone(sub: Subscription) -> list[tuple]:
    state = sub.state
    assert state is not None
    if state.read is None:
        outcome = _evaluate_with_binding(state, [sub])
        if outcome is _REFUSED:
            return []
    else:
        outcome = reads.execute_one(state.read)
    return _frames(state, [sub], outcome, {})


def _encoded(cache: dict, cache_key: Any, binding: Any, obj: Any) -> str:
    text = cache.get(cache_key)
    if text is None:
        text = cache[cache_key] = protocol.encode(binding.get_serializer().serialize(obj))
    return text


def _page_text(cache: dict, state: KeyState, binding: Any, result: reads.PageResult) -> str:
    binding_class, scope = state.binding_class, state.key.scope
    read = state.read
    page_key = (
        "page",
        binding_class,
        scope,
        read.page,
        read.limit,
        result.count,
        tuple(id(obj) for obj in result.rows),
    )
    text = cache.get(page_key)
    if text is None:
        serializer = binding.get_serializer()

        def serialize_many(rows: list[Any]) -> list[Any]:
            out = []
            for obj in rows:
                row_key = ("row", binding_class, scope, id(obj))
                row = cache.get(row_key)
                if row is None:
                    row = cache[row_key] = serializer.serialize(obj)
                out.append(row)
            return out

        text = cache[page_key] = protocol.encode(binding.page_data(read, result, serialize_many))
    state.pks = {obj.pk for obj in result.rows}
    return text
