"""What each subscriber of an evaluated key is sent: its checks, and the frame.

For each key, the new state is serialized once (and a row state once
however many keys show it); then, for each subscriber, its user and
credentials are checked again when due, its permission classes (and object
permissions, for a row), and a frame goes out only when it differs from the
last one that subscriber received (compared by digest: no subscriber keeps
the data it was sent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from syncbind._auth.decide import NO_ROW, permits
from syncbind._live import versions
from syncbind._live.affected import InPlace
from syncbind._live.keys import INSTANCE
from syncbind._live.subscriptions import DELETED, Subscription, digest
from syncbind._reads import execution
from syncbind._wire import protocol
from syncbind.exceptions import NotFound, SyncbindError

if TYPE_CHECKING:
    from syncbind._bindings.surface import Binding
    from syncbind._live.keys import KeyState


REFUSED = object()


def shaped_binding(state: KeyState, subs: list[Subscription]) -> Any:
    """A binding to serialize the key's state with, for all its subscribers: the first
    active subscriber's whose output still has the key's shape (a user read again in
    another thread may not, until its subscriptions are keyed again); None if none."""
    for sub in subs:
        if sub.active:
            binding = state.binding_class(request=sub.request, action=sub.action)
            if binding.get_serializer_identity() == state.key.shape:
                return binding
    return None


def evaluate_with_binding(state: KeyState, subs: list[Subscription]) -> Any:
    """A key the reads cannot compile: its binding's own get_object()/get_page()."""
    binding = shaped_binding(state, subs)
    if binding is None:
        return REFUSED
    try:
        if state.key.kind == INSTANCE:
            return binding.get_object()
        return binding.get_page()
    except NotFound:
        return None
    except SyncbindError:
        return REFUSED


def frame(event: str, data_text: str, version: str | None = None) -> str:
    """A push's text; ``version``: the change-log position its state reflects."""
    if version is None:
        return f'{{"event":{protocol.encode(event)},"data":{data_text}}}'
    encoded = protocol.encode(version)
    return f'{{"event":{protocol.encode(event)},"data":{data_text},"version":{encoded}}}'


def frames_for(
    state: KeyState,
    subs: list[Subscription],
    outcome: Any,
    cache: dict,
    refreshed: bool = False,
    version: str | None = None,
    ticket: int | None = None,
) -> list[tuple]:
    """The frames of a key's subscribers, ``(subscription, frame, last)`` (worker thread);
    ``ticket``: the key's ticket taken before ``outcome`` was read (:meth:`.keys.KeyState.ticket`).

    A subscriber whose connection is due for a user refresh is held: its
    connection's refresh job (:meth:`.hub.Hub.holds`) reads the user again and
    evaluates it alone (``refreshed``), so that no fan-out waits for one
    connection's refresh, and nothing is sent on permissions not yet re-read.
    """
    key = state.key
    binding_class = state.binding_class
    data_text: Any = None
    data: Any = None
    # A binding serializes rows (a deleted row, or a page from get_page(), needs none).
    serializes = outcome is not None if key.kind == INSTANCE else state.read is not None
    binding = shaped_binding(state, subs) if serializes else None
    if serializes and binding is None:
        return []  # every subscriber is about to move to another key
    if key.kind == INSTANCE:
        obj = outcome
        if obj is not None:
            assert binding is not None  # a row to serialize: made above
            data = row(cache, state, binding, obj)
            data_text = encoded(cache, data)
    elif state.read is None:
        data = outcome
        data_text = protocol.encode(outcome)
    else:
        assert binding is not None  # a compiled page to serialize: made above
        data, data_text = page(cache, state, binding, outcome, ticket)
    state_digest: bytes | None = None
    out: list[tuple] = []
    for sub in subs:
        if not sub.active:
            continue
        request = sub.request
        connection = request.connection
        if connection is not None and not refreshed and sub.owner.hub.holds(connection, sub):
            continue
        if connection is not None and not connection.valid:
            continue
        checker = binding_class(request=request, action=sub.action)
        if binding is not None and checker.get_serializer_identity() != key.shape:
            # Its output has another shape since it subscribed (a user saved is read
            # again at once): keyed again by the refresh job, never sent this one.
            if connection is not None and not refreshed:
                sub.owner.hub.holds(connection, sub, rekey=True)
            continue
        shown = outcome if key.kind == INSTANCE and outcome is not None else NO_ROW
        if not permits(checker, request, shown):
            continue  # refused: nothing is sent, not even an id
        if key.kind == INSTANCE and outcome is None:
            if sub.last is not DELETED:
                delete = protocol.encode({"id": key.pk})
                # Every row subscription names its delete event.
                signed = versions.sign(version, request.user, key)
                out.append((sub, frame(cast(str, sub.delete_event), delete, signed), DELETED))
            continue
        # What each subscriber last received is kept as the digest of its text.
        if state_digest is None:
            state_digest = digest(data_text)
        if sub.last != state_digest:
            signed = versions.sign(version, request.user, key)
            out.append((sub, frame(sub.event, data_text, signed), state_digest))
    return out


