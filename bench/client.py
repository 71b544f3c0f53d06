"""The load generator: a separate process that drives one contender's server over WebSockets.

``python -m bench.client`` reads a JSON spec on stdin and prints one JSON
result per step on stdout. A spec names the server (``url``, ``http``), the
session cookie, the contender's protocol, the rows, and the steps:

- ``throughput``: ``connections`` clients, each sending ``kind`` requests
  (``retrieve`` of a random row, ``list`` of a random 25-row page, ``slow``)
  one after the other for ``duration`` seconds after ``warmup`` seconds;
  replies per second and latency percentiles.
- ``fanout``: ``subscribers`` connections subscribed to one row (``mode``
  ``row``) or one category's list (``page``); ``saves`` saves made through the
  server's ``/bench/save/``; time from each save until the last subscriber
  has its push, and the queries the server ran for it.
- ``scoped``: ``subscribers`` distinct users, each on its own connection with
  its own session (``scoped`` in the spec, made by bench.prepare), subscribe to
  ``ScopedItem`` rows they may see, as ``case`` says: ``row`` (one public row),
  ``page`` (the first page of public rows), ``own_row`` (the user's own private
  row) or ``own_page`` (the user's own private rows); ``saves`` saves through
  ``/bench/save-scoped/`` change the public row, or one user's row. Time from
  each save until the last expected push, queries once the server is quiet
  again, and every push any connection received meanwhile. With ``reuse``
  (seconds), the users' connections stay open for the next scoped step while
  younger than that (their subscriptions ended by ``unsubscribe``).
- ``memory``: the server's resident memory before and after ``connections``
  idle authenticated connections.
- ``capture``: one connection subscribed to the row ``capture`` in the spec
  names, on a server whose database captures changes (bench.capture made it);
  ``samples`` times, after a random pause of up to ``gap`` seconds, this process
  renames the row with a raw SQL ``UPDATE`` on a database connection of its
  own (not Django's, not the server's), and times from its commit until the
  push carrying the new name arrives. Before, the server's CPU time is read
  over ``idle`` seconds in which nothing is written.
- ``storm`` (syncbind only, on a database whose changes are captured), in
  phases the runner spreads over server processes (``phase``):

  - ``subscribe``: ``subscribers`` connections each subscribe to one of
    ``pages`` list pages (``reads`` "pages": client i lists page ``i % pages
    + 1`` of the whole list; "filters": the first page of category ``i %
    pages`` of ``storm.categories`` in the spec) and keep the reply's
    version; then the
    server's hub resyncs (``/bench/resync/``, what the end of a channel-layer
    outage does): its time, the statements it ran and the pushes it caused.
    The result carries ``versions`` (client i's) for the next phase.
  - ``reconnect``, on a new server process: all ``subscribers`` connect at
    once and send their request again, with the version held
    (``resume``) or without (a full refetch); time from the storm's start to
    each reply, payload bytes the server sent, and the statements the server
    ran until it was quiet, less what authenticating the connections cost
    (``N`` connections opened afterwards, and nothing sent on them, counted
    the same way). With ``workers`` above 1 (a server of several processes,
    whose counters are each process's own) only the replies, their times and
    bytes are measured.
  - ``handshake``, on a server of its own (any contender): all ``subscribers``
    connect at once and send nothing; time from the start to each finished
    handshake, the server's CPU time until the last and this process's own
    (the reference the storm's handshakes are compared with).

Each step's result is printed as one JSON line as soon as the step ends. A
step that raises or runs past ``step_timeout(step)`` is reported as
``{"failed": "<short reason>"}`` (its traceback goes to stderr) and the next
step runs: one contender's failure never hides the other steps' numbers.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import time
import traceback
import urllib.request
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.limits import raise_open_files
from bench.protocols import PROTOCOLS, Protocol

OPEN_CONCURRENCY = 50
# The fewest connections opened, and subscriptions answered, a second that the scoped
# fan-out allows for (a loaded 2-core machine answered 60 page subscriptions a second
# at N = 10,000): its replies' and its step's time limits grow with N.
OPEN_RATE = 20
PUSH_TIMEOUT = 60.0
# How long a subscriber waits for the reply to its subscription.
REPLY_TIMEOUT = 60.0
# Opening connections and the HTTP calls around a step, on top of what the step waits for.
STEP_MARGIN = 120.0
# How long the capture step waits for one push: a reader that woke on nothing still looks
# every second (PostgreSQL) or every CAPTURE_POLL_INTERVAL (SQLite).
CAPTURE_PUSH_TIMEOUT = 10.0


def step_timeout(step: dict) -> float:
    """The longest a step may take before it is abandoned as failed."""
    if step["type"] == "throughput":
        return STEP_MARGIN + step.get("warmup", 0.5) + step["duration"] + 30
    if step["type"] == "memory":
        return STEP_MARGIN + step.get("settle", 2.0)
    if step["type"] == "storm":
        # Connect and subscribe (or reconnect), quiet counts, one resync or one more
        # round of connections for authentication's statements.
        return STEP_MARGIN + 3 * REPLY_TIMEOUT + 4 * PUSH_TIMEOUT
    if step["type"] == "capture":
        per_sample = step.get("gap", 0.1) + 1.0
        waits = REPLY_TIMEOUT + step.get("idle", 0) + CAPTURE_PUSH_TIMEOUT
        return STEP_MARGIN + waits + step["samples"] * per_sample
    settle = step.get("settle", 0.5)
    if step["type"] == "scoped":
        # Opening the connections, at worst OPEN_RATE a second on a loaded machine;
        # unsubscribe and subscribe; each save waits for its pushes, then a quiet server.
        per_save = 2 * PUSH_TIMEOUT + 2 * settle + 10
        opening = step["subscribers"] / OPEN_RATE
        return STEP_MARGIN + opening + 2 * scoped_reply_timeout(step) + step["saves"] * per_save
    # fan-out: every save may wait PUSH_TIMEOUT for its pushes.
    per_save = PUSH_TIMEOUT + 2 * settle + 10
    return STEP_MARGIN + REPLY_TIMEOUT + step["saves"] * per_save


def scoped_reply_timeout(step: dict) -> float:
    """How long the scoped fan-out's subscribers wait for their (un)subscriptions' replies,
    all sent at once: the server answers them one after the other."""
    return max(REPLY_TIMEOUT, step["subscribers"] / OPEN_RATE)


def short_reason(exc: BaseException) -> str:
    """One line naming an exception, short enough for a table cell."""
    text = str(exc).strip().splitlines()
    reason = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return reason if len(reason) <= 160 else reason[:157] + "..."


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Client:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.protocol: Protocol = PROTOCOLS[spec["protocol"]]
        self.item_ids: list[int] = spec["item_ids"]
        self.pages = max(1, len(self.item_ids) // 25)
        self.random = random.Random(spec.get("seed", 1))
        self.request_id = 0
        # The scoped fan-out's connections, the i-th signed in as user i, kept between
        # steps that allow it; when they were opened; what each is subscribed to.
        self.pool: list[ClientConnection] = []
        self.pool_opened = 0.0
        self.pool_subscriptions: list[tuple[str, Any] | None] = []

    # -- plumbing -----------------------------------------------------------

    async def open(self, session: str | None = None, url: str | None = None) -> ClientConnection:
        return await connect(
            url or self.spec["url"],
            additional_headers={"Cookie": f"sessionid={session or self.spec['session']}"},
            # Same for every contender: no compression, no keepalive pings, no size cap.
            compression=None,
            ping_interval=None,
            max_size=None,
            open_timeout=60,
            close_timeout=5,
        )

    async def open_many(
        self, count: int, sessions: list[str] | None = None, url: str | None = None
    ) -> list[ClientConnection]:
        """``count`` connections: all with the spec's session, or the i-th with ``sessions[i]``."""
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def one(i: int) -> ClientConnection:
            async with gate:
                return await self.open(sessions[i] if sessions else None, url)

        opened = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
        failures = [o for o in opened if isinstance(o, BaseException)]
        if failures:
            await self.close_all([o for o in opened if not isinstance(o, BaseException)])
            raise failures[0]
        return opened

    async def close_all(self, sockets: list[ClientConnection]) -> None:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)

    def http(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.spec["http"] + path, data=data)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    async def ahttp(self, path: str, body: dict | None = None) -> dict:
        return await asyncio.to_thread(self.http, path, body)

    def next_id(self) -> int:
        self.request_id += 1
        return self.request_id

    async def call(self, ws: ClientConnection, kind: str, arg: Any) -> tuple[bool, dict]:
        """Send one request and wait for its reply, skipping pushes."""
        await ws.send(json.dumps(self.protocol.request(kind, arg, self.next_id())))
        while True:
            message = json.loads(await ws.recv())
            if not self.protocol.is_push(message):
                return self.protocol.reply_ok(kind, arg, message), message

    async def subscribe(
        self, ws: ClientConnection, kind: str, arg: Any, timeout: float = REPLY_TIMEOUT
    ) -> tuple[bool, dict]:
        """``call`` for a subscription: a reply that does not come in time is a wrong one."""
        try:
            return await asyncio.wait_for(self.call(ws, kind, arg), timeout)
        except TimeoutError:
            return False, {}

    def argument(self, kind: str) -> Any:
        if kind == "retrieve":
            return self.random.choice(self.item_ids)
        if kind == "list":
            return self.random.randint(1, self.pages)
        return None

    # -- steps --------------------------------------------------------------

    async def throughput(self, step: dict) -> dict:
        kind = step["kind"]
        sockets = await self.open_many(step["connections"])
        latencies: list[float] = []
        errors = 0
        measuring = False
        stop = False

        async def run(ws: ClientConnection) -> None:
            nonlocal errors
            while not stop:
                arg = self.argument(kind)
                started = time.perf_counter()
                ok, _ = await self.call(ws, kind, arg)
                if measuring and not stop:
                    latencies.append(time.perf_counter() - started)
                    if not ok:
                        errors += 1

        tasks = [asyncio.create_task(run(ws)) for ws in sockets]
        try:
            await asyncio.sleep(step.get("warmup", 0.5))
            cpu_before = (await self.ahttp("/bench/cpu/"))["cpu"]
            measuring = True
            started = time.perf_counter()
            await asyncio.sleep(step["duration"])
            stop = True
            elapsed = time.perf_counter() - started
            cpu_used = (await self.ahttp("/bench/cpu/"))["cpu"] - cpu_before
            _, stuck = await asyncio.wait(tasks, timeout=30)
        finally:
            for task in tasks:
                task.cancel()
            await self.close_all(sockets)
        crashed = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception()]
        if crashed:
            # A connection that broke (the server closed it, or died): the step failed.
            raise crashed[0]
        # A connection still waiting for its reply 30 s after the end never got it.
        errors += len(stuck)
        return {
            "messages": len(latencies),
            "rate": len(latencies) / elapsed,
            "p50_ms": ms(percentile(latencies, 0.50)),
            "p99_ms": ms(percentile(latencies, 0.99)),
            # The server's CPU time per reply: steadier than rates on a shared machine.
            "cpu_ms": ms(cpu_used / len(latencies)) if latencies else None,
            "errors": errors,
        }

    async def fanout(self, step: dict) -> dict:
        mode = step["mode"]
        item_id, category = self.spec["fanout_item"], self.spec["fanout_category"]
        kind, arg = ("subscribe_row", item_id) if mode == "row" else ("subscribe_page", category)
        sockets = await self.open_many(step["subscribers"])
        try:
            subscribed = await asyncio.gather(*(self.subscribe(ws, kind, arg) for ws in sockets))
            errors = sum(1 for ok, _ in subscribed if not ok)

            latencies_last: list[float] = []
            queries: list[int] = []
            missing = 0
            for n in range(step["saves"]):
                before = (await self.ahttp("/bench/queries/"))["queries"]
                name = f"item renamed {time.time_ns()} {n}"
                arrivals = [asyncio.create_task(self.wait_push(ws, name)) for ws in sockets]
                started = time.perf_counter()
                await self.ahttp("/bench/save/", {"id": item_id, "name": name})
                done = await asyncio.gather(*arrivals)
                received = [t for t in done if t is not None]
                missing += len(done) - len(received)
                if received:
                    latencies_last.append(max(received) - started)
                # Let late work (on_commit, re-evaluations) finish before counting.
                await asyncio.sleep(step.get("settle", 0.5))
                queries.append((await self.ahttp("/bench/queries/"))["queries"] - before)
        finally:
            await self.close_all(sockets)
        return {
            "latency_last_ms": ms(statistics.median(latencies_last)) if latencies_last else None,
            "queries_per_save": statistics.median(queries),
            "missing": missing,
            "errors": errors,
        }

    async def wait_push(
        self, ws: ClientConnection, name: str, timeout: float = PUSH_TIMEOUT
    ) -> float | None:
        """The time the push carrying ``name`` arrives on ``ws``, or None on timeout."""
        deadline = time.perf_counter() + timeout
        try:
            while True:
                raw = await asyncio.wait_for(ws.recv(), deadline - time.perf_counter())
                if name in raw and self.protocol.is_push(json.loads(raw)):
                    return time.perf_counter()
        except TimeoutError:
            return None

    async def scoped(self, step: dict) -> dict:
        case, n = step["case"], step["subscribers"]
        scoped = self.spec["scoped"]
        users, own = scoped["users"][:n], scoped["own_rows"][:n]
        public_row = scoped["public_rows"][0]
        if len(users) < n:
            raise ValueError(f"{n} subscribers but only {len(users)} users were prepared")
        requests = {
            "row": lambda i: ("scoped_row", public_row),
            "page": lambda i: ("scoped_page", True),
            "own_row": lambda i: ("scoped_row", own[i][0]),
            "own_page": lambda i: ("scoped_page", False),
        }[case]
        wait = scoped_reply_timeout(step)
        sockets = await self.scoped_connections(n, step.get("reuse", 0), wait)
        inboxes = [Inbox(user) for user in users]
        readers: list[asyncio.Task] = []
        kept = False
        try:
            self.pool_subscriptions[:n] = [requests(i) for i in range(n)]
            replies = await asyncio.gather(
                *(self.subscribe(ws, *requests(i), wait) for i, ws in enumerate(sockets))
            )
            subscribed = sum(
                1
                for i, (ok, message) in enumerate(replies)
                if ok and self.first_reply_right(case, message, users[i], own[i], public_row)
            )
            readers = [
                asyncio.create_task(self.collect(ws, inbox))
                for ws, inbox in zip(sockets, inboxes, strict=True)
            ]
            latencies_last: list[float] = []
            queries: list[int] = []
            statements: dict[str, int] = {}
            pushes: list[int] = []
            costs: list[dict[str, float]] = []
            missing = stray = 0
            for number in range(step["saves"]):
                if case in ("row", "page"):
                    row, expected = public_row, list(range(n))
                else:
                    # One user's row: only that user may hear of it.
                    owner = self.random.randrange(n)
                    # own_row: the row the owner retrieved; own_page: any row of its page.
                    pick = 0 if case == "own_row" else number % len(own[owner])
                    row, expected = own[owner][pick], [owner]
                counts = await self.counts(statements=True)
                before = counts["queries"]
                marks = [len(inbox.pushes) for inbox in inboxes]
                name = f"scoped renamed {time.time_ns()} {number}"
                own_cpu = time.process_time()
                started = time.perf_counter()
                await self.ahttp("/bench/save-scoped/", {"id": row, "name": name})
                arrived = await asyncio.gather(
                    *(inboxes[i].wait_for(name, marks[i], PUSH_TIMEOUT) for i in expected)
                )
                received = [t for t in arrived if t is not None]
                missing += len(arrived) - len(received)
                if received:
                    latencies_last.append(max(received) - started)
                costs.append(save_costs(counts, await self.ahttp("/bench/queries/"), own_cpu))
                quiet = await self.quiet_counts(step.get("settle", 0.5), statements=True)
                queries.append(quiet["queries"] - before)
                if queries[-1] == max(queries):
                    # The costliest save's statements: what a count that grows ran.
                    statements = statement_diff(counts.get("statements"), quiet.get("statements"))
                count = sum(
                    len(inbox.pushes) - mark for inbox, mark in zip(inboxes, marks, strict=True)
                )
                pushes.append(count)
                stray += count - len(received)
            kept = bool(step.get("reuse")) and not any(inbox.closed for inbox in inboxes)
        finally:
            for task in readers:
                task.cancel()
            # Nothing may read a connection that is used again while a reader still does.
            await asyncio.gather(*readers, return_exceptions=True)
            if not kept:
                await self.close_pool()
        closed = sum(1 for inbox in inboxes if inbox.closed)
        return {
            "subscribed": subscribed,
            "latency_last_ms": ms(statistics.median(latencies_last)) if latencies_last else None,
            "queries_per_save": statistics.median(queries),
            **{
                f"{name}_per_save": round(statistics.median(c[name] for c in costs), 1)
                for name in ("server_cpu_ms", "gc_ms", "gc_full", "client_cpu_ms")
                if costs
            },
            "pushes_per_save": statistics.median(pushes),
            "statements": statements,
            "pushes_expected": n if case in ("row", "page") else 1,
            "stray_pushes": stray,
            "leaks": sum(inbox.leaks for inbox in inboxes),
            "missing": missing,
            "closed": closed,
            "errors": n - subscribed + closed,
        }

    async def scoped_connections(
        self, n: int, reuse: float, wait: float = REPLY_TIMEOUT
    ) -> list[ClientConnection]:
        """Connections for users 0..n-1: the pool's, if younger than ``reuse`` seconds.

        A reused connection's subscriptions are ended first. syncbind re-reads a
        connection's user once a minute (``USER_REFRESH_INTERVAL``), one query
        each, which must not fall into a measured save: hence the age limit.
        """
        if self.pool and (time.perf_counter() - self.pool_opened > reuse):
            await self.close_pool()
        if self.pool:
            unsubscribes = [
                self.subscribe(ws, "scoped_unsubscribe", sub[1], wait)
                for ws, sub in zip(self.pool, self.pool_subscriptions, strict=True)
                if sub is not None
            ]
            done = await asyncio.gather(*unsubscribes)
            if not all(ok for ok, _ in done):
                raise RuntimeError("a reused connection's unsubscribe failed")
            self.pool_subscriptions = [None] * len(self.pool)
        else:
            self.pool_opened = time.perf_counter()
        if len(self.pool) < n:
            scoped = self.spec["scoped"]
            more = await self.open_many(
                n - len(self.pool), scoped["sessions"][len(self.pool) : n], self.spec["scoped_url"]
            )
            self.pool += more
            self.pool_subscriptions += [None] * len(more)
        return self.pool[:n]

    async def close_pool(self) -> None:
        pool, self.pool, self.pool_subscriptions = self.pool, [], []
        await self.close_all(pool)

    def first_reply_right(self, case, message, user, own, public_row) -> bool:
        """The subscription's reply holds what this user may see, and only that."""
        if not self.protocol.replies_with_rows:
            return True
        rows = self.protocol.rows(message)
        ids = {row["id"] for row in rows}
        if any(row["owner"] != user and not row["public"] for row in rows):
            return False
        if case == "row":
            return ids == {public_row}
        if case == "page":
            return public_row in ids and all(row["public"] for row in rows)
        if case == "own_row":
            return ids == {own[0]}
        return ids == set(own)

    async def collect(self, ws: ClientConnection, inbox: Inbox) -> None:
        """Keep every push ``ws`` receives in ``inbox``, until the connection closes."""
        try:
            async for raw in ws:
                message = json.loads(raw)
                # One transaction's pushes come in one "syncbind.batch" frame.
                together = message.get("data") if message.get("event") == "syncbind.batch" else None
                if not isinstance(together, list):
                    # One push: its frame as received (encoding it again would cost the
                    # load generator's time, which the last push's latency includes).
                    if self.protocol.is_push(message):
                        inbox.add(raw, message, self.protocol.rows(message))
                    continue
                for pushed in together:
                    if self.protocol.is_push(pushed):
                        inbox.add(json.dumps(pushed), pushed, self.protocol.rows(pushed))
        except Exception:  # noqa: BLE001 - the connection broke: counted, not raised
            inbox.closed = True
        inbox.arrived.set()

    async def capture(self, step: dict) -> dict:
        target = self.spec["capture"]
        ws = await self.open()
        writer = RawWriter(target)
        latencies: list[float] = []
        missing = 0
        try:
            ok, _ = await self.subscribe(ws, "subscribe_row", target["item"])
            if not ok:
                return {"samples": 0, "missing": 0, "errors": 1}
            # The subscription started the server's reader: what its wake-ups cost alone.
            cpu_before = (await self.ahttp("/bench/cpu/"))["cpu"]
            await asyncio.sleep(step["idle"])
            idle_cpu = (await self.ahttp("/bench/cpu/"))["cpu"] - cpu_before
            for number in range(step["samples"]):
                await asyncio.sleep(self.random.uniform(0, step["gap"]))
                name = f"raw renamed {time.time_ns()} {number}"
                arrival = asyncio.create_task(self.wait_push(ws, name, CAPTURE_PUSH_TIMEOUT))
                # In the loop's thread, which waits for the commit: no push can be
                # read, and timed, before ``committed`` is taken.
                writer.rename(target["item"], name)
                committed = time.perf_counter()
                arrived = await arrival
                if arrived is None:
                    # The next samples would only wait as long: the step has failed.
                    missing += 1
                    break
                latencies.append(arrived - committed)
        finally:
            writer.close()
            await ws.close()
        return {
            "samples": len(latencies),
            "p50_ms": ms(percentile(latencies, 0.50)),
            "p95_ms": ms(percentile(latencies, 0.95)),
            "max_ms": ms(max(latencies)) if latencies else None,
            "idle_cpu_percent": round(idle_cpu / step["idle"] * 100, 2),
            "missing": missing,
            "errors": 0,
        }

    async def storm(self, step: dict) -> dict:
        if step["phase"] == "subscribe":
            return await self.storm_subscribe(step)
        if step["phase"] == "handshake":
            return await self.storm_handshake(step)
        return await self.storm_reconnect(step)

    async def storm_handshake(self, step: dict) -> dict:
        """All connect at once and send nothing: the handshakes alone."""
        n = step["subscribers"]

        async def one() -> tuple[ClientConnection, float]:
            ws = await self.open()
            return ws, time.perf_counter()

        cpu_before = (await self.ahttp("/bench/cpu/"))["cpu"]
        own_cpu = time.process_time()
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        own_cpu = time.process_time() - own_cpu
        cpu = (await self.ahttp("/bench/cpu/"))["cpu"] - cpu_before
        opened = [o for o in outcomes if not isinstance(o, BaseException)]
        await self.close_all([ws for ws, _ in opened])
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise failures[0]
        latencies = [at - started for _, at in opened]
        return {
            "connect_p50_ms": ms(percentile(latencies, 0.50)),
            "connect_p95_ms": ms(percentile(latencies, 0.95)),
            "max_ms": ms(max(latencies)),
            "server_cpu_ms": ms(cpu),
            "client_cpu_ms": ms(own_cpu),
            "errors": 0,
        }

    def storm_read(self, i: int, step: dict) -> tuple[str, Any]:
        """Client i's read: page ``i % pages + 1`` of the whole list (``reads`` "pages"),
        or the first page of category number ``i % pages`` (``reads`` "filters")."""
        slot = i % step["pages"]
        if step["reads"] == "pages":
            return "list", slot + 1
        return "subscribe_page", self.spec["storm"]["categories"][slot]

    async def counts(self, statements: bool = False) -> dict:
        """The server's statement counts (``/bench/queries/``)."""
        return await self.ahttp("/bench/queries/" + ("?statements=1" if statements else ""))

    async def quiet_counts(self, settle: float, statements: bool = False) -> dict:
        """The server's counts once the statements of its request threads (the capture
        reader's own wake-ups aside) have stopped changing for ``settle`` seconds."""
        last = await self.counts(statements)
        deadline = time.perf_counter() + PUSH_TIMEOUT
        while time.perf_counter() < deadline:
            await asyncio.sleep(settle)
            current = await self.counts(statements)
            if served(current) == served(last):
                return current
            last = current
        return last

    async def storm_subscribe(self, step: dict) -> dict:
        n = step["subscribers"]
        sockets = await self.open_many(n)
        inboxes = [Inbox(i) for i in range(n)]
        readers: list[asyncio.Task] = []
        try:
            replies = await asyncio.gather(
                *(self.subscribe(ws, *self.storm_read(i, step)) for i, ws in enumerate(sockets))
            )
            versions = [message.get("version") for _, message in replies]
            errors = sum(1 for ok, message in replies if not ok or not message.get("version"))
            readers = [
                asyncio.create_task(self.collect(ws, inbox))
                for ws, inbox in zip(sockets, inboxes, strict=True)
            ]
            before = await self.quiet_counts(step["settle"], statements=True)
            cpu_before = (await self.ahttp("/bench/cpu/"))["cpu"]
            done = await self.ahttp("/bench/resync/", {})
            cpu = (await self.ahttp("/bench/cpu/"))["cpu"] - cpu_before
            after = await self.quiet_counts(step["settle"], statements=True)
            pushes = sum(len(inbox.pushes) for inbox in inboxes)
        finally:
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await self.close_all(sockets)
        return {
            "versions": versions,
            "versions_held": len(set(versions)),
            "hubs": done["hubs"],
            "resync_ms": ms(done["seconds"]),
            "server_cpu_ms": ms(cpu),
            "queries": served(after) - served(before),
            "reader_queries": after["reader"] - before["reader"],
            "statements": statement_diff(before["statements"], after["statements"]),
            "pushes": pushes,
            "closed": sum(1 for inbox in inboxes if inbox.closed),
            "errors": errors,
        }

    async def storm_reconnect(self, step: dict) -> dict:
        """All reconnect at once; then, on fresh connections, what authentication costs."""
        n, versions = step["subscribers"], step.get("versions")
        if step.get("workers", 1) > 1:
            return await self.storm_reconnect_only(step)
        before = await self.counts(statements=True)
        cpu_before = (await self.ahttp("/bench/cpu/"))["cpu"]
        started, own_cpu, outcomes = await self.reconnect_all(step)
        cpu = (await self.ahttp("/bench/cpu/"))["cpu"] - cpu_before
        last_reply = await self.counts()
        done = [o for o in outcomes if not isinstance(o, BaseException)]
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        try:
            after = await self.quiet_counts(step["settle"], statements=True)
        finally:
            await self.close_all([o.ws for o in done])
        if failures:
            raise failures[0]
        auth = await self.authentication(n, step["settle"])
        storm = served(after) - served(before)
        return {
            **storm_replies(done, started, versions),
            "queries_total": storm,
            "auth_queries_per_connection": auth,
            "queries": round(storm - auth * n, 1),
            # The reader's statements from the storm's start to the last reply.
            "reader_queries": last_reply["reader"] - before["reader"],
            "statements": statement_diff(before["statements"], after["statements"]),
            # CPU seconds from the storm's start to the last reply: the server process's
            # (every thread), and the load generator's own.
            "server_cpu_ms": ms(cpu),
            "client_cpu_ms": ms(own_cpu),
        }

    async def reconnect_all(self, step: dict) -> tuple[float, float, list]:
        """Every storm client reconnecting at once: when they started, the load
        generator's own CPU seconds, and each one's outcome (or exception)."""
        n, versions = step["subscribers"], step.get("versions")
        own_cpu = time.process_time()
        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(
                self.reconnect(self.storm_read(i, step), versions[i] if versions else None)
                for i in range(n)
            ),
            return_exceptions=True,
        )
        return started, time.process_time() - own_cpu, outcomes

    async def storm_reconnect_only(self, step: dict) -> dict:
        """All reconnect at once, on a server of several processes: the replies, their
        times and bytes (each process counts its own statements and CPU: not read)."""
        versions = step.get("versions")
        started, own_cpu, outcomes = await self.reconnect_all(step)
        done = [o for o in outcomes if not isinstance(o, BaseException)]
        await self.close_all([o.ws for o in done])
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise failures[0]
        return {**storm_replies(done, started, versions), "client_cpu_ms": ms(own_cpu)}

    async def reconnect(self, read: tuple[str, Any], version: str | None) -> Reconnected:
        """Connect, send the subscribing read (with ``version``: a resume), read the reply."""
        ws = await self.open()
        connected = time.perf_counter()
        request = self.protocol.request(*read, self.next_id())
        if version is not None:
            request["version"] = version
        await ws.send(json.dumps(request))
        raw = await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)
        replied = time.perf_counter()
        size = len(raw.encode() if isinstance(raw, str) else raw)
        return Reconnected(ws, connected, replied, json.loads(raw), size)

    async def authentication(self, n: int, settle: float) -> float:
        """Statements per connection that authenticating costs: ``n`` connections opened
        and closed with nothing sent, counted as the storm is."""
        before = await self.quiet_counts(settle)
        sockets = await self.open_many(n)
        try:
            after = await self.quiet_counts(settle)
        finally:
            await self.close_all(sockets)
        return (served(after) - served(before)) / n

    async def memory(self, step: dict) -> dict:
        # A few connections first, with a request each, so that what loads on
        # first use (imports, caches, the pool) is in the baseline.
        warm = await self.open_many(5)
        sockets: list[ClientConnection] = []
        try:
            for ws in warm:
                await self.call(ws, "retrieve", self.item_ids[0])
            await asyncio.sleep(0.5)
            before = (await self.ahttp("/bench/memory/?mark=1"))["rss"]
            sockets = await self.open_many(step["connections"])
            await asyncio.sleep(step.get("settle", 2.0))
            measured = await self.ahttp("/bench/memory/")
            after = measured["rss"]
            # Still open and answering after the measurement.
            alive = sum(1 for ws in sockets if ws.state.name == "OPEN")
        finally:
            await self.close_all(sockets + warm)
        return {
            "rss_before": before,
            "rss_after": after,
            "per_connection_bytes": (after - before) / step["connections"],
            # A server run under PYTHONTRACEMALLOC: where the memory of the connections
            # was allocated (a profile; its figures include tracing's own cost).
            **({"allocations": measured["allocations"]} if "allocations" in measured else {}),
            "open": alive,
            "errors": step["connections"] - alive,
        }

    async def run_step(self, step: dict) -> dict:
        """One step's result, or ``{"failed": reason}``: a failure never ends the run."""
        timeout = step_timeout(step)
        try:
            return await asyncio.wait_for(getattr(self, step["type"])(step), timeout)
        except TimeoutError:
            return {"failed": f"step timed out after {timeout:.0f} s"}
        except Exception as exc:  # noqa: BLE001 - reported, with its traceback on stderr
            print(f"step {json.dumps(step)} failed:", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            return {"failed": short_reason(exc)}

    async def run(self) -> None:
        for step in self.spec["steps"]:
            started = time.perf_counter()
            result = await self.run_step(step)
            if step["type"] == "scoped":
                result["seconds"] = round(time.perf_counter() - started, 2)
            # One line per step, as soon as it ends: what was measured survives a later crash.
            print(json.dumps({**step, **result}), flush=True)
        await self.close_pool()


class RawWriter:
    """A database connection of the load generator's own, which renames a row and commits:
    a write the server's model signals never see, as another program's would be."""

    def __init__(self, target: dict) -> None:
        self.table = target["table"]
        self.sqlite = target["vendor"] == "sqlite"
        if self.sqlite:
            import sqlite3

            # Autocommit mode: BEGIN and COMMIT are sent as written.
            self.connection: Any = sqlite3.connect(target["path"], timeout=20, isolation_level=None)
            self.connection.execute("PRAGMA synchronous=NORMAL")
        else:
            import psycopg

            self.connection = psycopg.connect(target["dsn"], autocommit=True)

    def rename(self, pk: int, name: str) -> None:
        """Set row ``pk``'s name; returns once the transaction has committed."""
        if self.sqlite:
            self.connection.execute("BEGIN IMMEDIATE")
            self.connection.execute(f"UPDATE {self.table} SET name = ? WHERE id = ?", (name, pk))
            self.connection.execute("COMMIT")
        else:
            # Autocommit: the statement is its own transaction, committed on return.
            self.connection.execute(f"UPDATE {self.table} SET name = %s WHERE id = %s", (name, pk))

    def close(self) -> None:
        self.connection.close()


@dataclass
class Reconnected:
    """One storm client's reconnection: its socket, when its handshake was done and its
    reply arrived, the reply, and the reply's payload bytes."""

    ws: ClientConnection
    connected: float
    replied: float
    message: dict
    size: int


class Inbox:
    """The pushes one scoped-fan-out connection received, with their arrival times."""

    def __init__(self, user: int) -> None:
        self.user = user
        self.pushes: list[tuple[float, str]] = []
        # Pushes carrying a row this user may not see (another user's private row).
        self.leaks = 0
        self.closed = False
        self.arrived = asyncio.Event()

    def add(self, raw: str, message: dict, rows: list[dict]) -> None:
        self.pushes.append((time.perf_counter(), raw))
        if any(row.get("owner", self.user) != self.user and not row.get("public") for row in rows):
            self.leaks += 1
        self.arrived.set()

    async def wait_for(self, name: str, start: int, timeout: float) -> float | None:
        """When the first push after ``start`` carrying ``name`` arrived; None on timeout."""
        deadline = time.perf_counter() + timeout
        seen = start
        while True:
            for arrived, raw in self.pushes[seen:]:
                if name in raw:
                    return arrived
            seen = len(self.pushes)
            if self.closed:
                return None
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), deadline - time.perf_counter())
            except TimeoutError:
                return None


