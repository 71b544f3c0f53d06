"""Each process's reader of the change table: records become its hubs' change messages.

One thread per database (started by the first subscription to a captured
table) waits for a wake-up, reads the records committed since its position
(:mod:`.log`), and hands each hub of the process the same messages a model
signal would have announced, so the fan-out (:mod:`syncbind._live.fanout`) is
the same whoever wrote. Every process reads the table itself: a captured
write crosses no channel layer, and its writer waits for nothing.

Wake-ups: PostgreSQL's NOTIFY (sent by the triggers), a commit of this
process (model signals poke the thread), and otherwise a look every second
on PostgreSQL or every ``CAPTURE_POLL_INTERVAL`` at SQLite's ``PRAGMA
data_version``. A wake-up carries nothing: the position decides what is read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from typing import Any

from django.db import connections

from syncbind._capture.log import Batch, log_for
from syncbind._capture.records import messages_for
from syncbind.settings import api_settings

logger = logging.getLogger("syncbind.capture")

# Seconds a PostgreSQL reader waits for NOTIFY before it reads anyway (a wake-up
# lost with a dropped connection costs at most this).
PG_FALLBACK_POLL = 1.0
# Seconds the first subscription waits for the reader to take its position.
START_WAIT = 10.0
# Seconds between retries while the database cannot be read.
RETRY_AFTER = 1.0
# Distinct versions whose answer a reader keeps until its position moves (clients
# choose them: bounded).
MAX_VERSIONS_KEPT = 1000


class Wakeup:
    """A pipe the reader's wait selects on, so any thread can end the wait."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        os.set_blocking(self.read_end, False)
        os.set_blocking(self.write_end, False)
        # Once closed, its descriptor numbers may belong to another file: never written.
        self.closed = False
        self.lock = threading.Lock()

    def wait(self, timeout: float, socket: int | None = None) -> bool:
        """Wait until poked (True), ``socket`` is readable (False) or ``timeout``
        passes (False). poll(), not select(): a server holding thousands of sockets has
        descriptors past select()'s limit."""
        poller = select.poll()
        poller.register(self.read_end, select.POLLIN)
        if socket is not None:
            poller.register(socket, select.POLLIN)
        ready = {fd for fd, _event in poller.poll(timeout * 1000)}
        if self.read_end in ready:
            self.drain()
            return True
        return False

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            for fd in (self.read_end, self.write_end):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def poke(self) -> None:
        with self.lock, contextlib.suppress(BlockingIOError):  # full of pokes: it will wake
            if not self.closed:
                os.write(self.write_end, b"x")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.read_end, 4096):
                pass


