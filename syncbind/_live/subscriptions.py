"""The live subscriptions of one connection, and what each last received.

A :class:`Subscription` is one connection's interest in one key, pushed under
one event name. :class:`ConnectionSubscriptions` holds a connection's, enforces
its limits (``MAX_SUBSCRIPTIONS``, ``MAX_SUBSCRIPTION_KEYS``,
``MAX_SUBSCRIPTION_KEYS_PER_USER``, ``MAX_SUBSCRIPTION_REQUEST_BYTES``,
``MAX_SUBSCRIPTION_BYTES``), and orders its pushes after the reply that is
being handled.

What a subscription last received is kept as a digest of its text, never as
the data; the pages kept to be updated in place (``KeyState.page``) are what
``MAX_SUBSCRIPTION_BYTES`` counts.

The subscriptions reads make by themselves (every retrieve, list and search
subscribes) are the most recent ones: past a limit the oldest of them ends, and
the client is sent an ``ended`` frame (``limit_exceeded``, naming the limit) for
each. So a client that browses thousands of rows keeps the latest live and never
errs. Kept subscriptions (``subscribe`` events, and reads sending
``"subscribe": true``: live views) are never ended to make room; past a limit
made of those alone the request is refused with ``limit_exceeded``. Nothing ends
without a frame saying so, except at the client's request or with the socket.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from syncbind._auth.decide import authorize
from syncbind._bindings.registry import registry
from syncbind._live.keys import INSTANCE, SubscriptionKey
from syncbind._wire import protocol
from syncbind.exceptions import LimitExceeded, SyncbindError
from syncbind.settings import api_settings

if TYPE_CHECKING:
    from django.db import models

    from syncbind._auth.connection import Connection
    from syncbind._bindings.request import Request
    from syncbind._bindings.surface import Binding
    from syncbind._live.hub import Hub
    from syncbind._live.keys import KeyState
    from syncbind._reads import compiler
    from syncbind._transport.outbox import Outbox
    from syncbind.bindings import BindingBase

logger = logging.getLogger("syncbind.live")

PENDING = object()  # the first reply is not settled yet
DELETED = object()  # the last thing sent was a delete
RESUMED = object()  # resumed unchanged: what the client holds is not known here
RENEWED_NOTHING = object()  # a subscription that did not replace another


# Why a subscription a read made by itself ended (after what limit was reached).
MAKING_ROOM = (
    "this subscription, the oldest one a read made by itself, ended to make room for a "
    'newer one. Send "subscribe": true with a read to keep its subscription.'
)


def digest(text: str) -> bytes:
    """What a subscriber keeps of a state it was sent: a fixed-size digest of its text
    (a push is sent when its digest differs)."""
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class Subscription:
    """One connection's interest in one key, pushed under ``event``."""

    __slots__ = (
        "owner",
        "key",
        "state",
        "event",
        "delete_event",
        "tag",
        "request",
        "action",
        "last",
        "active",
        "version",
        "explicit",
        "replaced",
        "catch_up",
        "unjoined",
        "__weakref__",
    )

    def __init__(
        self,
        owner: ConnectionSubscriptions,
        key: SubscriptionKey,
        event: str,
        request: Request,
        action: str,
        delete_event: str | None = None,
    ) -> None:
        self.owner = owner
        self.key = key
        self.state: KeyState | None = None
        self.event = event
        self.delete_event = delete_event
        self.tag = request.tag
        self.request = request
        self.action = action
        self.last: Any = PENDING
        self.active = True
        # The key's version when this subscription was made (see KeyState.saw).
        self.version: int | None = None
        # Kept: made by a subscribe event or a read asking for it (never evicted),
        # not by a read subscribing by itself.
        self.explicit = False
        # What the subscription this one replaced had last sent.
        self.replaced: Any = RENEWED_NOTHING
        # ``(frame, digest)`` of its key evaluated again once its stream's group was
        # joined, before its first reply was settled: sent after the reply if it differs.
        self.catch_up: tuple[str, bytes] | None = None
        # Its first read may have started before its stream's group was joined.
        self.unjoined = False

    def sent(self, data: Any, pks: Any = ()) -> None:
        """Record the first reply's digest and the rows it showed (worker thread);
        raises LimitExceeded when the page it keeps would not fit (``keep``).

        The reply reuses the text encoded here (``protocol.encode_data``), so the
        request path still encodes its data once.
        """
        text = protocol.encode_data(data)
        if self.state is not None:
            self.state.saw(pks, data, self.version, len(text))
            # Before the digest: a refused renewal keeps what the client last received.
            self.owner.keep(self)
        with self.owner.lock:
            if self.last is PENDING:
                self.last = digest(text)
            catch_up, self.catch_up = self.catch_up, None
            if catch_up is not None and catch_up[1] != self.last:
                self.last = catch_up[1]
            else:
                catch_up = None
        if catch_up is not None:
            self.owner.push_soon(catch_up[0])

    def binding_model(self) -> type[models.Model] | None:
        """The model of the binding its key reads (None once it has no key state)."""
        state = self.state
        return None if state is None else state.binding_class.get_model()

    def resumed(self) -> None:
        """Its first reply was ``unchanged`` (the client holds the data as of its version):
        what the client has is not known here, so the next evaluation pushes; one that
        came while the reply was on its way is sent now."""
        with self.owner.lock:
            if self.last is PENDING:
                self.last = RESUMED
            catch_up, self.catch_up = self.catch_up, None
            if catch_up is not None:
                self.last = catch_up[1]
        if catch_up is not None:
            self.owner.push_soon(catch_up[0])

    def catch_up_now(self, frame: str, last: Any) -> bool:
        """Whether to push ``frame`` (its key evaluated again once its group was joined)
        now: only if it differs from what was last sent. While the first reply is not
        settled it is kept, and compared with that reply once it is (:meth:`sent`)."""
        with self.owner.lock:
            if self.last is PENDING:
                self.catch_up = (frame, last)
                return False
            return self.last != last


