"""The subscription hub: one per process (per event loop), shared by every connection.

The hub owns one channel-layer channel and joins a stream's group once, when
the first local subscription on that stream appears (and leaves it when the
last one goes), so a burst of subscribing connections costs at most one
``group_add`` per stream per process. For every change message it receives,
it evaluates each affected :class:`~syncbind.live.keys.SubscriptionKey` once in
the worker pool (one query, one serialization), checks each subscriber's
permissions, and writes the result straight to the local connections whose
last message differs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import weakref
from typing import Any

from channels.layers import get_channel_layer

from .. import protocol
from ..exceptions import NotFound, SyncbindError
from ..executor import run_in_pool
from ..registry import registry
from ..settings import api_settings
from .keys import INSTANCE, SubscriptionKey, group_name

logger = logging.getLogger("syncbind.live")

PENDING = object()  # a subscription whose first reply is not settled yet


class FirstReply:
    """The data of a subscription's first reply, not encoded yet."""

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data


DELETED = object()  # the last thing sent was a delete


class Subscription:
    """One connection's interest in one key, pushed under ``event``."""

    __slots__ = (
        "owner",
        "key",
        "event",
        "delete_event",
        "tag",
        "request",
        "last",
        "active",
        "__weakref__",
    )

    def __init__(
        self,
        owner,
        key: SubscriptionKey,
        event: str,
        request: Any,
        tag: str | None,
        delete_event=None,
    ):
        self.owner = owner
        self.key = key
        self.event = event
        self.delete_event = delete_event
        self.tag = tag
        self.request = request
        self.last: Any = PENDING
        self.active = True

    def sent(self, data: Any) -> None:
        """Record the data of the reply that started this subscription (worker thread).

        Kept as is, not encoded: the request path does not encode its reply twice,
        and a push compares it with the decoded new state (see ``evaluate``).
        """
        if self.last is PENDING:
            self.last = FirstReply(data)


class ConnectionSubscriptions:
    """The subscriptions of one WebSocket connection; ``core.Connection.subscriptions``.

    ``send`` is the connection's async send of a text frame. While the
    connection is handling a message (``busy``), pushes wait and go out right
    after the reply, so a push never overtakes the reply that subscribed.
    """

    def __init__(self, hub: Hub, send) -> None:
        self.hub = hub
        self._send = send
        self.items: dict[tuple[SubscriptionKey, str], Subscription] = {}
        self.lock = threading.Lock()
        self.busy = 0
        self.deferred: list[str] = []
        self.closed = False

    # -- called from worker threads ------------------------------------------------
    def subscribe(
        self, key: SubscriptionKey, event: str, request: Any, delete_event: str | None = None
    ) -> Subscription:
        sub = Subscription(self, key, event, request, request.tag, delete_event)
        with self.lock:
            old = self.items.pop((key, event), None)
            self.items[(key, event)] = sub
        if old is not None:
            self.hub.remove(old)
        self.hub.add(sub)
        return sub

    def discard(self, sub: Subscription) -> None:
        """Drop one subscription (its first read failed)."""
        with self.lock:
            if self.items.get((sub.key, sub.event)) is sub:
                del self.items[(sub.key, sub.event)]
        self.hub.remove(sub)

    def unsubscribe(self, stream: str, pk: Any = None, tag: str | None = None) -> int:
        """Drop this connection's subscriptions on ``stream`` (to row ``pk`` / under ``tag``)."""
        with self.lock:
            chosen = [
                (item_key, sub)
                for item_key, sub in self.items.items()
                if sub.key.stream == stream
                and (pk is None or (sub.key.kind == INSTANCE and sub.key.what == pk))
                and (tag is None or sub.tag == tag)
            ]
            for item_key, _sub in chosen:
                del self.items[item_key]
        for _item_key, sub in chosen:
            self.hub.remove(sub)
        return len(chosen)

    def clear(self) -> None:
        with self.lock:
            subs = list(self.items.values())
            self.items.clear()
            self.closed = True
        for sub in subs:
            self.hub.remove(sub)

    # -- called on the event loop -----------------------------------------------------
    def begin(self) -> None:
        self.busy += 1

    async def end(self) -> None:
        self.busy -= 1
        if not self.busy and self.deferred:
            frames, self.deferred = self.deferred, []
            for frame in frames:
                await self._push_now(frame)

    async def push(self, frame: str) -> None:
        if self.busy:
            self.deferred.append(frame)
        else:
            await self._push_now(frame)

    async def _push_now(self, frame: str) -> None:
        if self.closed:
            return
        try:
            await self._send(frame)
        except Exception:  # the socket went away; disconnect will clean up
            logger.debug("push to a closed connection dropped", exc_info=True)


