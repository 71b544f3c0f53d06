"""Subscription keys: subscribers with equal keys share one evaluation per change.

:class:`SubscriptionKey` is what a subscription is keyed by; :class:`KeyState`
is a key's state in one process's hub (its read, its subscribers, what it
last showed).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from syncbind._live.matching import Predicate, compile_predicate

if TYPE_CHECKING:
    from syncbind._live.subscriptions import Subscription
    from syncbind.bindings import BindingBase

INSTANCE = "instance"
PAGE = "page"

# Makes a page kept and the read it came from one step (reads of a key keep theirs
# from several worker threads at once).
_keeping = threading.Lock()


@dataclass(frozen=True)
class SubscriptionKey:
    """(stream, kind, pk, read, scope, shape).

    ``read`` is what the subscription reads: the identity of its compiled read
    (statement and parameters, see :mod:`syncbind._reads.compiler`), or, for a binding
    whose reads cannot be compiled, the user and the request's parameters.
    ``scope`` is what the pushed data depends on besides the rows read (None:
    nothing, see ``get_subscription_scope``). ``shape`` is the identity of the
    serializer the subscriber's own request chose (see
    ``get_serializer_identity``): subscribers whose replies would show other
    fields never share a key. ``pk`` names the row of an instance
    subscription (None for pages).
    """

    stream: str
    kind: str
    pk: Any
    read: tuple[Any, ...]
    scope: Any = None
    shape: Any = None

    @cached_property
    def digest(self) -> str:
        """A stable digest of the whole key (what a version is signed for): its text is
        long (a statement and its parameters), and every subscriber's push needs it."""
        return hashlib.sha256(repr(self).encode()).hexdigest()


class KeyState:
    """One subscription key in this process: its read, its subscribers, what it showed."""

    __slots__ = (
        "key",
        "binding_class",
        "read",
        "predicate",
        "subs",
        "pks",
        "page",
        "size",
        "version",
        "tickets",
        "kept",
        "tables",
        "__weakref__",
    )

    def __init__(self, key: SubscriptionKey, binding_class: type[BindingBase], read: Any) -> None:
        self.key = key
        self.binding_class = binding_class
        # The compiled read (syncbind._reads.compiler), None when evaluated through the binding.
        self.read = read
        # Its queryset's WHERE over one row's values (syncbind._live.matching).
        self.predicate: Predicate | None = None
        if read is not None:
            self.predicate = compile_predicate(read.queryset)
        self.subs: dict[Subscription, None] = {}
        # Primary keys of the rows it last showed (pages), and that page:
        # (count, serialized rows, primary keys in order).
        self.pks: set[Any] = set()
        self.page: tuple[int, list[Any], list[Any]] | None = None
        # The size of that page encoded, in bytes: what keeping it costs (see
        # ConnectionSubscriptions.keep, which holds a connection's pages to a limit).
        self.size = 0
        # Bumped by every evaluation: a first reply read before one is older than it.
        self.version = 0
        # Each evaluation takes a ticket before it reads (ticket()); the ticket of the
        # page kept: a page read before it is older, and is never kept over it.
        self.tickets = itertools.count(1)
        self.kept = 0
        # The tables its read filters through, but its own (found when first needed).
        self.tables: frozenset[str] | None = None

    def filters_through(self, tables: set[str]) -> bool:
        """Whether a write to one of ``tables`` may change which rows this key shows
        (a key evaluated through its binding: a write to any table its model reaches)."""
        if self.tables is None:
            # Not at module level: _capture.tables imports _live.changes, which imports this.
            from syncbind._capture.tables import filter_tables, reached_tables

            if self.read is None:
                model = self.binding_class.get_model()
                found = reached_tables(model)
            else:
                model = self.read.model
                found = filter_tables(self.read.queryset)
            self.tables = found - {model._meta.db_table}
        return not self.tables.isdisjoint(tables)

    def saw(self, pks: Any, data: Any = None, version: int | None = None, size: int = 0) -> None:
        """A subscriber's first reply showed ``data`` (its rows' primary keys ``pks``,
        ``size`` bytes encoded); ``version`` is this key's version when that
        subscriber subscribed."""
        if self.key.kind == INSTANCE:
            return
        pks = list(pks)
        self.pks.update(pks)
        if version != self.version:
            return  # evaluated since that reply was read: the evaluation is newer
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            self.keep_page(data["count"], data["rows"], pks, size)

    def ticket(self) -> int:
        """A ticket for an evaluation about to read this key (any thread): later reads
        take higher ones."""
        return next(self.tickets)

    def keep_read(
        self, ticket: int | None, count: int, shown: list[Any], pks: list[Any], size: int
    ) -> bool:
        """Keep the page an evaluation read under ``ticket`` (None: read now), unless a
        page read after it is kept already; returns whether it was kept. Its rows are
        remembered either way: a change of one of them evaluates the page again."""
        with _keeping:
            if ticket is not None and ticket < self.kept:
                # Read before the kept page: a change since would be missing from it,
                # and a page updated in place from it would show it undone.
                self.pks.update(pks)
                return False
            self.kept = ticket if ticket is not None else self.ticket()
            self.keep_page(count, shown, pks, size)
            self.pks = set(pks)
            self.version += 1
            return True

    def keep_page(self, count: int, shown: list[Any], pks: list[Any], size: int) -> None:
        """Keep the page last shown (to update it in place), ``size`` bytes encoded."""
        self.page = (count, shown, pks)
        self.size = size


def group_name(stream: str) -> str:
    """The channel-layer group carrying the changes of ``stream``."""
    return f"syncbind.{stream}"


CONNECTIONS_GROUP = "syncbind.connections"
"""The group every hub with connections joins: credential changes and server pushes."""