class ConnectionSubscriptions:
    """The subscriptions of one WebSocket connection (``Connection.subscriptions``).

    ``outbox`` is the connection's one outgoing queue
    (:class:`syncbind._transport.outbox.Outbox`): pushes are queued there, behind
    the reply being made if any, so a push never overtakes the reply that subscribed.
    """

    def __init__(self, hub: Hub, outbox: Outbox) -> None:
        self.hub = hub
        self.outbox = outbox
        # The Connection these belong to (set by it).
        self.connection: Connection | None = None
        self.items: dict[tuple[SubscriptionKey, str], Subscription] = {}
        self.key_counts: Counter[SubscriptionKey] = Counter()
        self.lock = threading.Lock()
        self.closed = False

    # -- called from worker threads ------------------------------------------------
    def _make_room(
        self,
        key: SubscriptionKey,
        event: str,
        request: Request,
        elsewhere: frozenset[SubscriptionKey] = frozenset(),
    ) -> list[tuple[Subscription, str]]:
        """Enforce the limits before ``(key, event)`` is added; returns what was evicted,
        each with why (to be ended with a frame once the lock is released).

        Called with ``self.lock`` held. Subscriptions a read made by itself (retrieve,
        list, search) form a bounded most-recent set: the oldest of them makes room.
        Kept ones are never dropped; past the limit with those alone, the request
        is refused. ``elsewhere``: the keys the user follows on their other
        connections (``MAX_SUBSCRIPTION_KEYS_PER_USER``; only this connection's
        subscriptions make room).
        """
        size = getattr(request.message, "size", 0)
        limit = api_settings.MAX_SUBSCRIPTION_REQUEST_BYTES
        if limit is not None and size > limit:
            raise LimitExceeded(
                f"A subscribing request may carry at most {limit} bytes; send "
                '"subscribe": false to read without subscribing.'
            )
        if (key, event) in self.items:
            return []  # replaces itself
        most = api_settings.MAX_SUBSCRIPTIONS
        most_keys = api_settings.MAX_SUBSCRIPTION_KEYS
        most_user = api_settings.MAX_SUBSCRIPTION_KEYS_PER_USER
        evicted: list[tuple[Subscription, str]] = []

        def over() -> tuple[str, str] | None:
            """The limit reached, if any: (the refusal, why an eviction ends)."""
            if most is not None and len(self.items) >= most:
                return (
                    f"This connection already has {most} live subscriptions, the most allowed; "
                    "unsubscribe from some first.",
                    f"This connection reached its limit of {most} live subscriptions: "
                    + MAKING_ROOM,
                )
            if (
                most_keys is not None
                and key not in self.key_counts
                and len(self.key_counts) >= most_keys
            ):
                return (
                    f"This connection already follows {most_keys} different rows and pages, "
                    "the most allowed; unsubscribe from some first.",
                    f"This connection reached its limit of {most_keys} different rows and "
                    "pages followed: " + MAKING_ROOM,
                )
            if (
                most_user is not None
                and key not in self.key_counts
                and key not in elsewhere
                and len(elsewhere.union(self.key_counts)) >= most_user
            ):
                return (
                    f"This user already follows {most_user} different rows and pages on "
                    "their connections, the most allowed; unsubscribe from some first.",
                    f"This user reached their limit of {most_user} different rows and pages "
                    "followed on their connections: " + MAKING_ROOM,
                )
            return None

        while (problem := over()) is not None:
            oldest = next((sub for sub in self.items.values() if not sub.explicit), None)
            if oldest is None:
                self._put_back(evicted)  # nothing made room after all
                raise LimitExceeded(problem[0])
            self._evict(oldest)
            evicted.append((oldest, problem[1]))
        return evicted

    def _evict(self, sub: Subscription) -> None:
        """Take ``sub`` out of this connection's (``self.lock`` held)."""
        del self.items[(sub.key, sub.event)]
        self._count(sub.key, -1)

    def _put_back(self, evicted: list[tuple[Subscription, str]]) -> None:
        """Undo evictions that did not make room after all (``self.lock`` held)."""
        for sub, _why in evicted:
            self.items[(sub.key, sub.event)] = sub
            self._count(sub.key, +1)

    def _end_evicted(self, evicted: list[tuple[Subscription, str]]) -> None:
        """End what made room, each with an ``ended`` frame saying which limit (worker
        thread, lock released)."""
        for sub, why in evicted:
            self.end_subscription(sub, LimitExceeded(why))

    def kept_bytes(self) -> int:
        """What this connection's pages keep, encoded (each key counted once).
        Called with ``self.lock`` held."""
        states = {id(sub.state): sub.state for sub in self.items.values() if sub.state}
        return sum(state.size for state in states.values())

    def keep(self, sub: Subscription) -> None:
        """Hold the pages of this connection to ``MAX_SUBSCRIPTION_BYTES`` now that
        ``sub``'s first read showed its page (worker thread).

        As for the count limits, the oldest subscriptions reads made by themselves
        make room (those keeping a page), each ended with a frame; past the limit
        with kept ones alone, ``sub`` is refused with ``limit_exceeded`` (and
        dropped by the read).
        """
        limit = api_settings.MAX_SUBSCRIPTION_BYTES
        if limit is None or sub.state is None or not sub.state.size:
            return
        why = f"The pages this connection follows reached their limit of {limit} bytes of rows: "
        evicted: list[tuple[Subscription, str]] = []
        with self.lock:
            if self.key_counts.get(sub.key, 0) > 1:
                return  # another of this connection's subscriptions keeps that page
            while self.kept_bytes() > limit:
                oldest = next(
                    (
                        other
                        for other in self.items.values()
                        if not other.explicit
                        and other.key != sub.key
                        and other.state is not None
                        and other.state.size
                    ),
                    None,
                )
                if oldest is None:
                    self._put_back(evicted)  # nothing made room after all
                    raise LimitExceeded(
                        f"The pages this connection follows may keep at most {limit} bytes "
                        "of rows, and this one would go past that; unsubscribe from some first."
                    )
                self._evict(oldest)
                evicted.append((oldest, why + MAKING_ROOM))
        self._end_evicted(evicted)

    def subscribe(
        self,
        key: SubscriptionKey,
        binding_class: type[BindingBase],
        read: compiler.Read | None,
        event: str,
        request: Request,
        action: str,
        delete_event: str | None = None,
        explicit: bool = False,
    ) -> Subscription:
        sub = Subscription(self, key, event, request, action, delete_event)
        sub.explicit = explicit
        elsewhere = self._followed_elsewhere(key)
        with self.lock:
            if self.closed:
                raise SyncbindError("The connection is closed.")
            evicted = self._make_room(key, event, request, elsewhere)
            old = self.items.pop((key, event), None)
            if old is not None:
                self._count(old.key, -1)
                sub.explicit = sub.explicit or old.explicit
            self.items[(key, event)] = sub
            self._count(key, +1)
        self._end_evicted(evicted)
        if old is None:
            self.hub.add(sub, binding_class, read)
        else:
            # Swapped within the key, so no change is missed between the two.
            sub.replaced = old.last
            self.hub.replace(old, sub, binding_class, read)
        return sub

    def _followed_elsewhere(self, key: SubscriptionKey) -> frozenset[SubscriptionKey]:
        """The keys this connection's user follows on their other connections in this
        process, for ``MAX_SUBSCRIPTION_KEYS_PER_USER`` (each read under its own lock,
        none held: subscriptions of one user made at the same moment on two of their
        connections may each pass the limit by one). The walk stops once ``key`` is
        among them (the limit does not apply to it) or they alone reach the limit (it
        applies whatever this connection drops): the answer is the same, and a user
        holding many connections does not cost a walk of all of them per subscription."""
        most = api_settings.MAX_SUBSCRIPTION_KEYS_PER_USER
        if most is None or self.connection is None:
            return frozenset()
        keys: set[SubscriptionKey] = set()
        for other in self.hub.connections_of(self.connection.user):
            theirs = other.subscriptions
            if other is not self.connection and theirs is not None:
                keys.update(theirs.followed_keys())
                if key in keys or len(keys) >= most:
                    break
        return frozenset(keys)

    def followed_keys(self) -> set[SubscriptionKey]:
        """The keys this connection follows now (read under its lock)."""
        with self.lock:
            return set(self.key_counts)

    def _count(self, key: SubscriptionKey, delta: int) -> None:
        self.key_counts[key] += delta
        if self.key_counts[key] <= 0:
            del self.key_counts[key]

    def read_failed(self, sub: Subscription) -> None:
        """The first read of ``sub`` failed (worker thread). A new subscription is
        dropped; one that replaced an earlier subscription to the same key stays,
        as that one was: a failed read again (the row was just deleted, say) must
        not lose the push already on its way."""
        if sub.replaced is RENEWED_NOTHING:
            self.discard(sub)
        elif sub.last is PENDING:
            sub.last = sub.replaced

    def discard(self, sub: Subscription) -> bool:
        """Drop one subscription (its first read failed, or it cannot be kept); whether
        it was still this connection's."""
        with self.lock:
            held = self.items.get((sub.key, sub.event)) is sub
            if held:
                del self.items[(sub.key, sub.event)]
                self._count(sub.key, -1)
        self.hub.remove(sub)
        return held

    def unsubscribe(self, stream: str, pk: Any = None, tag: str | None = None) -> int:
        """Drop this connection's subscriptions on ``stream`` (to row ``pk`` / under ``tag``)."""
        with self.lock:
            chosen = [
                (item_key, sub)
                for item_key, sub in self.items.items()
                if sub.key.stream == stream
                and (pk is None or (sub.key.kind == INSTANCE and sub.key.pk == pk))
                and (tag is None or sub.tag == tag)
            ]
            for item_key, sub in chosen:
                del self.items[item_key]
                self._count(sub.key, -1)
        for _item_key, sub in chosen:
            self.hub.remove(sub)
        return len(chosen)

    def clear(self) -> None:
        with self.lock:
            subs = list(self.items.values())
            self.items.clear()
            self.key_counts.clear()
            self.closed = True
        for sub in subs:
            self.hub.remove(sub)

    def all(self) -> list[Subscription]:
        with self.lock:
            return list(self.items.values())

    def rekey(self) -> list[Subscription]:
        """Compile every subscription's read again (the user was re-read); move the
        ones whose read changed. Returns those, now under their new keys. One that
        cannot be made again, or no longer fits the limits, ends with a frame."""
        moved = []
        for sub in self.all():
            try:
                binding_class = registry.get(sub.key.stream)
                binding = binding_class(request=sub.request, action=sub.action)
                key, read = binding.get_subscription_key(sub.key.kind, sub.key.pk)
            except Exception as error:
                self.end_subscription(sub, error)
                continue
            if key == sub.key:
                continue
            self.discard(sub)
            try:
                new = self.subscribe(
                    key,
                    binding_class,
                    read,
                    sub.event,
                    sub.request,
                    sub.action,
                    sub.delete_event,
                    explicit=sub.explicit,
                )
            except SyncbindError as refused:
                self.end_subscription(sub, refused)  # discarded above: only the frame
                continue
            new.last = sub.last
            moved.append(new)
        return moved

    def end_refused(self) -> int:
        """End every subscription whose permission classes now refuse its reader (the
        user's permissions changed), each with an ``ended`` frame. Returns how many."""
        count = 0
        for sub in self.all():
            try:
                binding = registry.get(sub.key.stream)(request=sub.request, action=sub.action)
            except SyncbindError:
                continue  # no binding any more: rekey() ends it
            try:
                authorize(binding, sub.request)
            except SyncbindError as refused:
                # Ended once: a request and a push may re-decide the same connection at
                # once, and only the one that drops the subscription says so.
                if self.discard(sub):
                    self.end_subscription(sub, refused, binding)
                    count += 1
        return count

    def end_subscription(
        self, sub: Subscription, error: BaseException, binding: Binding | None = None
    ) -> None:
        """Drop ``sub`` and tell the client why, in an ``ended`` frame (worker thread)."""
        self.discard(sub)
        described = api_settings.EXCEPTION_HANDLER(
            error, {"request": sub.request, "binding": binding}
        )
        if sub.key.kind == INSTANCE:
            frame = protocol.ended(sub.event, described, sub.key.pk)
        else:
            frame = protocol.ended(sub.event, described)
        self.push_soon(protocol.encode(frame))

    def push_soon(self, frame: str) -> None:
        """:meth:`push` from any thread: after the reply being handled, if any."""
        self.hub.loop.call_soon_threadsafe(self._queue, frame)

    # -- called on the event loop -----------------------------------------------------
    def _queue(self, frame: str) -> None:
        if not self.closed:
            self.outbox.push(frame)

    def streams(self) -> set[str]:
        """The streams this connection follows (on the hub's loop)."""
        with self.lock:
            return {key.stream for key in self.key_counts}

    async def push(self, frame: str) -> None:
        """Queue ``frame`` in the connection's outbox (behind the reply being made)."""
        self._queue(frame)
