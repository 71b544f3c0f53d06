"""The benchmark harness (bench/) runs, end to end, in its smallest configuration.

Benchmarks are not tests: nothing here looks at a timing. This checks that
every contender's server starts, answers every kind of step correctly, and
that the run is written out (JSON, BENCHMARKS.md, charts), so that
``make bench`` cannot rot between releases.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from bench.run import FANOUT_CONTENDERS, MEMORY_CONTENDERS, REQUEST_CONTENDERS, SLOW_CONTENDERS

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run on this test run's backends: SQLite + in-memory, or PostgreSQL + both layers."""
    out = tmp_path_factory.mktemp("bench")
    db = os.environ.get("SYNCBIND_TEST_DB", "sqlite")
    layers = ["memory", "redis"] if os.environ.get("SYNCBIND_TEST_LAYER") == "redis" else ["memory"]
    command = [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out), "--db", db]
    for layer in layers:
        command += ["--layer", layer]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return db, layers, out, json.loads((out / "latest.json").read_text())


@pytest.mark.timeout(600)
def test_every_contender_answers_every_request_scenario(smoke_run):
    db, _, _, results = smoke_run
    rows = {(r["contender"], r["kind"]): r for r in results["throughput"]}
    for name in REQUEST_CONTENDERS:
        for kind in ("retrieve", "list"):
            row = rows[(name, kind)]
            assert row["db"] == db
            assert row["messages"] > 0, (name, kind)
            assert row["errors"] == 0, (name, kind)
    if db == "postgres":
        slow = {r["contender"]: r for r in results["slow"]}
        assert sorted(slow) == sorted(SLOW_CONTENDERS)
        assert all(r["messages"] > 0 and r["errors"] == 0 for r in slow.values())
    else:
        assert results["slow"] == []


@pytest.mark.timeout(600)
def test_fanout_reaches_every_subscriber_and_counts_queries(smoke_run):
    _, layers, _, results = smoke_run
    seen = {(r["layer"], r["contender"], r["mode"]): r for r in results["fanout"]}
    assert set(seen) == {
        (layer, c, m) for layer in layers for c in FANOUT_CONTENDERS for m in ("row", "page")
    }
    for row in seen.values():
        assert row["missing"] == 0 and row["errors"] == 0, row
        # Counted in the server: at least the save's own SELECT and UPDATE.
        assert row["queries_per_save"] >= 2, row
    # syncbind's row subscription: the save (2) and one evaluation of the row (1).
    assert seen[(layers[0], "syncbind-sync", "row")]["queries_per_save"] == 3


@pytest.mark.timeout(600)
def test_memory_is_measured_on_sqlite(smoke_run):
    db, _, _, results = smoke_run
    if db != "sqlite":
        assert results["memory"] == []
        return
    memory = {r["contender"]: r for r in results["memory"]}
    assert sorted(memory) == sorted(MEMORY_CONTENDERS)
    for row in memory.values():
        assert row["open"] == row["connections"] and row["rss_after"] > 0


@pytest.mark.timeout(600)
def test_the_run_is_written_out(smoke_run):
    _, _, out, results = smoke_run
    markdown = (out / "BENCHMARKS.md").read_text()
    assert "## Targets" in markdown and "## 3. Fan-out" in markdown
    assert results["meta"]["versions"]["djangochannelsrestframework"] == "1.3.0"
    for chart in ("throughput.png", "fanout.png"):
        assert (out / chart).read_bytes().startswith(b"\x89PNG")
        assert f"]({chart})" in markdown


def result(contender, rate, **extra):
    return {"db": "postgres", "contender": contender, "rate": rate, **extra}


def test_targets_are_judged_from_the_numbers():
    results = {
        "throughput": [
            result("syncbind-sync", 300, kind="retrieve", connections=50),
            result("dcrf", 100, kind="retrieve", connections=50),
            result("echo", 1000, kind="retrieve", connections=50),
            result("syncbind-sync", 140, kind="list", connections=50),
            result("dcrf", 100, kind="list", connections=50),
        ],
        "slow": [
            result("syncbind-sync", 400, kind="slow", connections=32),
            result("dcrf", 48, kind="slow", connections=32),
            result("plain", 50, kind="slow", connections=32),
        ],
        "fanout": [
            {
                "layer": "memory",
                "contender": "syncbind-sync",
                "mode": "row",
                "subscribers": 10,
                "queries_per_save": 3,
                "latency_last_ms": 5,
            },
            {
                "layer": "memory",
                "contender": "syncbind-sync",
                "mode": "row",
                "subscribers": 1000,
                "queries_per_save": 3,
                "latency_last_ms": 40,
            },
            {
                "layer": "memory",
                "contender": "dcrf-observer",
                "mode": "row",
                "subscribers": 1000,
                "queries_per_save": 1002,
                "latency_last_ms": 100,
            },
        ],
        "memory": [
            {"contender": "syncbind-sync", "per_connection_bytes": 30_000},
            {"contender": "dcrf", "per_connection_bytes": 20_000},
        ],
    }
    judged = {target: met for target, _, met in report.targets(results)}
    assert judged == {
        "retrieve throughput ≥ 1.5× DCRF at C = 50": True,
        "list throughput ≥ 1.5× DCRF at C = 50": False,
        "retrieve throughput ≥ 50% of the echo ceiling at C = 50": False,
        "slow queries ≥ 8× the thread-sensitive consumers": True,
        "fan-out: queries per save do not grow with N": True,
        "fan-out: last-subscriber latency at N = 1,000 ≤ ⅓ of DCRF's instance subscription": False,
        "memory per idle connection ≤ DCRF's": False,
    }