class Follower:
    """The reader of one database's change table (see the module docstring)."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.log = log_for(alias)
        self.position: Any = None
        self.reading = threading.Lock()
        self.started = threading.Event()
        self.wakeup = Wakeup()
        self.thread: threading.Thread | None = None
        self.stopping = False
        self._failing = False
        self._pruned_at = 0.0
        self._listening: Any = None  # the connection LISTEN was sent on
        self._data_version: Any = None
        # How many reads found records; version -> tables written since (None: history
        # gone), as of the count when it was found: dropped whenever a read finds
        # records (a position that moves over none changes nothing).
        self.generation = 0
        self._since: dict[str, set[str] | None] = {}
        self._since_at = -1
        self._asking = threading.Lock()

    # -- any thread ------------------------------------------------------------------------
    def ensure_started(self) -> None:
        """Start the reader, once; return when it has taken its position (so that no
        change committed after a first read that follows this call is missed)."""
        with _lock:
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name=f"syncbind-capture-{self.alias}", daemon=True
                )
                self.thread.start()
        self.started.wait(START_WAIT)

    def poke(self) -> None:
        """Read soon: this process committed a captured write."""
        self.wakeup.poke()

    def read_now(self) -> None:
        """Read what was committed up to now and hand it to the hubs (any thread; the
        reads are one at a time)."""
        with self.reading:
            # Handed over before the next read starts: the hubs get reads in order.
            _deliver(self._read())

    def version(self) -> str | None:
        """The position read so far, as a version: a state read after this call reflects
        every change up to it (None before the reader has a position)."""
        position = self.position
        return None if position is None else self.log.text(position)

    def tables_since(self, version: str) -> set[str] | None:
        """The tables written after ``version`` (None: the log no longer reaches back),
        shared by every resume until this reader next finds records: a reconnecting
        crowd with one version costs one query, asked once (the others wait for it).
        A write committed after the query and not read yet is read after the
        subscription that asked was made, so the reader still pushes it."""
        with self._asking:
            generation = self.generation
            if self._since_at != generation:
                self._since, self._since_at = {}, generation
            if version in self._since:
                return self._since[version]
            found = self.log.tables_since(version)
            if self.generation == generation and len(self._since) < MAX_VERSIONS_KEPT:
                self._since[version] = found
            return found

    def stop(self) -> None:
        self.stopping = True
        self.poke()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        if thread is None or not thread.is_alive():
            self.wakeup.close()

    # -- its thread ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            with self.reading:
                self.position = self.log.now()
        except Exception:
            logger.exception("syncbind could not start reading the change table of %r", self.alias)
        finally:
            self.started.set()
        try:
            while not self.stopping:
                self._wait()
                if self.stopping:
                    break
                self.read_now()
                self._prune()
        finally:
            connections[self.alias].close()
            self.wakeup.close()

    def _wait(self) -> None:
        vendor = connections[self.alias].vendor
        try:
            if vendor == "postgresql":
                self._wait_pg()
            else:
                self._wait_sqlite()
        except Exception:
            if not self._failing:
                logger.warning("syncbind lost its wake-ups on %r", self.alias, exc_info=True)
            self._failing = True
            self._listening = None
            connections[self.alias].close()
            self.wakeup.wait(RETRY_AFTER)

    def _wait_pg(self) -> None:
        wrapper = connections[self.alias]
        wrapper.ensure_connection()
        raw = wrapper.connection
        if self._listening is not raw:
            with wrapper.cursor() as cursor:
                cursor.execute("LISTEN syncbind_change")
            self._listening = raw
        pgconn = raw.pgconn
        if not self.wakeup.wait(PG_FALLBACK_POLL, pgconn.socket):
            pgconn.consume_input()
            while pgconn.notifies() is not None:
                pass

    def _wait_sqlite(self) -> None:
        interval = max(0.001, float(api_settings.CAPTURE_POLL_INTERVAL))
        while not self.stopping:
            if self.wakeup.wait(interval):
                return
            with connections[self.alias].cursor() as cursor:
                cursor.execute("PRAGMA data_version")
                version = cursor.fetchone()[0]
            if version != self._data_version:
                self._data_version = version
                return

    def _read(self) -> list[tuple[Any, list[dict[str, Any]]]]:
        try:
            if self.position is None:
                self.position, batch = self.log.now(), Batch(missed=True)
            else:
                batch, self.position = self.log.read(self.position)
        except Exception:
            if not self._failing:
                logger.warning(
                    "syncbind could not read the change table of %r; pushes wait until it can",
                    self.alias,
                    exc_info=True,
                )
            self._failing = True
            connections[self.alias].close()
            return []
        if self._failing:
            logger.warning("syncbind reads the change table of %r again", self.alias)
            self._failing = False
        if not batch:
            return []
        # Before the hubs are looked at: a resume that finds this count unchanged was
        # made (its subscription registered) before they were, so these reach it.
        self.generation += 1
        if not api_settings.CAPTURE:
            return []  # turned off (a test's settings): model signals announce instead
        return messages_for(batch, _live_hubs())

    def _prune(self) -> None:
        retention = api_settings.CAPTURE_RETENTION
        if retention is None:
            return
        now = time.monotonic()
        if now - self._pruned_at < max(1.0, min(60.0, retention / 10)):
            return
        self._pruned_at = now
        try:
            self.log.prune(retention)
        except Exception:
            logger.warning("syncbind could not prune the change table", exc_info=True)


def _live_hubs() -> list[Any]:
    # Not at module level: _live.hub imports this module (to know which readers run).
    from syncbind._live.hub import all_hubs

    return [hub for hub in all_hubs() if hub.key_counts]


def _deliver(delivered: list[tuple[Any, list[dict[str, Any]]]]) -> None:
    for hub, messages in delivered:
        try:
            hub.loop.call_soon_threadsafe(hub.take_read, messages)
        except RuntimeError:  # its loop is closed
            continue


_lock = threading.Lock()
_followers: dict[str, Follower] = {}


def follower_for(alias: str) -> Follower:
    with _lock:
        follower = _followers.get(alias)
        if follower is None:
            follower = _followers[alias] = Follower(alias)
        return follower


def running() -> list[Follower]:
    with _lock:
        return [f for f in _followers.values() if f.thread is not None and not f.stopping]


def stop_all() -> None:
    """Stop every reader and close its connection (a test session's end)."""
    with _lock:
        followers = list(_followers.values())
        _followers.clear()
    for follower in followers:
        follower.stop()
