"""Which keys a stream's changes can affect, and which of them the changed rows settle.

- :func:`affected_pages`: a page is evaluated again only if a changed row may
  be in its queryset before or after the change, or was on the page it last
  showed (:mod:`.matching`).
- :func:`fetch`: the changed rows, once, with their current values.
- :func:`settle`: where a key's predicate decides from those values whether
  the row is in its queryset (and, for a page ordered by primary key, the row
  stays where it was), the key's new state without a query: the fresh row, a
  delete, or its last page with the row replaced; else :data:`QUERY`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from django.db import models

from syncbind._live.changes import DELETE
from syncbind._live.keys import INSTANCE
from syncbind._live.matching import ABSENT, SAME, matchable_fields, may_contain
from syncbind._reads import execution

if TYPE_CHECKING:
    from syncbind._live.fanout import Change, Job
    from syncbind._live.hub import Hub
    from syncbind._live.keys import KeyState

# More changed rows than this in one message: every page of the stream is evaluated
# rather than each matched against each row.
MATCH_LIMIT = 64
# Rows whose last announced values a hub keeps per stream (see may_affect).
RECENT_ROWS = 10_000


def settles_exactly(state: KeyState) -> bool:
    read = state.read
    return read is not None and read.shareable and state.predicate is not None


def template(row_jobs: list[tuple[KeyState, Any]], pages: list[KeyState]) -> Any:
    """The read whose row shape the changed rows are fetched in (None: values only)."""
    for state, _op in row_jobs:
        if settles_exactly(state):
            return state.read
    for state in pages:
        if settles_exactly(state) and state.read.ordered_by_pk:
            return state.read
    return None


def fetch(
    model: type[models.Model], pks: list[Any], template: Any
) -> dict[Any, tuple[Any, dict[str, Any]]]:
    """``{pk: (instance or None, matchable values)}`` of the rows as they are now."""
    names = tuple(matchable_fields(model))
    if template is None:
        pk_name = model._meta.pk.attname
        rows = model._base_manager.filter(pk__in=pks).values(pk_name, *names)
        return {row[pk_name]: (None, row) for row in rows}
    found = execution.fetch_rows(template, pks)
    return {
        pk: (obj, {name: obj.__dict__.get(name) for name in names}) for pk, obj in found.items()
    }


def affected_pages(
    hub: Hub, stream: str, changes: list[Change], pages: list[KeyState]
) -> list[KeyState]:
    if len(changes) > MATCH_LIMIT:
        return pages
    recent = hub.recent_rows(stream)
    affected = [
        state
        for state in pages
        if state.predicate is None or any(may_affect(state, c, recent) for c in changes)
    ]
    for change in changes:
        recent.pop(change.pk, None)
        if isinstance(change.after, dict):
            recent[change.pk] = change.after
    while len(recent) > RECENT_ROWS:
        recent.popitem(last=False)
    return affected


def may_affect(state: KeyState, change: Change, recent: OrderedDict) -> bool:
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


QUERY = object()  # the key's new state needs its read executed


def settle(job: Job, changes: list[Change] | None, fresh: dict, template: Any) -> Any:
    """The key's new state when the fetched rows decide it, else QUERY.

    A row key: the row, or None (deleted, or out of the key's queryset). A page
    key ordered by primary key, all of whose changed rows stay in its queryset
    and on it: its last page with those rows replaced.
    """
    state, op, _subs = job
    if state.key.kind == INSTANCE and op == DELETE:
        return None
    if changes is None or not settles_exactly(state):
        return QUERY
    read = state.read
    if template is None or read.row_shape != template.row_shape:
        return QUERY
    predicate = state.predicate
    assert predicate is not None  # settles_exactly
    if state.key.kind == INSTANCE:
        found = fresh.get(state.key.pk)
        if found is None:
            return None  # gone
        verdict = predicate(found[1])
        if verdict is None:
            return QUERY
        return found[0] if verdict else None
    if state.page is None or not read.ordered_by_pk or not state.binding_class.get_compiled_reads():
        return QUERY
    count, shown, pks = state.page
    replaced: dict[int, Any] = {}
    for change in changes:
        on_page = change.pk in pks
        found = fresh.get(change.pk) if change.op != DELETE else None
        if found is None:
            if on_page or change.op != DELETE or may_contain(predicate, change.before, ABSENT):
                return QUERY
            continue
        verdict = predicate(found[1])
        if on_page and verdict is True:
            replaced[pks.index(change.pk)] = found[0]
        elif on_page or verdict is not False or may_contain(predicate, change.before, ABSENT):
            return QUERY
    return InPlace(count, shown, pks, replaced)


class InPlace:
    """A page's last state with some of its rows replaced by fresh instances."""

    __slots__ = ("count", "rows", "pks", "replaced")

    def __init__(self, count: int, shown: list[Any], pks: list[Any], replaced: dict) -> None:
        self.count, self.rows, self.pks, self.replaced = count, shown, pks, replaced
