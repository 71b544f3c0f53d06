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
   per statement (:func:`syncbind.reads.execute`). Work runs in the worker
   pool, on at most half of its threads, so that requests keep the rest; a
   row state is serialized once however many keys show it.
3. **Sent to whom.** Each subscriber's own permission classes (and object
   permissions, for a row) are checked before each push; a refused push sends
   nothing. A subscriber receives a frame only when it differs from the last
   one it received.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from .. import protocol, reads
from ..exceptions import NotFound, SyncbindError
from ..executor import run_in_pool
from ..registry import registry
from ..settings import api_settings
from .binding import DEFAULT_READ
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
# Keys whose new state follows from the fetched rows, per worker task.
EXACT_CHUNK = 200

Job = tuple["KeyState", Any, list[Subscription]]


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
    row_jobs = [job for job in row_jobs if _needs_push(job)]
    if not row_jobs and not pages:
        return
    started = time.perf_counter()
    fresh: dict[Any, Any] = {}
    template = _template(row_jobs, pages) if changes is not None else None
    if changes is not None:
        saved = [c.pk for c in changes if c.op != DELETE]
        unknown = pages and any(c.after is UNKNOWN for c in changes if c.op != DELETE)
        if saved and (template is not None or unknown):
            fresh = await run_in_pool(_fetch, model, saved, template)
            for change in changes:
                if change.op != DELETE and (template is not None or change.after is UNKNOWN):
                    # What the table holds now is what counts, not what the writer believed.
                    change.after = fresh[change.pk][1] if change.pk in fresh else ABSENT
        if pages:
            pages = _affected_pages(hub, stream, changes, pages)
    jobs = [*row_jobs, *((state, None) for state in pages)]
    with hub.lock:
        jobs = [(state, op, list(state.subs)) for state, op in jobs if state.subs]
    exact: list[tuple[Job, Any]] = []
    queried: list[Job] = []
    for job in jobs:
        outcome = _exact(job, changes, fresh, template)
        if outcome is _QUERY:
            queried.append(job)
        else:
            exact.append((job, outcome))
    semaphore = _semaphore(hub)

    async def run(function: Any, work: Any) -> list[tuple]:
        async with semaphore:
            return await run_in_pool(function, work)

    batches = plan(queried)
    tasks = [run(evaluate, batch) for batch in batches]
    tasks += [
        run(settle_exact, exact[start : start + EXACT_CHUNK])
        for start in range(0, len(exact), EXACT_CHUNK)
    ]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    evaluated = time.perf_counter()
    pushed = 0
    for result in results:
        if isinstance(result, BaseException):
            logger.error("syncbind failed to evaluate subscriptions", exc_info=result)
            continue
        for sub, frame, last in result:
            if sub.active:
                sub.last = last
                await sub.owner.push(frame)
                pushed += 1
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "syncbind: %s: %d keys settled from %d fetched rows, %d evaluated in %d batches, "
            "in %.1f ms; %d pushes queued in %.1f ms",
            stream,
            len(exact),
            len(fresh),
            len(queried),
            len(batches),
            (evaluated - started) * 1000,
            pushed,
            (time.perf_counter() - evaluated) * 1000,
        )


def _needs_push(job: tuple[KeyState, Any]) -> bool:
    state, op = job
    # With post_save_retrieve = False, row subscribers are told of deletes only.
    return op == DELETE or state.binding_class.post_save_retrieve


