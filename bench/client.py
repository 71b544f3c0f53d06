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
- ``memory``: the server's resident memory before and after ``connections``
  idle authenticated connections.

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
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.protocols import PROTOCOLS, Protocol

OPEN_CONCURRENCY = 50
PUSH_TIMEOUT = 60.0
# How long a subscriber waits for the reply to its subscription.
REPLY_TIMEOUT = 60.0
# Opening connections and the HTTP calls around a step, on top of what the step waits for.
STEP_MARGIN = 120.0


def step_timeout(step: dict) -> float:
    """The longest a step may take before it is abandoned as failed."""
    if step["type"] == "throughput":
        return STEP_MARGIN + step.get("warmup", 0.5) + step["duration"] + 30
    if step["type"] == "memory":
        return STEP_MARGIN + step.get("settle", 2.0)
    # fan-out steps: every save may wait PUSH_TIMEOUT for its pushes.
    per_save = PUSH_TIMEOUT + 2 * step.get("settle", 0.5) + 10
    return STEP_MARGIN + REPLY_TIMEOUT + step["saves"] * per_save


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

    # -- plumbing -----------------------------------------------------------

    async def open(self) -> ClientConnection:
        return await connect(
            self.spec["url"],
            additional_headers={"Cookie": f"sessionid={self.spec['session']}"},
            # Same for every contender: no compression, no keepalive pings, no size cap.
            compression=None,
            ping_interval=None,
            max_size=None,
            open_timeout=60,
            close_timeout=5,
        )

    async def open_many(self, count: int) -> list[ClientConnection]:
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def one() -> ClientConnection:
            async with gate:
                return await self.open()

        return await asyncio.gather(*(one() for _ in range(count)))

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

    async def subscribe(self, ws: ClientConnection, kind: str, arg: Any) -> tuple[bool, dict]:
        """``call`` for a subscription: a reply that does not come in time is a wrong one."""
        try:
            return await asyncio.wait_for(self.call(ws, kind, arg), REPLY_TIMEOUT)
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

    async def wait_push(self, ws: ClientConnection, name: str) -> float | None:
        """The time the push carrying ``name`` arrives on ``ws``, or None on timeout."""
        deadline = time.perf_counter() + PUSH_TIMEOUT
        try:
            while True:
                raw = await asyncio.wait_for(ws.recv(), deadline - time.perf_counter())
                if name in raw and self.protocol.is_push(json.loads(raw)):
                    return time.perf_counter()
        except TimeoutError:
            return None

    async def memory(self, step: dict) -> dict:
        # A few connections first, with a request each, so that what loads on
        # first use (imports, caches, the pool) is in the baseline.
        warm = await self.open_many(5)
        sockets: list[ClientConnection] = []
        try:
            for ws in warm:
                await self.call(ws, "retrieve", self.item_ids[0])
            await asyncio.sleep(0.5)
            before = (await self.ahttp("/bench/memory/"))["rss"]
            sockets = await self.open_many(step["connections"])
            await asyncio.sleep(step.get("settle", 2.0))
            after = (await self.ahttp("/bench/memory/"))["rss"]
            # Still open and answering after the measurement.
            alive = sum(1 for ws in sockets if ws.state.name == "OPEN")
        finally:
            await self.close_all(sockets + warm)
        return {
            "rss_before": before,
            "rss_after": after,
            "per_connection_bytes": (after - before) / step["connections"],
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
            result = await self.run_step(step)
            # One line per step, as soon as it ends: what was measured survives a later crash.
            print(json.dumps({**step, **result}), flush=True)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def main() -> None:
    spec = json.load(sys.stdin)
    asyncio.run(Client(spec).run())


if __name__ == "__main__":
    main()