def read_alone(sub: Subscription) -> Any:
    """The current state of ``sub``'s key, read for it alone (worker thread): the
    outcome :func:`frames_for` takes, or REFUSED."""
    state = sub.state
    assert state is not None
    if state.read is None:
        return evaluate_with_binding(state, [sub])
    return execution.execute_one(state.read)


def for_alone(
    sub: Subscription, outcome: Any, version: str | None = None, ticket: int | None = None
) -> list[tuple]:
    """The frame of ``sub`` for an outcome of :func:`read_alone` (read after the change-log
    position ``version``, under the key's ``ticket``), decided on the user as its
    connection's refresh job last read it (worker thread)."""
    state = sub.state
    if outcome is REFUSED or state is None:
        return []
    return frames_for(state, [sub], outcome, {}, refreshed=True, version=version, ticket=ticket)


def row(cache: dict, state: KeyState, binding: Binding, obj: Any) -> Any:
    # Rows of one state are serialized once for every key whose output is alike.
    row_key = ("row", state.binding_class, state.key.scope, state.key.shape, id(obj))
    row = cache.get(row_key)
    if row is None:
        row = cache[row_key] = binding.get_serializer().serialize(obj)
    return row


def encoded(cache: dict, data: Any) -> str:
    text_key = ("text", id(data))
    text = cache.get(text_key)
    if text is None:
        text = cache[text_key] = protocol.encode(data)
    return text


def page(
    cache: dict, state: KeyState, binding: Binding, outcome: Any, ticket: int | None = None
) -> tuple[Any, str]:
    """The page's new data and its text; kept as the key's last page unless a page read
    after ``ticket`` is kept already."""
    read = state.read
    if isinstance(outcome, InPlace):
        shown = list(outcome.rows)
        for index, obj in outcome.replaced.items():
            shown[index] = row(cache, state, binding, obj)
        count, pks = outcome.count, outcome.pks
        data = {"page": read.page, "limit": read.limit, "count": count, "rows": shown}
    else:
        pks = [obj.pk for obj in outcome.rows]
        data = binding.page_data(
            read, outcome, lambda objs: [row(cache, state, binding, obj) for obj in objs]
        )
        count = outcome.count
    # Many keys often show the same page (users reading one list): equal pages are
    # found by comparing their data, which is cheaper than encoding each.
    key = state.key
    same = cache.setdefault(
        ("pages", state.binding_class, key.scope, key.shape, count, tuple(pks)), []
    )
    for known, known_text in same:
        if known == data:
            data, text = known, known_text
            break
    else:
        text = protocol.encode(data)
        same.append((data, text))
    state.keep_read(ticket, count, data["rows"], pks, len(text))
    return data, text