def served(counts: dict) -> int:
    """The statements of the server's request threads: all but the capture reader's."""
    return counts["queries"] - counts["reader"]


def storm_replies(done: list, started: float, versions: list[str] | None) -> dict:
    """What a storm step reports of its replies: the resume verdicts; the times from
    the storm's start (every client reconnecting at once) to each reply, and their
    parts (until the handshake was done, and from the request to its reply); the bytes
    and the errors."""
    verdicts = [o.message.get("resume") for o in done]
    latencies = [o.replied - started for o in done]

    def spread(values: list[float], name: str) -> dict:
        return {
            f"{name}_p50_ms": ms(percentile(values, 0.50)),
            f"{name}_p95_ms": ms(percentile(values, 0.95)),
        }

    return {
        "unchanged": verdicts.count("unchanged"),
        "changed": verdicts.count("changed"),
        "expired": verdicts.count("expired"),
        "versions_held": len(set(versions)) if versions else None,
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p95_ms": ms(percentile(latencies, 0.95)),
        "max_ms": ms(max(latencies)),
        **spread([o.connected - started for o in done], "connect"),
        **spread([o.replied - o.connected for o in done], "request"),
        "bytes": sum(o.size for o in done),
        "errors": sum(1 for o in done if not storm_reply_ok(o.message)),
    }


