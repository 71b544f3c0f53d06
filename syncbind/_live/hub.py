"""The subscription hub: one per process (per event loop), shared by every connection.

The hub indexes the process's subscriptions by key (:class:`KeyState`), joins
each stream's group once (:mod:`.groups`), and takes every message the groups
carry. A subscription never waits for the join: it is made on the hub's loop,
and once it succeeds, the keys subscribed while it was pending are evaluated
again (a change announced before the join did not reach this process); a
subscriber is pushed only what differs from what it last received.
Of the messages: changes go to :mod:`.fanout`, which evaluates each affected key once
and pushes to its local subscribers; credential changes make the connections
of that user check their credentials again (:mod:`syncbind.authentication`).
Messages that arrive while others are processed are merged, stream by
stream, so a burst of writes costs one evaluation per affected key.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import threading
import uuid
import weakref
from collections import OrderedDict
from functools import partial
from typing import TYPE_CHECKING, Any

from channels.layers import InMemoryChannelLayer
from django.db import connections, router

from syncbind import _capture as capture
from syncbind._capture.follower import running as capture_running
from syncbind._live import delivery, fanout, messages, server_push, transactions
from syncbind._live.credentials import user_key
from syncbind._live.groups import Membership
from syncbind._live.keys import CONNECTIONS_GROUP, INSTANCE, KeyState, SubscriptionKey, group_name
from syncbind._live.lanes import FairSlots, Lanes
from syncbind._live.subscriptions import Subscription
from syncbind._workers.executor import run_in_pool
from syncbind.settings import api_settings

if TYPE_CHECKING:
    from syncbind._auth.connection import Connection
    from syncbind._reads import compiler
    from syncbind.bindings import BindingBase

logger = logging.getLogger("syncbind.live")

# Seconds a worker waits for a join with a layer of its own process (it answers at once).
LOCAL_JOIN_WAIT = 5.0


class Hub:
    """Per-process subscriptions and change fan-out (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.keys: dict[SubscriptionKey, KeyState] = {}
        # stream -> pk -> instance keys on that row; stream -> page keys.
        self.rows: dict[str, dict[Any, set[KeyState]]] = {}
        self.pages: dict[str, set[KeyState]] = {}
        self.key_counts: dict[str, int] = {}
        # user key (credentials.user_key) -> open connections, for credential changes and
        # pushes to users; and every connection.
        self.connections: dict[Any, weakref.WeakSet] = {}
        self.everyone: weakref.WeakSet = weakref.WeakSet()
        # push group name -> connections in it; per connection, the groups its
        # consumer's get_push_groups() chose and those it joined itself (join()).
        self.push_groups: dict[str, weakref.WeakSet] = {}
        self.chosen_groups: weakref.WeakKeyDictionary[Connection, set[str]] = (
            weakref.WeakKeyDictionary()
        )
        self.joined_groups: weakref.WeakKeyDictionary[Connection, set[str]] = (
            weakref.WeakKeyDictionary()
        )
        self.markers: dict[str, asyncio.Event] = {}
        # stream -> pk -> the values last announced for that row.
        self.recent: dict[str, OrderedDict[Any, Any]] = {}
        # group -> keys subscribed while its join is pending, and those to evaluate
        # again now that it is joined.
        self.joining: dict[str, set[KeyState]] = {}
        self.catch_up: dict[str, set[KeyState]] = {}
        # Joins and leaves started and not finished yet.
        self._updates: set[asyncio.Task] = set()
        self.membership = Membership(loop, self.deliver, self._joined, self.resync)
        # Each stream's changes, the pushes, the credential messages apart (.lanes);
        # process() is looked up at each message, so that it may be wrapped.
        self.lanes = Lanes(loop, lambda message: self.process(message))
        # Bounds the worker threads evaluations take, fairly between lanes (see fanout).
        self.evaluations: FairSlots | None = None
        # Reads of the change log being processed, and the pushes staged for them.
        self.transactions = transactions.Transactions()
        # Connection -> its subscriptions whose frames wait for its refresh job.
        self.held: dict[Connection, set[Subscription]] = {}
        # Connections whose subscriptions the next round of that job compiles again.
        self.rekeying: weakref.WeakSet = weakref.WeakSet()
        self._admitting = threading.Lock()

    @property
    def layer(self) -> Any:
        return self.membership.layer

    @property
    def joined(self) -> set[str]:
        return self.membership.joined

    @property
    def channel(self) -> str | None:
        return self.membership.channel

    # -- subscriptions (any thread) ---------------------------------------------------
    def add(
        self, sub: Subscription, binding_class: type[BindingBase], read: compiler.Read | None
    ) -> None:
        key = sub.key
        # Before the first read: the reader of a captured table takes its position.
        # Its changes come from the change log, not the group: a read made while the
        # group is joined misses none of them, and needs no catch-up.
        captured = capture.follow(binding_class.get_model())
        with self.lock:
            state = self.keys.get(key)
            if state is None:
                state = self.keys[key] = KeyState(key, binding_class, read)
                if key.kind == INSTANCE:
                    self.rows.setdefault(key.stream, {}).setdefault(key.pk, set()).add(state)
                else:
                    self.pages.setdefault(key.stream, set()).add(state)
                self.key_counts[key.stream] = self.key_counts.get(key.stream, 0) + 1
            _attach(state, sub)
            # Read under the lock that leave() consults: a stream seen joined here stays
            # joined, so most subscriptions skip the hop to the event loop.
            group = group_name(key.stream)
            joined = self.layer is None or group in self.joined
            start = not joined and group not in self.joining
            if not joined:
                self.joining.setdefault(group, set()).add(state)
                sub.unjoined = not captured
        if start:
            stream = key.stream
            self._on_loop(
                self.membership.join(group, partial(operator.contains, self.key_counts, stream)),
                wait=self._joins_at_once(binding_class),
            )

    def _joins_at_once(self, binding_class: type[BindingBase]) -> bool:
        """Whether a join is waited for. With a layer of this process (Channels'
        in-memory layer) it cannot wait on a server. With a database in this process's
        memory (Django's SQLite test database: only ever a test) the catch-up read
        would race the test's next write, and SQLite's shared cache locks whole tables."""
        if isinstance(self.layer, InMemoryChannelLayer):
            return True
        database = connections[router.db_for_read(binding_class.get_model())]
        in_memory = getattr(database, "is_in_memory_db", None)  # SQLite's wrapper only
        return in_memory is not None and bool(in_memory())

    def reading(self, sub: Subscription) -> None:
        """The first read of ``sub`` starts now (worker thread). If its stream's group is
        joined by then, every change committed after the read starts reaches this hub:
        the join has nothing to catch up on for it."""
        if sub.unjoined and group_name(sub.key.stream) in self.joined:
            sub.unjoined = False

    def replace(
        self,
        old: Subscription,
        new: Subscription,
        binding_class: type[BindingBase],
        read: compiler.Read | None,
    ) -> None:
        """Put ``new`` in the place of ``old``, a subscription to the same key, in one
        step: a change processed meanwhile reaches one of the two."""
        old.active = False
        with self.lock:
            state = self.keys.get(new.key)
            if state is not None and old in state.subs:
                del state.subs[old]
                _attach(state, new)
                return
        self.add(new, binding_class, read)  # ``old`` was gone already

    def remove(self, sub: Subscription) -> None:
        sub.active = False
        key = sub.key
        with self.lock:
            state = self.keys.get(key)
            if state is None or sub not in state.subs:
                return
            del state.subs[sub]
            if state.subs:
                return
            del self.keys[key]
            if key.kind == INSTANCE:
                on_row = self.rows[key.stream][key.pk]
                on_row.discard(state)
                if not on_row:
                    del self.rows[key.stream][key.pk]
            else:
                self.pages[key.stream].discard(state)
            self.key_counts[key.stream] -= 1
            if self.key_counts[key.stream]:
                return
            del self.key_counts[key.stream]
            self.rows.pop(key.stream, None)
            self.pages.pop(key.stream, None)
            self.recent.pop(key.stream, None)
            self.joining.pop(group_name(key.stream), None)
            self.catch_up.pop(group_name(key.stream), None)
        self._on_loop(
            self.membership.leave(
                group_name(key.stream), partial(operator.contains, self.key_counts, key.stream)
            )
        )

    def evaluation_slots(self) -> FairSlots:
        """The worker threads evaluations may take (:func:`.fanout.in_slot`): half the
        pool's, made on first use (the pool's size is a setting)."""
        if self.evaluations is None:
            self.evaluations = FairSlots(api_settings.THREAD_POOL_SIZE // 2)
        return self.evaluations

    def recent_rows(self, stream: str) -> OrderedDict[Any, Any]:
        """The values last announced for ``stream``'s rows (:mod:`.affected`; on the loop)."""
        return self.recent.setdefault(stream, OrderedDict())

    def streams(self) -> set[str]:
        """The streams this hub holds keys of (any thread)."""
        with self.lock:
            return {stream for stream, count in self.key_counts.items() if count}

    def streams_filtering_through(self, tables: set[str]) -> set[str]:
        """The streams of which a key's read filters through one of ``tables`` (other
        than the stream's own table): a write there may change which rows it shows."""
        with self.lock:
            states = list(self.keys.values())
        found: set[str] = set()
        for state in states:
            stream = state.key.stream
            if stream not in found and state.filters_through(tables):
                found.add(stream)
        return found

    def subscriber_count(self, stream: str | None = None) -> int:
        with self.lock:
            return sum(
                len(state.subs)
                for key, state in self.keys.items()
                if stream is None or key.stream == stream
            )

    def key_count(self, stream: str | None = None) -> int:
        with self.lock:
            return sum(1 for key in self.keys if stream is None or key.stream == stream)

    # -- connections (for credential changes) --------------------------------------------
    def attach(self, connection: Connection) -> None:
        key = user_key(connection.user)
        with self.lock:
            self.everyone.add(connection)
            if key is not None:
                self.connections.setdefault(key, weakref.WeakSet()).add(connection)
            joined = self.layer is None or CONNECTIONS_GROUP in self.joined
        if not joined:
            self._on_loop(self.membership.join(CONNECTIONS_GROUP, self._anyone))

    def detach(self, connection: Connection) -> None:
        key = user_key(connection.user)
        with self.lock:
            self.everyone.discard(connection)
            holding = self.connections.get(key)
            if holding is not None:
                holding.discard(connection)
                if not holding:
                    del self.connections[key]
            self.chosen_groups.pop(connection, None)
            self.joined_groups.pop(connection, None)
            for name in list(self.push_groups):
                self.push_groups[name].discard(connection)
                if not self.push_groups[name]:
                    del self.push_groups[name]
            last = not self.everyone and CONNECTIONS_GROUP in self.joined
        if last:
            self._on_loop(self.membership.leave(CONNECTIONS_GROUP, self._anyone))

    def _anyone(self) -> bool:
        return bool(len(self.everyone))

    def join_group(self, connection: Connection, name: str) -> None:
        """Let ``connection`` receive pushes to the group ``name`` (syncbind.push), until
        it leaves it: joined by the connection's own code, not chosen by its consumer."""
        with self.lock:
            self.joined_groups.setdefault(connection, set()).add(name)
            self._enter(connection, name)

    def leave_group(self, connection: Connection, name: str) -> None:
        """Undo :meth:`join_group` (a group the consumer chose stays while it does)."""
        with self.lock:
            self.joined_groups.get(connection, set()).discard(name)
            if name not in self.chosen_groups.get(connection, ()):
                self._exit(connection, name)

    def choose_groups(self, connection: Connection, names: Any) -> None:
        """Make ``names`` the groups the consumer chose for ``connection``
        (``get_push_groups()``): joins the new ones, leaves those no longer chosen
        unless the connection joined them itself."""
        chosen = {str(name) for name in names}
        with self.lock:
            if connection not in self.everyone:
                return  # closed meanwhile (a refresh running as it closed)
            before = self.chosen_groups.get(connection, set())
            self.chosen_groups[connection] = chosen
            joined = self.joined_groups.get(connection, set())
            for name in chosen - before:
                self._enter(connection, name)
            for name in before - chosen - joined:
                self._exit(connection, name)

    def _enter(self, connection: Connection, name: str) -> None:
        self.push_groups.setdefault(name, weakref.WeakSet()).add(connection)

    def _exit(self, connection: Connection, name: str) -> None:
        members = self.push_groups.get(name)
        if members is not None:
            members.discard(connection)
            if not members:
                del self.push_groups[name]

    def admit(self, connection: Connection, most: int | None) -> bool:
        """Attach ``connection`` unless its user already has ``most`` connections open in
        this process (None: no limit; anonymous ones are not counted). Any thread."""
        # One handshake at a time counts and attaches, so that none passes on a count
        # another is about to raise.
        with self._admitting:
            if (
                most is not None
                and user_key(connection.user) is not None
                and len(self.connections_of(connection.user)) >= most
            ):
                return False
            self.attach(connection)
            return True

    def connections_of(self, user: Any) -> list[Connection]:
        """The open connections of ``user`` (a user, its primary key or its user key)."""
        key = user_key(user)
        with self.lock:
            return list(self.connections.get(key, ()))

    def _on_loop(self, coro: Any, wait: bool = False) -> None:
        """Run ``coro`` (a join or a leave) on the hub's loop, without waiting for it
        unless ``wait`` (a layer of this process): a worker thread never waits on a
        channel-layer server. Started in call order, they take the membership's lock
        in that order."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._start(coro)
            return
        done = threading.Event() if wait else None
        try:
            self.loop.call_soon_threadsafe(self._start, coro, done)
        except RuntimeError:  # the loop is closed: nothing is left to join for
            coro.close()
            return
        if done is not None:
            done.wait(LOCAL_JOIN_WAIT)

    async def groups_updated(self) -> None:
        """Wait (event loop) for the joins and leaves started so far: a closing
        connection's consumer waits for its groups' leaves, so that no group stays
        joined by a hub whose loop ends. Only that coroutine waits, no worker."""
        if self._updates:
            await asyncio.wait(set(self._updates))

    def _start(self, coro: Any, done: threading.Event | None = None) -> None:
        task = self.loop.create_task(_logged(coro), name="syncbind-hub-groups")
        self._updates.add(task)
        task.add_done_callback(self._updates.discard)
        if done is not None:
            task.add_done_callback(lambda _task: done.set())

    def _joined(self, group: str) -> None:
        """A group was joined (event loop): evaluate again the keys subscribed while the
        join was pending, in turn with the messages."""
        with self.lock:
            states = self.joining.pop(group, None)
            if states:
                self.catch_up.setdefault(group, set()).update(states)
        if states:
            # In the stream's lane: in turn with that stream's changes.
            stream = next(iter(states)).key.stream
            self.lanes.put(messages.joined(group, stream))

    # -- messages (event loop) -------------------------------------------------------------
    def take_read(self, found: list[dict[str, Any]]) -> None:
        """Take the messages of one read of the change log (on the loop): their pushes to
        each connection go out together (:mod:`.transactions`)."""
        for message in self.transactions.open(found):
            self.lanes.put(message)

    async def deliver(self, message: dict[str, Any]) -> None:
        """Take a message from the groups: into its lane (:mod:`.lanes`), where each
        stream's changes are processed in order, bursts merged, apart from the others."""
        self.lanes.put(message)

    async def process(self, message: dict[str, Any]) -> None:
        """Act on one (merged) group message."""
        kind = messages.kind(message)
        numbers = message.get("batch")
        if numbers:
            token = transactions.current.set(self.transactions.begin(numbers))
            try:
                await self.process(_unnumbered(message))
            finally:
                transactions.current.reset(token)
                await self.transactions.done(numbers, message.get("stream"))
            return
        if kind == messages.CHANGES:
            await fanout.process(self, message.get("stream"), message.get("changes"))
        elif kind == messages.AUTH:
            await self._credentials_changed(message)
        elif kind == messages.PUSH:
            await self._pushed(message)
        elif kind == messages.JOINED:
            with self.lock:
                states = self.catch_up.pop(message.get("group", ""), set())
            await fanout.reevaluate(self, message.get("stream", ""), states)
        elif kind == messages.MARKER:
            event = self.markers.get(message.get("marker", ""))
            if event is not None:
                event.set()

    async def barrier(self) -> None:
        """Return once every message sent to this hub before the call has been processed
        (on the loop): a marker sent to the hub's own channel comes after everything
        sent to its groups before it, and the hub processes messages in order; changes
        the reader of this process handed it are behind the same marker in its lanes.
        Joins started before the call have ended (and what they caught up on is
        evaluated)."""
        if self._updates:
            await asyncio.wait(set(self._updates))
        via_layer = self.layer is not None and self.channel is not None and bool(self.joined)
        if not via_layer and not capture_running():
            return
        marker = uuid.uuid4().hex
        message = messages.marker(marker)
        event = self.markers[marker] = asyncio.Event()
        try:
            if via_layer:
                await self.layer.send(self.channel, message)
            else:
                self.lanes.put(message)
            await event.wait()
        finally:
            self.markers.pop(marker, None)

    def outboxes_idle(self) -> bool:
        """Whether every connection's outgoing frames are written (any thread)."""
        with self.lock:
            outboxes = [c.outbox for c in self.everyone if c.outbox is not None]
        return all(outbox.idle for outbox in outboxes)

    async def _pushed(self, message: dict[str, Any]) -> None:
        """Hand a server push to the local connections it is for (syncbind.push), each
        decided again now (:func:`.server_push.permitted`); those whose credentials are
        found to have ended are closed instead."""
        targets = [c for c in server_push.push_targets(self, message.get("target")) if c.valid]
        if not targets:
            return
        allowed = await run_in_pool(server_push.permitted, self, message, targets)
        for connection in targets:
            if not connection.valid:
                await connection.revoke()
        for connection in allowed:
            if connection.subscriptions is not None:
                await connection.subscriptions.push(message["frame"])

    async def _credentials_changed(self, message: dict[str, Any]) -> None:
        # One user (credentials), or many whose permissions may have changed.
        users = message.get("users") or [message.get("user")]
        for user_pk in users:
            for connection in self.connections_of(user_pk):
                if not await run_in_pool(connection.revalidate, message.get("session")):
                    await connection.revoke()

    def resync(self) -> None:
        """The channel layer lost what it carried meanwhile (an outage, a restart that
        emptied it): evaluate every key again and check every connection's user and
        credentials again, as if every change and credential message had come (on the
        loop). Each subscriber is pushed only what differs from what it was sent."""
        for stream in self.streams():
            self.lanes.put(messages.anything(stream))
        with self.lock:
            users = [key for key, found in self.connections.items() if key is not None and found]
        if users:
            self.lanes.put(messages.permissions(users))

    # -- refresh jobs ------------------------------------------------------------------------
    def holds(self, connection: Connection, sub: Subscription, rekey: bool = False) -> bool:
        """Whether ``sub``'s frame must wait for its connection's refresh job (any thread).

        It must while that job is pending, or when the connection is due for a user
        refresh (or, with ``rekey``, its subscriptions must be compiled again): the
        job is then started, one at a time per connection. The frames held are
        evaluated again once the job has read the user again, never sent before.
        """
        with self.lock:
            if connection not in self.held and not rekey and not connection.refresh_due():
                return False
            self._job(connection, rekey).add(sub)
            return True

    def rekey(self, connection: Connection) -> None:
        """Compile ``connection``'s subscriptions again in its refresh job (any thread):
        its user was read again. Its frames are held until the job has done so."""
        with self.lock:
            self._job(connection, rekey=True)

    def _job(self, connection: Connection, rekey: bool) -> set[Subscription]:
        """The frames held for ``connection``'s refresh job, started if it is not running
        (with the hub's lock held)."""
        held = self.held.get(connection)
        if held is None:
            held = self.held[connection] = set()
            self.loop.call_soon_threadsafe(
                self.lanes.start_job, self._refresh(connection), "syncbind-refresh"
            )
        if rekey:
            self.rekeying.add(connection)
        return held

    async def _refresh(self, connection: Connection) -> None:
        """A connection's refresh job: read its user again, compile its subscriptions
        again, then evaluate alone those that moved and those whose frames were held."""
        lane = ("refresh", user_key(connection.user))
        # Its frames go out by themselves, not with the read whose evaluation held them
        # (this task was started inside it, and copied its context).
        transactions.current.set(None)
        try:
            while True:
                found = await fanout.in_slot(self, lane, self._round, connection)
                if found is None:
                    with self.lock:
                        del self.held[connection]
                    await connection.revoke()
                    return
                await fanout.send(found)
                with self.lock:
                    if not self.held[connection]:
                        del self.held[connection]
                        return
        except Exception:
            logger.exception("syncbind could not refresh a connection's user")
            with self.lock:
                self.held.pop(connection, None)

    def _round(self, connection: Connection) -> list[tuple] | None:
        """One round of a refresh job (worker thread): the frames of the subscriptions
        held so far; None once the credentials have ended.

        Their keys are read first and the user after (where that read is due), so a
        row is never sent on permissions older than it: a write the row read saw was
        committed before the user was read. A frame held meanwhile, and a subscription
        whose key the user read moved, wait for the next round. Each read takes its
        key's ticket first: the page it keeps for updates in place never replaces one
        read after it (:meth:`.keys.KeyState.keep_read`).
        """
        with self.lock:
            held, self.held[connection] = self.held[connection], set()
            rekey = connection in self.rekeying
            self.rekeying.discard(connection)
        subs = [sub for sub in held if sub.active and sub.state]
        versions = {
            sub: capture.version_for(model) if (model := sub.binding_model()) else None
            for sub in subs
        }
        tickets = {sub: sub.state.ticket() for sub in subs if sub.state is not None}
        read = [(sub, delivery.read_alone(sub)) for sub in subs]
        moved = _refreshed(connection, rekey)
        if not connection.valid:
            return None
        if moved:
            with self.lock:
                self.held[connection].update(moved)
        return [
            found
            for sub, outcome in read
            for found in delivery.for_alone(sub, outcome, versions[sub], tickets.get(sub))
        ]


def _refreshed(connection: Connection, rekey: bool) -> list[Subscription]:
    """Read the user again if due and, when it was (or ``rekey``), compile the
    subscriptions again (worker thread): those that moved; none once the credentials
    are found to have ended."""
    read_again = connection.refresh()
    if not connection.valid or not (read_again or rekey):
        return []
    return connection.reauthorize()


def _unnumbered(message: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if key != "batch"}


async def _logged(coro: Any) -> None:
    try:
        await coro
    except Exception:
        logger.warning("syncbind hub could not update its channel-layer groups", exc_info=True)


def _attach(state: KeyState, sub: Subscription) -> None:
    """Make ``sub`` one of the key's subscribers (with the hub's lock held)."""
    state.subs[sub] = None
    sub.state = state
    sub.version = state.version


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def all_hubs() -> list[Hub]:
    """Every hub of this process (one per event loop)."""
    with _hubs_lock:
        return list(_hubs.values())


def get_hub(loop: asyncio.AbstractEventLoop | None = None) -> Hub:
    """The hub of ``loop`` (default: the running loop), created on first use."""
    loop = loop or asyncio.get_running_loop()
    with _hubs_lock:
        hub = _hubs.get(loop)
        if hub is None:
            hub = _hubs[loop] = Hub(loop)
        return hub
