"""The benchmark runner: ``python -m bench.run [--quick | --smoke] [--out DIR]``.

For each backend configuration it prepares a database, starts one uvicorn
server per contender (one worker process each), and drives them from a
separate load-generator process (``bench.client``). Rounds interleave the
contenders, so drift on a shared machine spreads over all of them; the
results are medians over rounds. It writes ``results/latest.json`` and renders
``BENCHMARKS.md`` and the charts (``bench.report``).

A peer's failure (its server does not start or exits, the load generator
fails or times out in a step, wrong replies, pushes that never arrive) is
recorded in that step's row as ``"failed": "<short reason>"``, with the
details and the server log's tail in the run's log directory, and the run goes
on. The process exits 1 only when one of syncbind's own contenders failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

from bench.client import step_timeout
from bench.contenders import CONTENDERS
from bench.limits import raise_open_files

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

REQUEST_CONTENDERS = [
    "syncbind-sync",
    "syncbind-async",
    "syncbind-sync-16",
    "dcrf",
    "channels-binding",
    "plain",
    "echo",
]
# Every contender with a database: the echo consumer has no slow query to run.
SLOW_CONTENDERS = [name for name in REQUEST_CONTENDERS if name != "echo"]
FANOUT_CONTENDERS = ["syncbind-sync", "dcrf-observer"]
MEMORY_CONTENDERS = ["syncbind-sync", "syncbind-async", "dcrf", "channels-binding", "plain", "echo"]
# Scoped fan-out: distinct users, each seeing only some ScopedItem rows; each
# contender's Contender.scoped_cases says which of the cases it takes.
SCOPED_CONTENDERS = ["syncbind-sync", "dcrf-observer"]
SCOPED_CASES = ["row", "page", "own_row", "own_page"]
# The peer's largest N: it runs a query per subscriber for each save, so at 10,000 one
# save would take tens of seconds; the targets at larger N are syncbind's alone.
SCOPED_PEER_LIMIT = 1000
# The scoped fan-out's servers (processes of their own) re-read a connection's user once
# an hour, not once a minute: opening 10,000 connections takes a minute or more, and a
# user's re-read (one query per connection) must not land in a measured save.
SCOPED_USER_REFRESH = 3600
# Where it runs: the two ends of the backend matrix.
SCOPED_BACKENDS = [("sqlite", "memory"), ("postgres", "redis")]
# Change capture is syncbind's alone: its latency servers (one per SQLite
# CAPTURE_POLL_INTERVAL, Plan.capture_poll_intervals) serve the BindingConsumer.
CAPTURE_CONTENDER = "syncbind-sync"
# The reconnect storm and the resync: syncbind's resume, on a database of its own whose
# changes are captured (replies carry versions only there).
STORM_CONTENDER = "syncbind-sync"
# Queries that wait (BENCH_QUERY_DELAY, bench.app.delay): every contender with a database,
# on servers of their own, PostgreSQL only (a database across a network).
DELAY_CONTENDERS = SLOW_CONTENDERS
# The handshake reference servers: (contender, its auth stack).
HANDSHAKE_SERVERS = [
    ("syncbind-sync", "syncbind"),
    ("syncbind-sync", "channels"),
    ("plain", "channels"),
]
SCENARIOS = ["memory", "throughput", "slow", "delay", "fanout", "scoped", "capture", "storm"]
# The server log's tail kept with a failure.
LOG_TAIL = 4000
# Seconds bench.capture may take to prepare its database and time its writes.
CAPTURE_TIMEOUT = 900


@dataclass
class Plan:
    """What one run measures; ``MODES`` holds the three sizes."""

    rounds: int
    duration: float
    warmup: float
    connections: list[int]
    slow_connections: int
    fanout_subscribers: list[int]
    fanout_saves: int
    fanout_settle: float
    memory_connections: int
    scoped_subscribers: list[int]
    scoped_saves: int
    # Seconds the server's query count must stay still before a scoped save is counted.
    scoped_settle: float
    # Seconds the scoped fan-out's connections may be reused by the next case (0: a
    # fresh connection per user and case); see Client.scoped_connections. Within
    # SCOPED_USER_REFRESH: no user is re-read while its connection is reused.
    scoped_reuse: float = 1800.0
    # Seconds the idle connections stay open before the second reading.
    memory_settle: float = 2.0
    # The scenario whose every statement waits: the wait (seconds) and the connections.
    delay_seconds: float = 0.002
    delay_connections: int = 50
    dbs: list[str] = field(default_factory=lambda: ["sqlite", "postgres"])
    # None: every contender; else only these (for experiments; the report then has gaps).
    contenders: list[str] | None = None
    layers: list[str] = field(default_factory=lambda: ["memory", "redis"])
    # None: every scenario; else only these (for experiments).
    scenarios: list[str] | None = None
    # Change capture (bench.capture): the items one update() writes; on/off blocks of
    # each state, with the timed saves and updates of one block.
    capture_rows: int = 10_000
    capture_rounds: int = 5
    capture_saves: int = 100
    capture_updates: int = 4
    # Raw SQL updates timed from commit to push, with a random pause of up to
    # ``capture_gap`` seconds before each (the commits fall anywhere in a poll interval).
    capture_samples: int = 200
    capture_gap: float = 0.1
    # Seconds the latency server's CPU is read over while nothing is written (what its
    # reader's wake-ups cost: PRAGMA data_version every poll interval on SQLite).
    capture_idle: float = 3.0
    # SQLite's CAPTURE_POLL_INTERVAL for each latency server (None: syncbind's default).
    capture_poll_intervals: list[float | None] = field(default_factory=lambda: [None, 0.005])
    # The reconnect storm and the resync: subscribers, the distinct filtered pages they
    # share (client i lists category i % pages), and the seconds a server's statement
    # count must stay still before it is read.
    storm_subscribers: int = 1000
    storm_pages: int = 4
    storm_settle: float = 0.5
    # What the clients read: pages of the whole list, or one category's page each
    # (a foreign-key filter, whose value the filter's form field looks up).
    storm_reads: list[str] = field(default_factory=lambda: ["pages", "filters"])
    # Also the resuming storm on a server of 2 worker processes (one per core), and the
    # handshakes alone (syncbind with its own auth stack and with Channels', and the
    # hand-written consumer) as a reference.
    storm_two_workers: bool = True
    storm_handshakes: bool = True


FULL = Plan(
    rounds=3,
    duration=3.0,
    warmup=0.5,
    connections=[1, 10, 50],
    slow_connections=32,
    fanout_subscribers=[10, 100, 1000],
    fanout_saves=5,
    fanout_settle=0.5,
    memory_connections=1000,
    scoped_subscribers=[10, 100, 1000, 10_000],
    scoped_saves=5,
    scoped_settle=0.3,
)

MODES = {
    "full": FULL,
    # Every scenario once, with short steps, at full size but for the reconnect storm's
    # 200 clients and the scoped fan-out, which stops at N = 1,000: under 10 minutes on
    # 2 cores (bench/README.md gives where its time goes).
    "quick": replace(
        FULL,
        rounds=1,
        duration=0.8,
        warmup=0.2,
        fanout_saves=2,
        fanout_settle=0.2,
        memory_settle=1.0,
        # One save per case, and the users' connections reused between cases: opening
        # and subscribing them is most of the time. N = 10,000 is the full run's alone
        # (bench/README.md says what it cost a quick run).
        scoped_subscribers=[10, 1000],
        scoped_saves=1,
        scoped_settle=0.2,
        capture_rounds=3,
        capture_saves=50,
        capture_updates=2,
        capture_samples=100,
        capture_idle=1.0,
        # At 1,000 (the full run's) the storms would add about 3 minutes: each of the
        # 12 steps opens its N connections once or twice, on a server process of its own.
        storm_subscribers=200,
    ),
    # The smallest run: `make test` runs it so the harness cannot rot. Its
    # numbers mean nothing.
    "smoke": Plan(
        rounds=1,
        duration=0.2,
        warmup=0.05,
        connections=[2],
        slow_connections=2,
        fanout_subscribers=[3],
        fanout_saves=1,
        fanout_settle=0.1,
        memory_connections=5,
        memory_settle=0.2,
        delay_connections=2,
        scoped_subscribers=[3],
        scoped_saves=2,
        scoped_settle=0.1,
        # Two rounds: each state's block comes first once.
        capture_rows=200,
        capture_rounds=2,
        capture_saves=3,
        capture_updates=1,
        capture_samples=5,
        capture_gap=0.02,
        capture_idle=0.1,
        storm_subscribers=3,
        storm_pages=2,
        storm_settle=0.1,
    ),
}


# -- servers ------------------------------------------------------------------


# How many ports a server tries when the one it chose was taken before it bound it.
PORT_ATTEMPTS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One contender's uvicorn server (one worker process unless ``workers`` says more)
    on a free loopback port."""

    def __init__(
        self,
        contender: str,
        env: dict[str, str],
        log_dir: Path,
        tag: str = "",
        port: int | None = None,
        workers: int = 1,
    ) -> None:
        self.contender = CONTENDERS[contender]
        # Why this server cannot be measured any more (it did not start, or exited).
        self.failed: str | None = None
        # ``port``: a stopped server's, for the process that takes its place (a restart).
        self.port = port or free_port()
        # ``tag`` tells apart the logs of several servers of one contender and backend.
        stem = "-".join(
            part for part in ["server", contender, env["BENCH_DB"], env["BENCH_LAYER"], tag] if part
        )
        self.log_path = log_dir / f"{stem}.log"
        self.env = {**os.environ, **env, "BENCH_CONTENDER": contender, **dict(self.contender.env)}
        self.workers = workers
        # A port of its own choosing may be taken by another process before the server
        # binds it: then it starts again on another (see wait_ready).
        self.moves = PORT_ATTEMPTS - 1 if port else 0
        self.start()

    def start(self) -> None:
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--lifespan",
                "off",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """True once the server answers; else False, with ``failed`` saying why."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                last = self.last_log_line()
                if "address already in use" in last and self.moves < PORT_ATTEMPTS - 1:
                    self.moves += 1
                    self.log.close()
                    self.port = free_port()
                    self.start()
                    continue
                self.failed = f"server did not start (exit code {self.process.returncode})"
                if last:
                    self.failed += f": {last}"
                return False
            try:
                urllib.request.urlopen(self.http + "/bench/queries/", timeout=2).close()
                return True
            except OSError:
                time.sleep(0.1)
        self.failed = f"server did not answer within {timeout:.0f} s"
        return False

    def check_alive(self) -> bool:
        """False (and ``failed`` set) when the process has exited since it started."""
        if self.failed is None and self.process.poll() is not None:
            self.failed = f"server exited (code {self.process.returncode})"
        return self.failed is None

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL:]
        except OSError as exc:
            return f"(no server log: {exc})"

    def last_log_line(self) -> str:
        """The log's last line (an exception's, when the server died of one), shortened."""
        lines = [line.strip() for line in self.log_tail().splitlines() if line.strip()]
        return lines[-1][:120] if lines else ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


# -- backends -----------------------------------------------------------------


def services_required() -> bool:
    return bool(os.environ.get("SYNCBIND_REQUIRE_SERVICES"))


def reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Backends:
    """The databases and layer prefixes one run uses, created fresh and removed after."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.tag = f"{os.getpid()}"
        self.pg_name = f"syncbind_bench_{self.tag}"
        self.pg_created: set[str] = set()
        self.redis_used = False
        self.prepared: dict[str, dict] = {}

    def pg_database(self, database: str) -> str:
        """The PostgreSQL database of ``database``: ``main``, or a scenario's own (the
        ``capture`` and ``storm`` scenarios': their rows and triggers stay out of the others')."""
        return self.pg_name if database == "main" else f"{self.pg_name}_{database}"

    def env(self, db: str, layer: str, database: str = "main") -> dict[str, str]:
        """The ``BENCH_*`` environment of a process on ``db`` (the ``main`` database, or
        a scenario's own: ``capture``, ``storm``) and ``layer``."""
        self.redis_used = self.redis_used or layer == "redis"
        sqlite = "bench" if database == "main" else database
        return {
            "BENCH_DB": db,
            "BENCH_LAYER": layer,
            "BENCH_SQLITE_PATH": str(self.work / sqlite) + ".sqlite3",
            "BENCH_PG_NAME": self.pg_database(database),
            "BENCH_REDIS_PREFIX": f"bench{self.tag}",
            "PYTHONPATH": str(ROOT),
            # Whatever the caller's environment says (pytest sets its own).
            "DJANGO_SETTINGS_MODULE": "bench.settings",
        }

    def available(self, db: str, layer: str) -> str | None:
        """None when the backends answer, else why not."""
        if db == "postgres" and not reachable(5432):
            return "PostgreSQL is not reachable on 127.0.0.1:5432"
        if layer == "redis" and not reachable(6379):
            return "Redis is not reachable on 127.0.0.1:6379"
        return None

    def prepare(self, db: str, scoped_users: int) -> dict:
        """Schema, rows and sessions in ``db`` (once per run)."""
        if db not in self.prepared:
            if db == "postgres":
                self.create_pg(self.pg_name)
            out = subprocess.run(
                [sys.executable, "-m", "bench.prepare"],
                cwd=ROOT,
                env={
                    **os.environ,
                    **self.env(db, "memory"),
                    "BENCH_SCOPED_USERS": str(scoped_users),
                },
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            self.prepared[db] = json.loads(out.strip().splitlines()[-1])
        return self.prepared[db]

    def prepare_capture(self, db: str, layer: str, plan: Plan) -> tuple[dict | None, str]:
        """The capture scenario's database, prepared, and its writes timed (bench.capture):
        (its JSON line, or None if it failed; what it wrote on stderr)."""
        env = self.fresh(db, layer, "capture")
        spec = {
            "rows": plan.capture_rows,
            "rounds": plan.capture_rounds,
            "saves": plan.capture_saves,
            "updates": plan.capture_updates,
        }
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bench.capture", json.dumps(spec)],
                cwd=ROOT,
                env={**os.environ, **env, "BENCH_CONTENDER": CAPTURE_CONTENDER},
                capture_output=True,
                text=True,
                timeout=CAPTURE_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            return None, f"bench.capture timed out after {CAPTURE_TIMEOUT} s\n{exc.stderr or ''}"
        if done.returncode:
            return None, f"bench.capture exited (code {done.returncode})\n{done.stderr}"
        return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr

    def capture_target(self, db: str, prepared: dict) -> dict:
        """Where the load generator's own connection writes its raw SQL."""
        env = self.env(db, "memory", "capture")
        target = {"vendor": db, "table": prepared["table"], "item": prepared["item"]}
        if db == "postgres":
            target["dsn"] = f"host=127.0.0.1 user=postgres dbname={self.pg_database('capture')}"
        else:
            target["path"] = env["BENCH_SQLITE_PATH"]
        return target

    def fresh(self, db: str, layer: str, database: str) -> dict[str, str]:
        """A scenario's own database, created empty; its processes' environment."""
        env = self.env(db, layer, database)
        if db == "postgres":
            self.create_pg(self.pg_database(database))
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(env["BENCH_SQLITE_PATH"] + suffix).unlink(missing_ok=True)
        return env

    def prepare_storm(self, db: str, layer: str) -> tuple[dict | None, str]:
        """The storm's database: bench.prepare's rows and session, migrated with syncbind's
        app (its change table and triggers); (its JSON line, or None if it failed; stderr)."""
        env = self.fresh(db, layer, "storm")
        done = subprocess.run(
            [sys.executable, "-m", "bench.prepare"],
            cwd=ROOT,
            env={
                **os.environ,
                **env,
                "BENCH_CONTENDER": STORM_CONTENDER,
                "BENCH_SCOPED_USERS": "1",
            },
            capture_output=True,
            text=True,
        )
        if done.returncode:
            return None, f"bench.prepare exited (code {done.returncode})\n{done.stderr}"
        return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr

    def create_pg(self, name: str) -> None:
        psql(f"DROP DATABASE IF EXISTS {name}")
        psql(f"CREATE DATABASE {name}")
        self.pg_created.add(name)

    def cleanup(self) -> None:
        for name in sorted(self.pg_created):
            psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if self.redis_used:
            import redis

            client = redis.Redis(host="127.0.0.1", port=6379)
            for key in client.scan_iter(match=f"bench{self.tag}*"):
                client.delete(key)
            client.close()


def psql(sql: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(sql)


# -- the run ------------------------------------------------------------------


def drive(server: Server, data: dict, steps: list[dict]) -> list[tuple[dict, str]]:
    """Run ``steps`` against ``server`` from a separate load-generator process.

    One ``(result, details)`` per step, in order; it never raises. A step that
    failed has ``"failed"`` in its result, and ``details`` is what the load
    generator wrote on stderr. Steps the load generator never reported (it
    crashed, or ran out of time) fail with that reason.
    """
    if not server.check_alive():
        return [({**step, "failed": server.failed}, "") for step in steps]
    spec = {
        "url": server.url,
        "http": server.http,
        "session": data["session"],
        "protocol": server.contender.protocol,
        "item_ids": data["item_ids"],
        # What some steps need only: the capture scenario's database has no scoped rows.
        **{
            key: data.get(key)
            for key in ("fanout_item", "fanout_category", "scoped", "capture", "storm")
        },
        "scoped_url": server.url + "scoped/",
        "steps": steps,
    }
    timeout = sum(step_timeout(step) for step in steps) + 60
    client = subprocess.Popen(
        [sys.executable, "-m", "bench.client"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = client.communicate(json.dumps(spec), timeout=timeout)
        ended = f"load generator exited (code {client.returncode})" if client.returncode else None
    except subprocess.TimeoutExpired:
        client.kill()
        stdout, stderr = client.communicate()
        ended = f"load generator timed out after {timeout:.0f} s"
    results = []
    for line in stdout.splitlines():
        try:
            results.append(json.loads(line))
        except ValueError:
            continue
    if ended:
        last = (stderr.strip().splitlines() or [""])[-1][:160]
        reason = f"{ended}: {last}" if last else ended
        results += [{**step, "failed": reason} for step in steps[len(results) :]]
    if not server.check_alive():
        # The server died under this drive: that is the reason its failed steps failed.
        results = [
            {**r, "failed": f"{server.failed} during the step"} if "failed" in r else r
            for r in results
        ]
    return [(r, stderr if "failed" in r else "") for r in results]


def verdict(result: dict) -> str | None:
    """Why a step's result cannot stand, or None: wrong replies and lost pushes fail it too."""
    if result.get("failed"):
        return result["failed"]
    if result["type"] == "memory" and result.get("errors"):
        return f"{result['errors']} of {result['connections']} idle connections closed"
    if result.get("closed"):
        return f"{result['closed']} connections closed by the server"
    if result.get("errors"):
        return f"{result['errors']} wrong or missing replies"
    if result.get("missing"):
        return f"{result['missing']} pushes never arrived"
    if result.get("leaks"):
        return f"{result['leaks']} pushes carried another user's private row"
    # No write between the two servers: every resume must find nothing changed.
    if (
        result["type"] == "storm"
        and result.get("resume")
        and result["unchanged"] != result["subscribers"]
    ):
        return (
            f"{result['subscribers'] - result['unchanged']} of {result['subscribers']} "
            'resumes were not answered "unchanged"'
        )
    if result.get("measure") == "write":
        # The writes timed "on" must have fired the triggers, and those timed "off" not.
        on, off = result["records_per_write_on"], result["records_per_write_off"]
        if (on, off) != (result["rows"], 0):
            return (
                f"change records per write: {on:g} with capture on, {off:g} off"
                f" (expected {result['rows']} and 0)"
            )
    return None


def storm_summary(row: dict) -> str:
    if row["measure"] == "handshake":
        return (
            f"{row['subscribers']} handshakes, {row['contender']} with the {row['stack']} auth "
            f"stack: connect p95 {row['connect_p95_ms']} ms, server CPU {row['server_cpu_ms']} ms"
        )
    if row.get("workers", 1) > 1:
        return (
            f"{row['reads']}: storm of {row['subscribers']} resuming on {row['workers']} "
            f"processes: p95 {row['p95_ms']} ms, {row['bytes']:,} bytes"
        )
    if row["measure"] == "resync":
        return (
            f"{row['reads']}: resync of {row['subscribers']} subscribers: {row['resync_ms']} ms, "
            f"{row['queries']} statements, {row['pushes']} pushes"
        )
    how = "resuming" if row["resume"] else "refetching"
    return (
        f"{row['reads']}: storm of {row['subscribers']} {how}: {row['queries']} statements beyond "
        f"authentication ({row['auth_queries_per_connection']} per connection), "
        f"p95 {row['p95_ms']} ms, {row['bytes']:,} bytes"
    )


def poll_interval(db: str, interval: float | None) -> float | None:
    """SQLite's ``CAPTURE_POLL_INTERVAL`` in seconds (None: syncbind's default); None on
    PostgreSQL, whose readers wake on NOTIFY."""
    if db != "sqlite":
        return None
    if interval is None:
        from syncbind.settings import DEFAULTS

        return float(DEFAULTS["CAPTURE_POLL_INTERVAL"])
    return interval


def median_of(rounds: list[dict], key: str):
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarize(rounds_by_key: dict[tuple, list[dict]], keys: list[str]) -> list[dict]:
    """One row per key: medians over the rounds that did not fail; failed if any round did."""
    rows = []
    for (contender, _step), rounds in rounds_by_key.items():
        first = rounds[0]
        row = {
            k: v for k, v in first.items() if k not in keys and k not in ("errors", "failed", "log")
        }
        row["contender"] = contender
        good = [r for r in rounds if not r.get("failed")]
        for key in keys:
            row[key] = median_of(good, key)
        row["errors"] = sum(r.get("errors", 0) for r in rounds)
        row["rounds"] = [
            {k: r[k] for k in [*keys, "failed"] if r.get(k) is not None} for r in rounds
        ]
        failed = [r for r in rounds if r.get("failed")]
        if failed:
            prefix = f"{len(failed)} of {len(rounds)} rounds: " if len(rounds) > 1 else ""
            row["failed"] = prefix + failed[0]["failed"]
            row["log"] = failed[0].get("log")
        rows.append(row)
    return rows


class Run:
    def __init__(self, mode: str, work: Path, log_dir: Path | None = None) -> None:
        self.mode = mode
        self.plan = MODES[mode]
        self.work = work
        # Server logs and failure details: kept after the run (the work directory is not).
        self.log_dir = log_dir or work / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.backends = Backends(work)
        self.results: dict = {
            "throughput": [],
            "slow": [],
            "delay": [],
            "fanout": [],
            "scoped": [],
            "memory": [],
            "capture": [],
            "storm": [],
            "skipped": [],
        }
        self.sections: list[dict] = []

    def configs(self) -> list[tuple[str, str, list[str]]]:
        """(db, layer, what it measures) in the order they run, on the backends that answer.

        Memory is measured on SQLite (no database work when idle), the slow
        query on PostgreSQL (``pg_sleep``), fan-out on PostgreSQL when it is
        there, else on SQLite; the scoped fan-out on SQLite + in-memory and
        PostgreSQL + channels-redis (``SCOPED_BACKENDS``), or, when a narrow
        run has neither, where fan-out runs last. Change capture and the reconnect
        storm run on each database, with the layer ``SCOPED_BACKENDS`` pairs it
        with when that is there (with capture off, saves are announced on it).
        """
        p = self.plan
        dbs = [db for db in p.dbs if self.usable(db, "memory")]
        fanout_db = "postgres" if "postgres" in dbs else dbs[-1] if dbs else None
        configs = []
        for db in dbs:
            measures = ["throughput"]
            if db == "sqlite":
                measures.insert(0, "memory")
            if db == "postgres":
                measures += ["slow", "delay"]
            if db == fanout_db and "memory" in p.layers:
                measures.append("fanout")
            configs.append((db, "memory", measures))
        if fanout_db and "redis" in p.layers and self.usable(fanout_db, "redis"):
            configs.append((fanout_db, "redis", ["fanout"]))
        scoped = [c for c in configs if (c[0], c[1]) in SCOPED_BACKENDS]
        fanouts = [c for c in configs if "fanout" in c[2]]
        for _, _, measures in scoped or fanouts[-1:]:
            measures.append("scoped")
        for db in dbs:
            pairs = [c for c in configs if c[0] == db]
            paired = [c for c in pairs if (c[0], c[1]) in SCOPED_BACKENDS]
            (paired or pairs)[-1][2].extend(["capture", "storm"])
        if p.scenarios:
            configs = [
                (db, layer, [m for m in measures if m in p.scenarios])
                for db, layer, measures in configs
            ]
        return [config for config in configs if config[2]]

    def usable(self, db: str, layer: str) -> bool:
        why = self.backends.available(db, layer)
        if why is None:
            return True
        if services_required():
            raise RuntimeError(f"{why} (SYNCBIND_REQUIRE_SERVICES is set)")
        self.results["skipped"].append({"db": db, "layer": layer, "why": why})
        print(f"skipping {db} + {layer}: {why}", flush=True)
        return False

    def execute(self) -> dict:
        started = time.time()
        # Raised here, so that every server and load generator inherits it.
        open_files = raise_open_files()
        try:
            for db, layer, measures in self.configs():
                self.run_config(db, layer, measures)
        finally:
            self.backends.cleanup()
        self.results["meta"] = describe(self.mode, self.plan, time.time() - started)
        self.results["meta"]["sections"] = self.sections
        self.results["meta"]["log_dir"] = str(self.log_dir)
        self.results["meta"]["open_files"] = open_files
        return self.results

    def record(
        self,
        scenario: str,
        server: Server | None,
        db: str,
        layer: str,
        result: dict,
        details: str = "",
    ) -> dict:
        """``result`` as a row of ``scenario``; a failure is kept with its details and log tail.

        ``server`` is None for what no server measured (bench.capture's writes).
        """
        contender = server.contender.name if server else CAPTURE_CONTENDER
        row = {"db": db, "layer": layer, "contender": contender, **result}
        reason = verdict(row)
        if reason:
            row["failed"] = reason
            row["log"] = self.write_failure(scenario, server, row, details)
            print(f"   FAILED {scenario} {layer} {row['contender']}: {reason}", flush=True)
        return row

    def write_failure(self, scenario: str, server: Server | None, row: dict, details: str) -> str:
        """Write what is known of a failure to the log directory; its file name."""
        what = "-".join(
            str(row[k])
            for k in ("kind", "mode", "case", "connections", "subscribers", "measure", "write")
            if row.get(k) is not None
        )
        stem = "-".join(["failure", row["contender"], row["db"], row["layer"], scenario, what])
        stem = stem.rstrip("-")
        path = self.log_dir / f"{stem}.txt"
        number = 1
        while path.exists():
            number += 1
            path = self.log_dir / f"{stem}-{number}.txt"
        log = (
            f"\n-- server log ({server.log_path.name}), last {LOG_TAIL} characters --\n"
            f"{server.log_tail() or '(empty)'}\n"
            if server
            else ""
        )
        source = "load generator's" if server else "bench.capture's"
        path.write_text(
            f"{row['failed']}\n\nstep: {json.dumps({k: v for k, v in row.items() if k != 'log'})}\n"
            f"\n-- {source} stderr --\n{details.strip() or '(nothing)'}\n{log}"
        )
        return path.name

    def run_config(self, db: str, layer: str, measures: list[str]) -> None:
        shared = [m for m in measures if m not in ("scoped", "delay", "capture", "storm")]
        parts: list[tuple[list[str], Callable[[str, str], None]]] = [
            (shared, lambda db, layer: self.run_shared(db, layer, shared)),
            (["scoped"], self.run_scoped),
            (["delay"], self.run_delay),
            (["capture"], self.run_capture),
            (["storm"], self.run_storm),
        ]
        for names, run in parts:
            if not any(name in measures for name in names):
                continue
            started = time.monotonic()
            run(db, layer)
            # Where a run's wall time goes: what a smaller plan (quick mode) must cut.
            self.sections.append(
                {
                    "db": db,
                    "layer": layer,
                    "scenarios": [n for n in names if n in measures],
                    "seconds": round(time.monotonic() - started, 1),
                }
            )

    def run_shared(self, db: str, layer: str, measures: list[str]) -> None:
        """The scenarios whose servers share the run's main database."""
        data = dict(self.backends.prepare(db, max(self.plan.scoped_subscribers)))
        data["fanout_category"] = data["category_ids"][0]
        # The first row of that category: on its first page, so its save changes the page.
        data["fanout_item"] = data["item_ids"][0]
        names = set()
        if "throughput" in measures:
            names.update(REQUEST_CONTENDERS)
        if "memory" in measures:
            names.update(MEMORY_CONTENDERS)
        if "slow" in measures:
            names.update(SLOW_CONTENDERS)
        if "fanout" in measures:
            names.update(FANOUT_CONTENDERS)
        env = self.backends.env(db, layer)
        order = [
            n
            for n in CONTENDERS
            if n in names and (not self.plan.contenders or n in self.plan.contenders)
        ]
        if order:
            print(f"== {db} + {layer} layer: {', '.join(order)}", flush=True)
        servers = {name: Server(name, env, self.log_dir) for name in order}
        try:
            for name, server in servers.items():
                if not server.wait_ready():
                    print(f"   {name}: {server.failed} (log: {server.log_path})", flush=True)
            if "memory" in measures:
                # First, on fresh servers.
                for name in (n for n in MEMORY_CONTENDERS if n in servers):
                    step = {
                        "type": "memory",
                        "connections": self.plan.memory_connections,
                        "settle": self.plan.memory_settle,
                    }
                    [(result, details)] = drive(servers[name], data, [step])
                    row = self.record("memory", servers[name], db, layer, result, details)
                    self.results["memory"].append(row)
                    if not row.get("failed"):
                        print(
                            f"   memory {name}: {row['per_connection_bytes'] / 1024:.1f} KiB/conn",
                            flush=True,
                        )
            if "throughput" in measures or "slow" in measures:
                self.run_requests(servers, data, db, layer, measures)
            if "fanout" in measures:
                self.run_fanout(servers, data, db, layer)
        finally:
            for server in servers.values():
                server.stop()

    def run_requests(self, servers, data, db, layer, measures) -> None:
        p = self.plan
        by_key: dict[str, dict[tuple, list[dict]]] = {"throughput": {}, "slow": {}}
        for round_no in range(p.rounds):
            for name, server in servers.items():
                steps = []
                if "throughput" in measures and name in REQUEST_CONTENDERS:
                    steps += [
                        {
                            "type": "throughput",
                            "kind": kind,
                            "connections": c,
                            "duration": p.duration,
                            "warmup": p.warmup,
                        }
                        for kind in ("retrieve", "list")
                        for c in p.connections
                    ]
                if "slow" in measures and name in SLOW_CONTENDERS:
                    steps.append(
                        {
                            "type": "throughput",
                            "kind": "slow",
                            "connections": p.slow_connections,
                            "duration": p.duration,
                            "warmup": p.warmup,
                        }
                    )
                if not steps:
                    continue
                for result, details in drive(server, data, steps):
                    scenario = "slow" if result["kind"] == "slow" else "throughput"
                    row = self.record(scenario, server, db, layer, result, details)
                    key = (name, (row["kind"], row["connections"]))
                    by_key[scenario].setdefault(key, []).append(row)
                print(f"   round {round_no + 1}/{p.rounds} {name}: {len(steps)} steps", flush=True)
        for scenario, rounds in by_key.items():
            for row in summarize(rounds, ["rate", "p50_ms", "p99_ms", "cpu_ms", "messages"]):
                self.results[scenario].append(row)

    def run_delay(self, db: str, layer: str) -> None:
        """Requests whose every statement waits ``delay_seconds`` (bench.app.delay), on
        servers of their own: retrieve and list at ``delay_connections``, rounds interleaved."""
        p = self.plan
        data = dict(self.backends.prepare(db, max(p.scoped_subscribers)))
        env = {**self.backends.env(db, layer), "BENCH_QUERY_DELAY": repr(p.delay_seconds)}
        order = [
            n for n in DELAY_CONTENDERS if not self.plan.contenders or n in self.plan.contenders
        ]
        print(f"== {db} + {layer} layer, {p.delay_seconds * 1000:g} ms per query", flush=True)
        servers = {name: Server(name, env, self.log_dir, "delay") for name in order}
        rounds: dict[tuple, list[dict]] = {}
        try:
            for name, server in servers.items():
                if not server.wait_ready():
                    print(f"   {name}: {server.failed} (log: {server.log_path})", flush=True)
            for round_no in range(p.rounds):
                for name, server in servers.items():
                    steps = [
                        {
                            "type": "throughput",
                            "kind": kind,
                            "connections": p.delay_connections,
                            "duration": p.duration,
                            "warmup": p.warmup,
                            "delay_ms": p.delay_seconds * 1000,
                        }
                        for kind in ("retrieve", "list")
                    ]
                    for result, details in drive(server, data, steps):
                        row = self.record("delay", server, db, layer, result, details)
                        rounds.setdefault((name, row["kind"]), []).append(row)
                    print(f"   delay round {round_no + 1}/{p.rounds} {name}", flush=True)
        finally:
            for server in servers.values():
                server.stop()
        keys = ["rate", "p50_ms", "p99_ms", "cpu_ms", "messages"]
        self.results["delay"] += summarize(rounds, keys)

    def run_fanout(self, servers, data, db, layer) -> None:
        p = self.plan
        for n in p.fanout_subscribers:
            for name in (n for n in FANOUT_CONTENDERS if n in servers):
                steps = [
                    {
                        "type": "fanout",
                        "mode": mode,
                        "subscribers": n,
                        "saves": p.fanout_saves,
                        "settle": p.fanout_settle,
                    }
                    for mode in ("row", "page")
                ]
                for result, details in drive(servers[name], data, steps):
                    row = self.record("fanout", servers[name], db, layer, result, details)
                    self.results["fanout"].append(row)
                    if not row.get("failed"):
                        print(
                            f"   fanout {layer} {name} {row['mode']} N={n}: "
                            f"{row['latency_last_ms']} ms, {row['queries_per_save']} queries",
                            flush=True,
                        )

    def run_scoped(self, db: str, layer: str) -> None:
        """Each contender on a server process of its own (SCOPED_USER_REFRESH), one after
        the other: at 10,000 connections, nothing else should share the machine (so after
        the shared servers are gone: their idle wake-ups would share it)."""
        data = self.backends.prepare(db, max(self.plan.scoped_subscribers))
        env = {
            **self.backends.env(db, layer),
            "BENCH_USER_REFRESH_INTERVAL": str(SCOPED_USER_REFRESH),
            # Each statement's text, for the costliest save of each case (its row's
            # ``statements``).
            "BENCH_SQL_DETAIL": "1",
        }
        for name in SCOPED_CONTENDERS:
            if self.plan.contenders and name not in self.plan.contenders:
                continue
            server = Server(name, env, self.log_dir, "scoped")
            try:
                if not server.wait_ready():
                    print(f"   {name}: {server.failed} (log: {server.log_path})", flush=True)
                self.scoped_steps(server, data, db, layer)
            finally:
                server.stop()

    def scoped_steps(self, server: Server, data: dict, db: str, layer: str) -> None:
        p = self.plan
        name = server.contender.name
        # One load generator per contender: it keeps the users' connections between steps.
        steps = [
            {
                "type": "scoped",
                "case": case,
                "subscribers": n,
                "saves": p.scoped_saves,
                "settle": p.scoped_settle,
                "reuse": p.scoped_reuse,
            }
            for n in p.scoped_subscribers
            for case in SCOPED_CASES
            if case in CONTENDERS[name].scoped_cases and self.scoped_takes(name, n)
        ]
        for result, details in drive(server, data, steps):
            row = self.record("scoped", server, db, layer, result, details)
            self.results["scoped"].append(row)
            if not row.get("failed"):
                print(
                    f"   scoped {db}+{layer} {name} {row['case']} N={row['subscribers']}: "
                    f"{row['latency_last_ms']} ms, {row['queries_per_save']} queries, "
                    f"{row['pushes_per_save']} pushes ({row['seconds']} s)",
                    flush=True,
                )

    def scoped_takes(self, name: str, n: int) -> bool:
        """Whether contender ``name`` runs at N = ``n``: past SCOPED_PEER_LIMIT only
        syncbind's do."""
        return n <= SCOPED_PEER_LIMIT or name.startswith("syncbind")

    def run_capture(self, db: str, layer: str) -> None:
        """Change capture: writes timed with the triggers and without (bench.capture), then
        raw SQL updates from the load generator's own connection, timed from commit to push."""
        p = self.plan
        print(f"== {db} + {layer} layer: change capture", flush=True)
        intervals = p.capture_poll_intervals if db == "sqlite" else [None]
        prepared, details = self.backends.prepare_capture(db, layer, p)
        if prepared is None:
            lines = details.strip().splitlines()
            reason = lines[0] + (f": {lines[-1][:120]}" if len(lines) > 1 else "")
            # Nothing is skipped silently: every row this database would have had fails.
            results = [
                {"type": "capture", "measure": "write", "write": kind}
                for kind in ("save", "update")
            ]
            results += [
                {"type": "capture", "measure": "latency", "poll_interval": poll_interval(db, i)}
                for i in intervals
            ]
            for result in results:
                row = {**result, "failed": reason}
                self.results["capture"].append(
                    self.record("capture", None, db, layer, row, details)
                )
            return
        for result in prepared["writes"]:
            row = self.record("capture", None, db, layer, result, details)
            self.results["capture"].append(row)
            print(
                f"   capture {db} {row['write']}: on {row['on_ms']} ms, off {row['off_ms']} ms"
                f" ({row['ratio']}x)",
                flush=True,
            )
        data = {
            "session": prepared["session"],
            "item_ids": [prepared["item"]],
            "capture": self.backends.capture_target(db, prepared),
        }
        env = self.backends.env(db, layer, "capture")
        for interval in intervals:
            server_env = dict(env)
            tag = "capture"
            if interval is not None:
                server_env["BENCH_CAPTURE_POLL_INTERVAL"] = repr(interval)
                tag += f"-poll-{interval:g}"
            server = Server(CAPTURE_CONTENDER, server_env, self.log_dir, tag)
            try:
                if not server.wait_ready():
                    print(f"   {tag}: {server.failed} (log: {server.log_path})", flush=True)
                step = {
                    "type": "capture",
                    "measure": "latency",
                    "samples": p.capture_samples,
                    "gap": p.capture_gap,
                    "idle": p.capture_idle,
                }
                [(result, details)] = drive(server, data, [step])
                result["poll_interval"] = poll_interval(db, interval)
                result["poll_default"] = db == "sqlite" and interval is None
                row = self.record("capture", server, db, layer, result, details)
                self.results["capture"].append(row)
                if not row.get("failed"):
                    print(
                        f"   capture {db} latency (poll {row['poll_interval']}): "
                        f"p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms",
                        flush=True,
                    )
            finally:
                server.stop()

    def run_storm(self, db: str, layer: str) -> None:
        """The resync, then the reconnect storm, resuming and refetching (see bench.client):
        one server process takes the subscriptions and resyncs; it is stopped, and a new
        one on its port takes the resuming storm; then another, the refetching one."""
        p = self.plan
        print(f"== {db} + {layer} layer: reconnect storm", flush=True)
        base = {
            "type": "storm",
            "subscribers": p.storm_subscribers,
            "pages": p.storm_pages,
            "settle": p.storm_settle,
        }
        steps = [
            [
                {**base, "reads": reads, "phase": "subscribe", "measure": "resync"},
                {**base, "reads": reads, "phase": "reconnect", "measure": "storm", "resume": True},
                {**base, "reads": reads, "phase": "reconnect", "measure": "storm", "resume": False},
            ]
            for reads in p.storm_reads
        ]
        if p.storm_two_workers:
            for group in steps:
                group.append({**group[1], "workers": 2})
        prepared, details = self.backends.prepare_storm(db, layer)
        if prepared is None:
            lines = details.strip().splitlines()
            reason = lines[0] + (f": {lines[-1][:120]}" if len(lines) > 1 else "")
            for step in (step for group in steps for step in group):
                row = self.record("storm", None, db, layer, {**step, "failed": reason}, details)
                self.results["storm"].append(row)
            return
        data = {
            "session": prepared["session"],
            "item_ids": prepared["item_ids"],
            "storm": {"categories": prepared["category_ids"][: p.storm_pages]},
        }
        for group in steps:
            self.storm_servers(db, layer, data, group)
        if p.storm_handshakes:
            self.storm_handshakes(db, layer, data, base)

    def storm_servers(self, db: str, layer: str, data: dict, steps: list[dict]) -> None:
        """The steps of one kind of read, each on a server process of its own, on one port."""
        # Each statement's text is tallied: the rows say what the server ran.
        env = {**self.backends.env(db, layer, "storm"), "BENCH_SQL_DETAIL": "1"}
        port = None
        versions = None
        for number, step in enumerate(steps, 1):
            tag = f"storm-{step['reads']}-{number}"
            workers = step.get("workers", 1)
            server = Server(STORM_CONTENDER, env, self.log_dir, tag, port, workers)
            port = server.port
            try:
                if not server.wait_ready():
                    print(f"   storm: {server.failed} (log: {server.log_path})", flush=True)
                if step["phase"] == "reconnect" and step["resume"]:
                    if versions is None:
                        step = {**step, "failed": "no versions: the subscriptions failed"}
                    else:
                        step = {**step, "versions": versions}
                if step.get("failed"):
                    result, details = step, ""
                else:
                    [(result, details)] = drive(server, data, [step])
            finally:
                server.stop()
            if step["phase"] == "subscribe" and not result.get("failed"):
                versions = result["versions"]
            result = {k: v for k, v in result.items() if k != "versions"}
            row = self.record("storm", server, db, layer, result, details)
            self.results["storm"].append(row)
            if not row.get("failed"):
                print(f"   storm {db}: {storm_summary(row)}", flush=True)

    def storm_handshakes(self, db: str, layer: str, data: dict, base: dict) -> None:
        """The handshakes alone, all at once, each kind on a server of its own: syncbind
        with its auth stack (the user read in its workers) and with Channels' (on asgiref's
        one thread), and the hand-written consumer (Channels' stack, nothing else)."""
        for contender, stack in HANDSHAKE_SERVERS:
            env = {**self.backends.env(db, layer, "storm"), "BENCH_AUTH_STACK": stack}
            server = Server(contender, env, self.log_dir, f"handshake-{stack}")
            step = {**base, "phase": "handshake", "measure": "handshake", "stack": stack}
            try:
                if not server.wait_ready():
                    print(f"   handshakes: {server.failed} (log: {server.log_path})", flush=True)
                [(result, details)] = drive(server, data, [step])
            finally:
                server.stop()
            row = self.record("storm", server, db, layer, result, details)
            self.results["storm"].append(row)
            if not row.get("failed"):
                print(f"   storm {db}: {storm_summary(row)}", flush=True)

    def failures(self) -> list[dict]:
        return [
            row
            for rows in self.results.values()
            if isinstance(rows, list)
            for row in rows
            if row.get("failed")
        ]


# -- the record ---------------------------------------------------------------

VERSIONED = [
    "syncbind",
    "Django",
    "channels",
    "asgiref",
    "channels-redis",
    "redis",
    "djangorestframework",
    "djangochannelsrestframework",
    "channels-binding",
    "uvicorn",
    "websockets",
    "psycopg",
    "uvloop",
]


def describe(mode: str, plan: Plan, seconds: float) -> dict:
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "mode": mode,
        "command": "make bench" + (" QUICK=1" if mode == "quick" else ""),
        "seconds": round(seconds, 1),
        "plan": plan.__dict__,
        "machine": machine(),
        "python": platform.python_version(),
        "versions": versions,
        "postgres": server_version(["psql", "--version"]),
        "redis": server_version(["redis-server", "--version"]),
    }


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory, "os": platform.platform()}


def server_version(command: list[str]) -> str | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def merge(old: dict, new: dict, scenarios: list[str]) -> dict:
    """``old`` with the rows of ``scenarios`` taken from ``new``; its meta keeps ``new``'s
    under ``merged``, saying which scenarios were measured when (and on what)."""
    merged = {**old, **{scenario: new[scenario] for scenario in scenarios}}
    skipped = old.get("skipped", [])
    merged["skipped"] = skipped + [s for s in new.get("skipped", []) if s not in skipped]
    meta = dict(old["meta"])
    kept = [m for m in meta.get("merged", []) if not set(m["scenarios"]) <= set(scenarios)]
    meta["merged"] = [*kept, {**new["meta"], "scenarios": list(scenarios)}]
    merged["meta"] = meta
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="one round, short steps (under 10 minutes on 2 cores)"
    )
    size.add_argument("--smoke", action="store_true", help="the smallest run, to check the harness")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where latest.json and the charts go"
    )
    parser.add_argument("--markdown", type=Path, default=None, help="BENCHMARKS.md to write")
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="server logs and failure details (default: OUT/logs)",
    )
    parser.add_argument(
        "--db", action="append", choices=["sqlite", "postgres"], help="only these databases"
    )
    parser.add_argument(
        "--layer", action="append", choices=["memory", "redis"], help="only these layers"
    )
    parser.add_argument(
        "--contender", action="append", choices=list(CONTENDERS), help="only these contenders"
    )
    parser.add_argument(
        "--scenario", action="append", choices=SCENARIOS, help="only these scenarios"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other scenarios of OUT/latest.json: replace only the rows of those measured",
    )
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.db:
        MODES[mode].dbs = args.db
    if args.layer:
        MODES[mode].layers = args.layer
    if args.contender:
        MODES[mode].contenders = args.contender
    if args.scenario:
        MODES[mode].scenarios = args.scenario
    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = args.log_dir or args.out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    # This run's logs only: the previous run's go.
    for old in [*log_dir.glob("server-*.log"), *log_dir.glob("failure-*.txt")]:
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="syncbind-bench-") as work:
        run = Run(mode, Path(work), log_dir)
        results = run.execute()
    json_path = args.out / "latest.json"
    if args.merge and json_path.exists():
        command = "python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv)
        results["meta"]["command"] = command
        measured = MODES[mode].scenarios or SCENARIOS
        results = merge(json.loads(json_path.read_text()), results, measured)
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    from bench import report

    markdown = args.markdown or (
        ROOT / "BENCHMARKS.md" if args.out == RESULTS else args.out / "BENCHMARKS.md"
    )
    report.render(results, markdown, args.out)
    print(f"wrote {json_path}, {markdown} and the charts in {args.out}")
    failures = run.failures()
    for row in failures:
        print(f"failed: {row['contender']} ({row['db']} + {row['layer']}): {row['failed']}")
    if failures:
        print(f"{len(failures)} failed measurement(s); details in {log_dir}")
    # A peer's failure is recorded and the run goes on; syncbind's own fails the run.
    ours = [row for row in failures if row["contender"].startswith("syncbind")]
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main())