def storm_reply_ok(message: dict) -> bool:
    """A reply to a storm's read: rows, or a resume's "unchanged" without them."""
    if "error" in message or "request_id" not in message:
        return False
    if message.get("resume") == "unchanged":
        return "data" not in message
    rows = (message.get("data") or {}).get("rows")
    return bool(rows)


def statement_diff(before: dict | None, after: dict | None, most: int = 16) -> dict[str, int]:
    """The statements run between two tallies, the most frequent first (at most ``most``)."""
    if before is None or after is None:
        return {}
    ran = {sql: count - before.get(sql, 0) for sql, count in after.items()}
    ordered = sorted(((c, sql) for sql, c in ran.items() if c > 0), reverse=True)
    return {sql: count for count, sql in ordered[:most]}


def save_costs(before: dict, after: dict, own_cpu: float) -> dict[str, float]:
    """What one save cost until its last push arrived: the server's CPU, its time in the
    garbage collector and full collections, and this load generator's CPU (ms)."""
    return {
        "server_cpu_ms": (after["cpu"] - before["cpu"]) * 1000,
        "gc_ms": (after["gc_seconds"] - before["gc_seconds"]) * 1000,
        "gc_full": after["gc_full"] - before["gc_full"],
        "client_cpu_ms": (time.process_time() - own_cpu) * 1000,
    }


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def main() -> None:
    raise_open_files()  # a socket per subscriber
    spec = json.load(sys.stdin)
    asyncio.run(Client(spec).run())


if __name__ == "__main__":
    main()