def _semaphore(hub: Hub) -> asyncio.Semaphore:
    if hub.evaluations is None:
        hub.evaluations = asyncio.Semaphore(max(1, api_settings.THREAD_POOL_SIZE // 2))
    return hub.evaluations


# -- the changed rows, fetched once -------------------------------------------------


def _settles_exactly(state: KeyState) -> bool:
    read = state.read
    return read is not None and read.shareable and state.predicate is not None


def _template(row_jobs: list[tuple[KeyState, Any]], pages: list[KeyState]) -> Any:
    """The read whose row shape the changed rows are fetched in (None: values only)."""
    for state, _op in row_jobs:
        if _settles_exactly(state):
            return state.read
    for state in pages:
        if _settles_exactly(state) and state.read.ordered_by_pk:
            return state.read
    return None


def _fetch(model: Any, pks: list[Any], template: Any) -> dict[Any, tuple[Any, dict[str, Any]]]:
    """``{pk: (instance or None, matchable values)}`` of the rows as they are now."""
    names = tuple(matchable_fields(model))
    if template is None:
        pk_name = model._meta.pk.attname
        rows = model._base_manager.filter(pk__in=pks).values(pk_name, *names)
        return {row[pk_name]: (None, row) for row in rows}
    found = reads.fetch_rows(template, pks)
    return {
        pk: (obj, {name: obj.__dict__.get(name) for name in names}) for pk, obj in found.items()
    }


def _affected_pages(
    hub: Hub, stream: str, changes: list[Change], pages: list[KeyState]
) -> list[KeyState]:
    if len(changes) > MATCH_LIMIT:
        return pages
    recent = hub.recent.setdefault(stream, OrderedDict())
    affected = [
        state
        for state in pages
        if state.predicate is None or any(_may_affect(state, c, recent) for c in changes)
    ]
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


_QUERY = object()  # the key's new state needs its read executed


def _exact(job: Job, changes: list[Change] | None, fresh: dict, template: Any) -> Any:
    """The key's new state when the fetched rows decide it, else _QUERY.

    A row key: the row, or None (deleted, or out of the key's queryset). A page
    key ordered by primary key, all of whose changed rows stay in its queryset
    and on it: its last page with those rows replaced.
    """
    state, op, _subs = job
    if state.key.kind == INSTANCE and op == DELETE:
        return None
    if changes is None or not _settles_exactly(state):
        return _QUERY
    read = state.read
    if template is None or read.row_shape != template.row_shape:
        return _QUERY
    predicate = state.predicate
    if state.key.kind == INSTANCE:
        found = fresh.get(state.key.pk)
        if found is None:
            return None  # gone
        verdict = predicate(found[1])
        if verdict is None:
            return _QUERY
        return found[0] if verdict else None
    if state.page is None or not read.ordered_by_pk or not _default_page_data(state):
        return _QUERY
    count, rows, pks = state.page
    replaced: dict[int, Any] = {}
    for change in changes:
        on_page = change.pk in pks
        found = fresh.get(change.pk) if change.op != DELETE else None
        if found is None:
            if on_page or change.op != DELETE or may_contain(predicate, change.before, ABSENT):
                return _QUERY
            continue
        verdict = predicate(found[1])
        if on_page and verdict is True:
            replaced[pks.index(change.pk)] = found[0]
        elif on_page or verdict is not False or may_contain(predicate, change.before, ABSENT):
            return _QUERY
    return _InPlace(count, rows, pks, replaced)


def _default_page_data(state: KeyState) -> bool:
    return getattr(state.binding_class.page_data, DEFAULT_READ, False)


class _InPlace:
    """A page's last state with some of its rows replaced by fresh instances."""

    __slots__ = ("count", "rows", "pks", "replaced")

    def __init__(self, count: int, rows: list[Any], pks: list[Any], replaced: dict) -> None:
        self.count, self.rows, self.pks, self.replaced = count, rows, pks, replaced


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


def evaluate(batch: list[Job]) -> list[tuple]:
    """Evaluate a batch of keys by their reads (worker thread): ``(subscription, frame,
    last)`` to send."""
    to_read = [state.read for state, _op, _subs in batch if state.read is not None]
    outcomes = iter(reads.execute(to_read, api_settings.LIVE_BATCH_SIZE) if to_read else ())
    cache: dict[Any, Any] = {}
    frames: list[tuple] = []
    for state, _op, subs in batch:
        if state.read is not None:
            outcome = next(outcomes)
        else:
            outcome = _evaluate_with_binding(state, subs)
            if outcome is _REFUSED:
                continue
        frames.extend(_frames(state, subs, outcome, cache))
    return frames


def settle_exact(work: list[tuple[Job, Any]]) -> list[tuple]:
    """Frames for keys whose new state the fetched rows decided (worker thread)."""
    cache: dict[Any, Any] = {}
    frames: list[tuple] = []
    for (state, _op, subs), outcome in work:
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
    data_text = data = None
    if key.kind == INSTANCE:
        obj = outcome
        if obj is not None:
            data = _row(cache, state, binding, obj)
            data_text = _encoded(cache, data)
    elif state.read is None:
        data = outcome
        data_text = protocol.encode(outcome)
    else:
        data, data_text = _page(cache, state, binding, outcome)
    out: list[tuple] = []
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
            # The first reply is kept as data: compared as data (JSON-safe on both sides).
            if sub.last.data != data:
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


def _row(cache: dict, state: KeyState, binding: Any, obj: Any) -> Any:
    row_key = ("row", state.binding_class, state.key.scope, id(obj))
    row = cache.get(row_key)
    if row is None:
        row = cache[row_key] = binding.get_serializer().serialize(obj)
    return row


def _encoded(cache: dict, data: Any) -> str:
    text_key = ("text", id(data))
    text = cache.get(text_key)
    if text is None:
        text = cache[text_key] = protocol.encode(data)
    return text


def _page(cache: dict, state: KeyState, binding: Any, outcome: Any) -> tuple[Any, str]:
    """The page's new data and its text; records it as the key's last page."""
    read = state.read
    if isinstance(outcome, _InPlace):
        rows = list(outcome.rows)
        for index, obj in outcome.replaced.items():
            rows[index] = _row(cache, state, binding, obj)
        count, pks = outcome.count, outcome.pks
        data = {"page": read.page, "limit": read.limit, "count": count, "rows": rows}
    else:
        pks = [obj.pk for obj in outcome.rows]
        data = binding.page_data(
            read, outcome, lambda objs: [_row(cache, state, binding, obj) for obj in objs]
        )
        count, rows = outcome.count, data["rows"]
    # Many keys often show the same page (users reading one list): equal pages are
    # found by comparing their data, which is cheaper than encoding each.
    same = cache.setdefault(("pages", state.binding_class, state.key.scope, count, tuple(pks)), [])
    for known, known_text in same:
        if known == data:
            data, text = known, known_text
            break
    else:
        text = protocol.encode(data)
        same.append((data, text))
    state.page = (count, data["rows"], pks)
    state.pks = set(pks)
    state.version += 1
    return data, text