class Hub:
    """Per-process subscriptions and change fan-out (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.keys: dict[SubscriptionKey, dict[Subscription, None]] = {}
        self.streams: dict[str, set[SubscriptionKey]] = {}
        self.joined: set[str] = set()
        self.channel: str | None = None
        self._task: asyncio.Task | None = None
        self._refresh_task: asyncio.Task | None = None
        self._membership = asyncio.Lock()
        self._layer = None

    @property
    def layer(self):
        if self._layer is None:
            self._layer = get_channel_layer(api_settings.CHANNEL_LAYER)
        return self._layer

    # -- subscriptions (any thread) ---------------------------------------------------
    def add(self, sub: Subscription) -> None:
        key = sub.key
        with self.lock:
            self.keys.setdefault(key, {})[sub] = None
            self.streams.setdefault(key.stream, set()).add(key)
            # Read under the lock that _leave holds while it decides to leave: a stream
            # seen joined here stays joined, so most subscriptions skip the hop to the loop.
            joined = self.layer is None or key.stream in self.joined
        if not joined:
            self._on_loop(self._join(key.stream))

    def remove(self, sub: Subscription) -> None:
        sub.active = False
        key = sub.key
        with self.lock:
            subs = self.keys.get(key)
            if subs is None or sub not in subs:
                return
            del subs[sub]
            if subs:
                return
            del self.keys[key]
            stream_keys = self.streams.get(key.stream)
            stream_keys.discard(key)
            if stream_keys:
                return
            del self.streams[key.stream]
        self._on_loop(self._leave(key.stream))

    def subscriber_count(self, stream: str | None = None) -> int:
        with self.lock:
            return sum(
                len(subs)
                for key, subs in self.keys.items()
                if stream is None or key.stream == stream
            )

    def _on_loop(self, coro) -> None:
        """Run ``coro`` on the hub's loop and wait for it (from a worker thread)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.loop.create_task(coro)
            return
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            future.result(timeout=30)
        except Exception:
            logger.warning("syncbind hub could not update its channel-layer groups", exc_info=True)

    # -- group membership (event loop) -----------------------------------------------
    async def _join(self, stream: str) -> None:
        if stream in self.joined or self.layer is None:
            return
        async with self._membership:
            if stream in self.joined:
                return
            if self.channel is None:
                # The default prefix: channels-redis serves all of a process's channels with
                # that prefix through one receive loop; another prefix would get its own.
                self.channel = await self.layer.new_channel()
            await self.layer.group_add(group_name(stream), self.channel)
            self.joined.add(stream)
            self._ensure_tasks()

    async def _leave(self, stream: str) -> None:
        async with self._membership:
            with self.lock:
                if stream in self.streams or stream not in self.joined:
                    return
                self.joined.discard(stream)
            try:
                await self.layer.group_discard(group_name(stream), self.channel)
            finally:
                if not self.joined:
                    self._stop_tasks()

    def _ensure_tasks(self) -> None:
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._receive_loop(), name="syncbind-hub")
        if self._refresh_task is None or self._refresh_task.done():
            self._refresh_task = self.loop.create_task(
                self._refresh_loop(), name="syncbind-hub-refresh"
            )

    def _stop_tasks(self) -> None:
        for task in (self._task, self._refresh_task):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
        self._task = self._refresh_task = None

    async def _refresh_loop(self) -> None:
        # Group membership expires (channels-redis group_expiry): renew it regularly.
        while True:
            await asyncio.sleep(api_settings.GROUP_REFRESH_INTERVAL)
            for stream in list(self.joined):
                try:
                    await self.layer.group_add(group_name(stream), self.channel)
                except Exception:
                    logger.warning("syncbind hub could not renew group %s", stream, exc_info=True)

    async def _receive_loop(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.error(
                    "syncbind hub cannot receive changes from the channel layer", exc_info=True
                )
                await self._recover()
                continue
            try:
                await self.process(message)
            except Exception:
                logger.exception("syncbind hub failed to process a change")

    async def _recover(self) -> None:
        """Wait for the channel layer to answer again, then join the groups anew.

        A restarted Redis has forgotten every group membership, so pushes resume
        only once the hub re-joins; it retries every second, logging nothing more
        until it succeeds.
        """
        while True:
            await asyncio.sleep(1)
            try:
                for stream in list(self.joined):
                    await self.layer.group_add(group_name(stream), self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                continue
            logger.warning("syncbind hub receives changes again")
            return

    # -- fan-out ------------------------------------------------------------------------
    async def process(self, message: dict[str, Any]) -> None:
        """Evaluate every local key the change message may affect, and push."""
        stream = message.get("stream")
        try:
            binding_class = registry.get(stream)
        except SyncbindError:
            return
        pk_field = binding_class.get_model()._meta.pk
        changes = message.get("changes")
        ops = None if changes is None else {pk_field.to_python(pk): op for pk, op in changes}
        with self.lock:
            jobs = []
            for key in self.streams.get(stream, ()):
                if key.kind == INSTANCE:
                    if ops is not None and key.what not in ops:
                        continue
                    op = "save" if ops is None else ops[key.what]
                else:
                    op = None
                jobs.append((key, op, list(self.keys[key])))
        if not jobs:
            return
        results = await asyncio.gather(
            *(run_in_pool(evaluate, binding_class, key, op, subs) for key, op, subs in jobs),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                logger.error("syncbind failed to evaluate a subscription", exc_info=result)
                continue
            for sub, frame, last in result:
                if sub.active:
                    sub.last = last
                    await sub.owner.push(frame)


def _frame(event: str, data_text: str) -> str:
    return f'{{"event":{protocol.encode(event)},"data":{data_text}}}'


def evaluate(
    binding_class, key: SubscriptionKey, op: str | None, subs: list[Subscription]
) -> list[tuple]:
    """Compute one key's new state once, then what each subscriber should receive.

    Runs in a worker thread. Returns ``(subscription, frame, last)`` triples.
    The key is evaluated with the first subscriber's request: subscribers share
    a key only when they share a scope, so that request sees what all of them see.
    Each subscriber's own permissions are checked again: denied sends nothing.
    """
    request = subs[0].request
    deleted = False
    data_text = None
    if key.kind == INSTANCE:
        action = "retrieve"
        if op == "delete":
            deleted = True
        elif not binding_class.post_save_retrieve:
            return []
        else:
            binding = binding_class(request=request, action=action)
            try:
                data_text = protocol.encode(
                    binding.get_serializer().serialize(binding.get_object())
                )
            except NotFound:
                deleted = True  # the row left this scope's queryset
            except SyncbindError:
                return []  # object permission refused: send nothing, not even the id
    else:
        action = "search" if request.action == "search" or request.data.get("query") else "list"
        binding = binding_class(request=request, action=action)
        try:
            data_text = protocol.encode(binding.get_page())
        except SyncbindError:
            return []
    out = []
    decoded = None  # data_text decoded once, for subscribers still holding a FirstReply
    for sub in subs:
        try:
            if sub.request.connection is not None:
                sub.request.connection.refresh_user()
            binding_class(request=sub.request, action=action).check_permissions(sub.request)
        except SyncbindError:
            continue
        if deleted:
            if sub.last is DELETED:
                continue
            out.append((sub, _frame(sub.delete_event, protocol.encode({"id": key.what})), DELETED))
        elif isinstance(sub.last, FirstReply):
            if decoded is None:
                decoded = json.loads(data_text)
            if sub.last.data != decoded:
                out.append((sub, _frame(sub.event, data_text), data_text))
        elif sub.last != data_text:
            out.append((sub, _frame(sub.event, data_text), data_text))
    return out


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def get_hub(loop: asyncio.AbstractEventLoop | None = None) -> Hub:
    """The hub of ``loop`` (default: the running loop), created on first use."""
    loop = loop or asyncio.get_running_loop()
    with _hubs_lock:
        hub = _hubs.get(loop)
        if hub is None:
            hub = _hubs[loop] = Hub(loop)
        return hub
