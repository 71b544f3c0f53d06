"""Render a run's results (``results/latest.json``) as BENCHMARKS.md and PNG charts.

``python -m bench.report [results.json]`` renders again without measuring.
The tables and the targets are computed from the JSON; the analysis at the
end is ``bench/analysis.md``, written by hand after reading a full run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.contenders import CONTENDERS

HERE = Path(__file__).resolve().parent
SYNCBIND = "syncbind-sync"
# Shown beside the default in the targets; the targets are judged on the default.
ALL_RUNNING = "syncbind-sync-16"
# The scoped fan-out's reference peer, and its cases in the order they are shown.
SCOPED_PEER = "dcrf-observer"
SCOPED_CASES = {
    "row": "(a) same row",
    "page": "(b) same page",
    "own_row": "(c) own row",
    "own_page": "(d) own page",
}
# Queries per save the scoped fan-out's targets allow at N subscribers.
SCOPED_QUERY_LIMITS = {
    "row": lambda n: 5 + n / 100,
    "page": lambda n: 5 + n / 100,
    "own_row": lambda n: 5,
    "own_page": lambda n: 5,
}
SCOPED_LATENCY_LIMIT_MS = 300
# At the largest N (issue 26): the last push, and queries per save no more than at N = 1,000.
SCOPED_LARGE_N = 10_000
SCOPED_LARGE_LATENCY_LIMIT_MS = 1500
SCOPED_FLAT_FROM = 1000
# Server CPU per message against the hand-written consumer's, per database (issue 26).
CPU_LIMITS = {"sqlite": 1.0, "postgres": 1.1}
# Queries that wait (section 2): throughput against DCRF's.
DELAY_LIMIT = 3.0
# The reconnect storm's target (issue 23), for a resuming storm of 1,000 clients.
STORM_QUERY_LIMIT = 20
STORM_P95_LIMIT_MS = 2000
STORM_TARGET_N = 1000
STORM_READS = {
    "pages": "pages of the whole list",
    "filters": "one category's page each",
}


def label(name: str) -> str:
    return CONTENDERS[name].label


def fmt(value, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def ratio(value, base) -> str:
    if not value or not base:
        return "–"
    return f"{value / base:.2f}×"


def find(rows: list[dict], **match) -> dict | None:
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def failed(row: dict | None) -> str | None:
    """Why the measurement of ``row`` failed, or None (also for a row that is absent)."""
    return row.get("failed") if row else None


def failed_cell(row: dict) -> str:
    return "**failed**: " + row["failed"].replace("|", "\\|").replace("\n", " ")


def not_judged(ours: dict | None, *peers: dict | None) -> str | None:
    """Why a target cannot be judged from these rows, or None."""
    if failed(ours):
        return "not judged (syncbind failed)"
    if any(failed(peer) for peer in peers):
        return "not judged (peer failed)"
    return None


def met_of(met: list[bool], unjudged: bool) -> bool | None:
    """A target is met when every part judged is and none was left unjudged."""
    if False in met:
        return False
    if unjudged or not met:
        return None
    return True


def backend(db: str, layer: str) -> str:
    name = "PostgreSQL" if db == "postgres" else "SQLite"
    return f"{name} + {'channels-redis' if layer == 'redis' else 'in-memory'} layer"


def scoped_backends(rows: list[dict]) -> list[tuple[str, str]]:
    """The scoped fan-out's (db, layer) pairs: SQLite first."""
    return sorted({(r["db"], r["layer"]) for r in rows}, key=lambda b: (b[0] != "sqlite", b))


# -- targets ------------------------------------------------------------------


def targets(results: dict) -> list[tuple[str, str, bool | None]]:
    """(target, what was measured, met) for each of the project's targets."""
    out = []
    tp = results["throughput"]
    dbs = sorted({r["db"] for r in tp})
    top = max((r["connections"] for r in tp), default=None)

    for kind in ("retrieve", "list"):
        measured, met, unjudged = [], [], False
        for db in dbs:
            plain = find(tp, db=db, contender="plain", kind=kind, connections=top)
            for name, short in ((SYNCBIND, "sync"), ("syncbind-async", "async")):
                ours = find(tp, db=db, contender=name, kind=kind, connections=top)
                if not (ours and plain):
                    continue
                if why := not_judged(ours, plain):
                    measured.append(f"{db} {short}: {why}")
                    unjudged = True
                elif ours.get("cpu_ms") and plain.get("cpu_ms"):
                    r = ours["cpu_ms"] / plain["cpu_ms"]
                    measured.append(f"{db} {short}: {r:.2f}× (≤ {CPU_LIMITS[db]:.1f}×)")
                    met.append(r <= CPU_LIMITS[db])
        out.append(
            (
                f"{kind} server CPU per message ≤ 1.0× the hand-written consumer's on SQLite, "
                f"≤ 1.1× on PostgreSQL, at C = {top}",
                ", ".join(measured) or "not measured",
                met_of(met, unjudged),
            )
        )

    measured, met, unjudged = [], [], False
    for db in dbs:
        ours = find(tp, db=db, contender=SYNCBIND, kind="retrieve", connections=top)
        echo = find(tp, db=db, contender="echo", kind="retrieve", connections=top)
        if not (ours and echo):
            continue
        if why := not_judged(ours, echo):
            measured.append(f"{db}: {why}")
            unjudged = True
        elif echo["rate"]:
            measured.append(f"{db}: {ours['rate'] / echo['rate']:.0%}")
    # Information only: no consumer that reads the database can approach the echo.
    out.append(
        (
            f"retrieve throughput against the echo ceiling at C = {top} (information, no target)",
            ", ".join(measured) or "not measured",
            None,
        )
    )

    slow = results["slow"]
    ours = find(slow, contender=SYNCBIND)
    measured, met, unjudged = [], [], False
    for peer in ("dcrf", "plain"):
        theirs = find(slow, contender=peer)
        if not (ours and theirs):
            continue
        if why := not_judged(ours, theirs):
            measured.append(f"{label(peer)}: {why}")
            unjudged = True
        elif theirs["rate"]:
            r = ours["rate"] / theirs["rate"]
            measured.append(f"{r:.1f}× {label(peer)}")
            met.append(r >= 8)
    out.append(
        (
            "slow queries ≥ 8× the thread-sensitive consumers",
            ", ".join(measured) or "not measured",
            met_of(met, unjudged),
        )
    )

    out.append(delay_target(results.get("delay", [])))

    fan = results["fanout"]
    measured, met, unjudged = [], [], False
    for layer in sorted({r["layer"] for r in fan}):
        for mode in ("row", "page"):
            rows = sorted(
                (
                    r
                    for r in fan
                    if r["layer"] == layer and r["mode"] == mode and r["contender"] == SYNCBIND
                ),
                key=lambda r: r["subscribers"],
            )
            if any(failed(r) for r in rows):
                measured.append(f"{layer} {mode}: not judged (syncbind failed)")
                unjudged = True
            elif len(rows) >= 2:
                q = [r["queries_per_save"] for r in rows]
                measured.append(f"{layer} {mode}: {' → '.join(fmt(x) for x in q)}")
                met.append(q[-1] <= q[0])
    out.append(
        (
            "fan-out: queries per save do not grow with N",
            "; ".join(measured) or "not measured",
            met_of(met, unjudged),
        )
    )

    measured, met, unjudged = [], [], False
    for layer in sorted({r["layer"] for r in fan}):
        n = max((r["subscribers"] for r in fan if r["layer"] == layer), default=None)
        ours = find(fan, layer=layer, mode="row", contender=SYNCBIND, subscribers=n)
        theirs = find(fan, layer=layer, mode="row", contender="dcrf-observer", subscribers=n)
        if not (ours and theirs):
            continue
        if why := not_judged(ours, theirs):
            measured.append(f"{layer}, N = {n}: {why}")
            unjudged = True
        elif ours["latency_last_ms"] and theirs["latency_last_ms"]:
            r = ours["latency_last_ms"] / theirs["latency_last_ms"]
            measured.append(f"{layer}, N = {n}: {r:.2f} of DCRF's")
            met.append(r <= 1 / 3)
    out.append(
        (
            "fan-out: last-subscriber latency at N = 1,000 ≤ ⅓ of DCRF's instance subscription",
            "; ".join(measured) or "not measured",
            met_of(met, unjudged),
        )
    )

    out += scoped_targets(results.get("scoped", []))
    out += storm_targets(results.get("storm", []))

    mem = results["memory"]
    ours = find(mem, contender=SYNCBIND)
    theirs = find(mem, contender="dcrf")
    if ours and theirs and (why := not_judged(ours, theirs)):
        measured, met = why, None
    elif ours and theirs:
        measured = f"{ours['per_connection_bytes'] / 1024:.1f} KiB against {theirs['per_connection_bytes'] / 1024:.1f} KiB"
        met = ours["per_connection_bytes"] <= theirs["per_connection_bytes"]
    else:
        measured, met = "not measured", None
    out.append(("memory per idle connection ≤ DCRF's", measured, met))
    return out


def delay_target(delay: list[dict]) -> tuple[str, str, bool | None]:
    """Queries that wait: syncbind's throughput against DCRF's, retrieve and list."""
    measured, met, unjudged = [], [], False
    for row in sorted(delay, key=lambda r: r["kind"], reverse=True):
        if row["contender"] != SYNCBIND:
            continue
        theirs = find(delay, contender="dcrf", kind=row["kind"], db=row["db"])
        if not theirs:
            continue
        if why := not_judged(row, theirs):
            measured.append(f"{row['kind']}: {why}")
            unjudged = True
        elif theirs["rate"]:
            r = row["rate"] / theirs["rate"]
            measured.append(f"{row['kind']}: {r:.1f}×")
            met.append(r >= DELAY_LIMIT)
    wait = f"{delay[0]['delay_ms']:g} ms" if delay else "2 ms"
    connections = delay[0]["connections"] if delay else 50
    return (
        f"every query waiting {wait}: throughput ≥ {DELAY_LIMIT:g}× DCRF's at C = {connections}",
        ", ".join(measured) or "not measured",
        met_of(met, unjudged),
    )


def scoped_targets(scoped: list[dict]) -> list[tuple[str, str, bool | None]]:
    """The scoped fan-out's targets, judged on syncbind's rows alone."""
    out = []
    ours_all = [r for r in scoped if r["contender"] == SYNCBIND]
    ns = " → ".join(f"{n:,}" for n in sorted({r["subscribers"] for r in ours_all}))
    for cases, target in [
        (("row", "page"), "scoped fan-out: queries per save ≤ 5 + N/100 for (a) and (b)"),
        (
            ("own_row", "own_page"),
            "scoped fan-out: queries per save ≤ 5 for (c) and (d), whatever N",
        ),
    ]:
        measured, met, unjudged = [], [], False
        for db, layer in scoped_backends(ours_all):
            parts = []
            for case in cases:
                rows = sorted(
                    (r for r in ours_all if (r["db"], r["layer"], r["case"]) == (db, layer, case)),
                    key=lambda r: r["subscribers"],
                )
                if any(failed(r) for r in rows):
                    parts.append(f"{SCOPED_CASES[case][:3]} not judged (syncbind failed)")
                    unjudged = True
                elif rows:
                    limit = SCOPED_QUERY_LIMITS[case]
                    queries = " → ".join(fmt(r["queries_per_save"]) for r in rows)
                    parts.append(f"{SCOPED_CASES[case][:3]} {queries}")
                    met.append(all(r["queries_per_save"] <= limit(r["subscribers"]) for r in rows))
            if parts:
                measured.append(f"{db}/{layer}: {', '.join(parts)}")
        text = "; ".join(measured)
        out.append((target, f"N = {ns}: {text}" if text else "not measured", met_of(met, unjudged)))

    out.append(scoped_latency_target(scoped, 1000, SCOPED_LATENCY_LIMIT_MS))
    out.append(scoped_latency_target(scoped, SCOPED_LARGE_N, SCOPED_LARGE_LATENCY_LIMIT_MS))
    out.append(scoped_flat_target(ours_all))
    return out


def scoped_latency_target(scoped: list[dict], n: int, limit_ms: float) -> tuple:
    """The last push at N = ``n`` within ``limit_ms``, for every case and backend."""
    measured, met, unjudged = [], [], False
    for db, layer in scoped_backends(scoped):
        ours = [
            r
            for r in scoped
            if (r["db"], r["layer"], r["subscribers"]) == (db, layer, n)
            and r["contender"] == SYNCBIND
        ]
        if not ours:
            continue
        parts = []
        for case, name in SCOPED_CASES.items():
            row = find(ours, case=case, subscribers=n)
            if failed(row):
                parts.append(f"{name[:3]} not judged (syncbind failed)")
                unjudged = True
            elif row:
                parts.append(f"{name[:3]} {fmt(row['latency_last_ms'])} ms")
                met.append(
                    row["latency_last_ms"] is not None and row["latency_last_ms"] <= limit_ms
                )
        measured.append(f"{db}/{layer}, N = {n:,}: {', '.join(parts)}")
    return (
        f"scoped fan-out: last push at N = {n:,} ≤ {limit_ms / 1000:g} s for (a)–(d)",
        "; ".join(measured) or "not measured",
        met_of(met, unjudged),
    )


def scoped_flat_target(ours_all: list[dict]) -> tuple:
    """Queries per save at the largest N no more than at N = SCOPED_FLAT_FROM, each case."""
    low, high = SCOPED_FLAT_FROM, SCOPED_LARGE_N
    measured, met, unjudged = [], [], False
    for db, layer in scoped_backends(ours_all):
        parts = []
        for case, name in SCOPED_CASES.items():
            pair = [
                find(ours_all, db=db, layer=layer, case=case, subscribers=n) for n in (low, high)
            ]
            if any(failed(row) for row in pair):
                parts.append(f"{name[:3]} not judged (syncbind failed)")
                unjudged = True
            elif all(pair):
                first, last = (row["queries_per_save"] for row in pair)  # type: ignore[index]
                parts.append(f"{name[:3]} {fmt(first)} → {fmt(last)}")
                met.append(last <= first)
        if parts:
            measured.append(f"{db}/{layer}: {', '.join(parts)}")
    return (
        f"scoped fan-out: queries per save flat from N = {low:,} to {high:,}",
        "; ".join(measured) or "not measured",
        met_of(met, unjudged),
    )


def storm_targets(storm: list[dict]) -> list[tuple[str, str, bool | None]]:
    """The resuming storm's targets, on each backend and kind of read."""
    resumes = [
        r
        for r in storm
        if r.get("measure") == "storm" and r.get("resume") and r.get("workers", 1) == 1
    ]
    n = max((r["subscribers"] for r in resumes), default=None)
    out = []
    for key, target, limit, text in [
        (
            "queries",
            f"reconnect storm (resuming, no change, after a restart): ≤ {STORM_QUERY_LIMIT} "
            "statements beyond authentication at N = 1,000",
            STORM_QUERY_LIMIT,
            lambda v: fmt(v),
        ),
        (
            "p95_ms",
            "reconnect storm (resuming, no change, after a restart): p95 from reconnect to "
            f"reply ≤ {STORM_P95_LIMIT_MS / 1000:g} s at N = 1,000",
            STORM_P95_LIMIT_MS,
            lambda v: f"{v / 1000:.2f} s",
        ),
    ]:
        measured, met, unjudged = [], [], False
        for row in sorted(resumes, key=storm_order):
            if row["subscribers"] != n:
                continue
            where = f"{row['db']}/{row['layer']} {row['reads']}"
            if failed(row):
                measured.append(f"{where}: not judged (syncbind failed)")
                unjudged = True
            else:
                measured.append(f"{where}: {text(row[key])}")
                met.append(row[key] <= limit)
        if n is not None and n != STORM_TARGET_N:
            # A smaller storm (quick and smoke modes) is shown, not judged.
            prefix = f"N = {n:,}, not judged (the target is at N = {STORM_TARGET_N:,}): "
            met, unjudged = [], True
        else:
            prefix = f"N = {n:,}: " if n else ""
        out.append((target, prefix + ", ".join(measured) or "not measured", met_of(met, unjudged)))
    return out


def storm_order(row: dict) -> tuple:
    """SQLite first, pages before filters, resuming before refetching, one process first."""
    return (
        row["db"] != "sqlite",
        row.get("reads") != "pages",
        not row.get("resume"),
        row.get("workers", 1),
    )


# -- markdown -----------------------------------------------------------------


def contender_table(add, rows: list[dict], columns: list[str], cells, key: str) -> None:
    """One line per contender present in ``rows``, with its ratio to syncbind on ``key``."""
    add("| contender | " + " | ".join(columns) + " | ratio |")
    add("|---" * (len(columns) + 2) + "|")
    base = find(rows, contender=SYNCBIND)
    if failed(base):
        base = None
    for name in CONTENDERS:
        row = find(rows, contender=name)
        if failed(row):
            add(f"| {label(name)} | {failed_cell(row)} |" + " – |" * len(columns))
        elif row:
            ratio_cell = ratio(row[key], base and base[key])
            add(f"| {label(name)} | " + " | ".join(cells(row)) + f" | {ratio_cell} |")


SCENARIO_NAMES = {
    "throughput": "requests",
    "slow": "slow queries",
    "delay": "queries that wait",
    "fanout": "fan-out",
    "scoped": "scoped fan-out",
    "memory": "memory",
    "capture": "change capture",
    "storm": "reconnect storm",
}


def step_name(scenario: str, row: dict) -> str:
    """What a row measured, in words: ``fan-out, one row, N = 1,000``."""
    parts = [SCENARIO_NAMES.get(scenario, scenario)]
    if row.get("kind") and row["kind"] != "slow":
        parts.append(row["kind"])
    if row.get("mode"):
        parts.append("one row" if row["mode"] == "row" else "one filtered list")
    if row.get("case"):
        parts.append(SCOPED_CASES.get(row["case"], row["case"]))
    if row.get("connections") is not None:
        count = row["connections"]
        parts.append(f"{count:,} idle connections" if scenario == "memory" else f"C = {count:,}")
    if row.get("subscribers") is not None:
        parts.append(f"N = {row['subscribers']:,}")
    if row.get("write"):
        parts.append(capture_write_name(row))
    if row.get("measure") == "latency":
        parts.append(f"change to push, {capture_wakeup(row)}")
    if scenario == "storm":
        parts.append(STORM_READS.get(row.get("reads"), row.get("reads")))
        parts.append(storm_measure(row))
    return ", ".join(p for p in parts if p)


def storm_measure(row: dict) -> str:
    if row.get("measure") == "resync":
        return "resync"
    if row.get("measure") == "handshake":
        return f"handshakes alone, {STACKS.get(row.get('stack'), row.get('stack'))} auth stack"
    if row.get("workers", 1) > 1:
        return f"resuming, {row['workers']} processes"
    return "resuming" if row.get("resume") else "full refetch"


def capture_write_name(row: dict) -> str:
    if row["write"] == "save":
        return "one `save()`"
    rows = f"{row['rows']:,} rows" if row.get("rows") else "every row"
    return f"one `update()` of {rows}"


def capture_wakeup(row: dict) -> str:
    interval = row.get("poll_interval")
    if row["db"] != "sqlite":
        return "NOTIFY"
    text = f"a poll every {interval * 1000:g} ms" if interval else "a poll"
    return text + (" (the default)" if row.get("poll_default") else "")


def delay_section(add, delay: list[dict]) -> None:
    """Section 2's second part: requests whose every statement waits (bench.app.delay)."""
    if not delay:
        return
    wait, n = delay[0]["delay_ms"], delay[0]["connections"]
    add(f"### Every query waiting {wait:g} ms")
    add("")
    add(
        f"`retrieve` and `list` as in section 1, at C = {n}, on PostgreSQL, with every statement "
        f"each server runs made to wait {wait:g} ms before it is sent, as a database across a "
        "network makes it wait: an execute wrapper (`bench/app/delay.py`) installed the same way "
        "on every database connection of every contender's server, which sleeps in the thread "
        "that runs the statement (holding no CPU, releasing the GIL, as a driver waiting on its "
        "socket does). Each contender pays the delay once per statement it runs: syncbind's and "
        "the hand-written consumer's list count the rows too (two statements), DCRF's does not."
    )
    add("")
    kinds = ("retrieve", "list")
    head = "| contender | " + " | ".join(
        f"{kind} msg/s | {kind} p50 ms | {kind} CPU ms/msg | {kind} ratio" for kind in kinds
    )
    add(head + " |")
    add("|---" * (1 + 4 * len(kinds)) + "|")
    bases = {kind: find(delay, contender=SYNCBIND, kind=kind) for kind in kinds}
    for name in CONTENDERS:
        cells = []
        for kind in kinds:
            row, base = find(delay, contender=name, kind=kind), bases[kind]
            if failed(row):
                cells += [failed_cell(row), "–", "–", "–"]
            elif row:
                base_rate = None if failed(base) or not base else base["rate"]
                cells += [
                    fmt(row["rate"]),
                    fmt(row["p50_ms"], 1),
                    fmt(row.get("cpu_ms"), 2),
                    ratio(row["rate"], base_rate),
                ]
            else:
                cells += ["–"] * 4
        if any(cell != "–" for cell in cells):
            add(f"| {label(name)} | " + " | ".join(cells) + " |")
    add("")


def scoped_section(add, scoped: list[dict]) -> None:
    if not scoped:
        return
    add("## 4. Scoped fan-out")
    add("")
    add(
        "N distinct users, each on its own connection signed in with its own session, follow "
        "`ScopedItem` rows, of which each user sees only its own and the public ones (syncbind: a "
        "binding whose `get_queryset` filters on `request.user`; DCRF: `subscribe_instance` on a "
        "consumer whose `get_queryset` does the same). (a) every user retrieves the same public "
        "row; (b) every user lists the first page of public rows; (c) each user retrieves its own "
        "private row; (d) each user lists its own private rows. Then one ordinary `save()` in the "
        "server changes the public row (a, b) or one user's row (c, d). Queries the server ran for "
        "the save (its own two included, counted once the server is quiet again), time until the "
        "last expected push, and pushes received by all connections for the save: N expected for "
        "(a) and (b), exactly one, the owner's, for (c) and (d). Medians over saves. DCRF has no "
        "per-user filtered list subscription: (b) and (d) are n/a for it."
    )
    peer = CONTENDERS[SCOPED_PEER]
    for db, layer in scoped_backends(scoped):
        add("")
        add(f"### {backend(db, layer)}")
        add("")
        add(
            "| case | N | syncbind queries/save | syncbind last push ms | syncbind pushes/save "
            "| DCRF queries/save | DCRF last push ms | DCRF pushes/save |"
        )
        add("|---" * 8 + "|")
        here = [r for r in scoped if (r["db"], r["layer"]) == (db, layer)]
        for case, name in SCOPED_CASES.items():
            for n in sorted({r["subscribers"] for r in here}):
                cells = [name, f"{n:,}"]
                for contender in (SYNCBIND, SCOPED_PEER):
                    row = find(here, case=case, subscribers=n, contender=contender)
                    if contender == SCOPED_PEER and case not in peer.scoped_cases:
                        cells += ["n/a"] * 3
                    elif failed(row):
                        cells += [failed_cell(row), "–", "–"]
                    elif row:
                        pushes = fmt(row["pushes_per_save"])
                        if row["pushes_per_save"] != row["pushes_expected"]:
                            pushes += f" (expected {fmt(row['pushes_expected'])})"
                        cells += [
                            fmt(row["queries_per_save"]),
                            fmt(row["latency_last_ms"], 1),
                            pushes,
                        ]
                    else:
                        cells += ["–"] * 3
                add("| " + " | ".join(cells) + " |")
        costs_table(add, here)
        add("")
        total = {k: sum(r.get(k) or 0 for r in here) for k in ("missing", "stray_pushes", "leaks")}
        add(
            f"Pushes that never arrived: {total['missing']}; pushes beyond the expected ones: "
            f"{total['stray_pushes']}; pushes carrying another user's private row: {total['leaks']}."
        )
    add("")


def costs_table(add, here: list[dict]) -> None:
    """Where syncbind's saves at N ≥ 1,000 spent their time, until the last push."""
    rows = [
        r
        for r in here
        if r["contender"] == SYNCBIND and r["subscribers"] >= 1000 and "gc_ms_per_save" in r
    ]
    if not rows:
        return
    add("")
    add(
        "Where syncbind's time went, per save until its last push (medians): the server's "
        "CPU (every thread), of which Python's cyclic garbage collector (and its full "
        "collections), and the load generator's own CPU."
    )
    add("")
    add("| case | N | server CPU ms | of which GC ms | full collections | load generator CPU ms |")
    add("|---" * 6 + "|")
    for case, name in SCOPED_CASES.items():
        for row in sorted((r for r in rows if r["case"] == case), key=lambda r: r["subscribers"]):
            add(
                f"| {name} | {row['subscribers']:,} | {fmt(row['server_cpu_ms_per_save'], 1)} "
                f"| {fmt(row['gc_ms_per_save'], 1)} | {fmt(row['gc_full_per_save'])} "
                f"| {fmt(row['client_cpu_ms_per_save'], 1)} |"
            )


def capture_section(add, capture: list[dict]) -> None:
    if not capture:
        return
    add("## 6. Change capture")
    add("")
    add(
        "On a database of its own (`bench/capture.py`: syncbind's app migrated, so its triggers "
        "are installed on the bound tables), not the one the sections above share: there "
        "syncbind's servers have no change table and announce saves with model signals."
    )
    writes = [r for r in capture if r.get("measure") == "write"]
    if writes:
        add("")
        add(
            "**Writes.** The time one write takes in the writing process with capture on (the "
            "triggers record each written row in `syncbind_change`) and off (the triggers dropped "
            "with `syncbind._capture.triggers.uninstall()`: syncbind's model signals then announce "
            "a `save()` on the channel layer, and a `QuerySet.update()` not at all). One `save()` "
            "of a row whose name changed; one `update()` of every row "
            "(`quantity = quantity + 1`). On and off take turns in blocks, each block after an "
            "untimed write of each kind; medians over every block's writes."
        )
        add("")
        add("| database | write | capture on ms | capture off ms | on/off | writes timed, each |")
        add("|---|---|---|---|---|---|")
        for row in sorted(writes, key=lambda r: (r["db"] != "sqlite", r["write"] != "save")):
            cells = [backend(row["db"], row["layer"]), capture_write_name(row)]
            if failed(row):
                cells += [failed_cell(row), "–", "–", "–"]
            else:
                cells += [
                    fmt(row["on_ms"], 2),
                    fmt(row["off_ms"], 2),
                    f"{row['ratio']:.2f}×",
                    fmt(row["samples"]),
                ]
            add("| " + " | ".join(cells) + " |")
    latency = [r for r in capture if r.get("measure") == "latency"]
    if latency:
        gap = max((r.get("gap") or 0 for r in latency), default=0)
        add("")
        add(
            "**Change to push.** A syncbind server (BindingConsumer, its own uvicorn process) with "
            "one connection subscribed to a row (`retrieve`). The load generator renames the row "
            "with a raw SQL `UPDATE` on a database connection of its own, which no model signal "
            "sees, and times from its commit to the arrival of the push carrying the new name; "
            f"before each write it pauses for a random time of up to {gap * 1000:g} ms, so "
            "commits fall anywhere in SQLite's poll interval. SQLite's reader looks at "
            "`PRAGMA data_version` every `CAPTURE_POLL_INTERVAL`; PostgreSQL's wakes on the "
            "triggers' NOTIFY. Idle CPU: the server process's CPU time (all threads) over "
            "a few seconds with the subscription open and nothing written, in % of one core."
        )
        add("")
        add("| database | reader wakes on | p50 ms | p95 ms | max ms | samples | idle CPU % |")
        add("|---|---|---|---|---|---|---|")
        for row in sorted(
            latency, key=lambda r: (r["db"] != "sqlite", -(r.get("poll_interval") or 0))
        ):
            cells = [backend(row["db"], row["layer"]), capture_wakeup(row)]
            if failed(row):
                cells += [failed_cell(row), "–", "–", "–", "–"]
            else:
                cells += [
                    fmt(row["p50_ms"], 1),
                    fmt(row["p95_ms"], 1),
                    fmt(row["max_ms"], 1),
                    fmt(row["samples"]),
                    fmt(row.get("idle_cpu_percent"), 2),
                ]
            add("| " + " | ".join(cells) + " |")
    add("")


def storm_section(add, storm: list[dict]) -> None:
    if not storm:
        return
    add("## 7. Reconnect storm and resync")
    add("")
    n = max(r["subscribers"] for r in storm)
    pages = max(r["pages"] for r in storm)
    add(
        f"syncbind alone (BindingConsumer), on a database of its own whose changes are captured "
        f"(`migrate` with syncbind's app: replies carry versions). {n:,} clients, each on its "
        f"own connection with the superuser's session cookie (the harness's authentication), "
        f"read one `list` page, which subscribes them; {pages} distinct pages shared among "
        f"them (client i reads number i mod {pages}): either pages 1–{pages} of the whole list "
        f"(`pages`) or the first page of one of {pages} categories (`filters`, a foreign-key "
        "filter). Each step runs on a server process of its own, on one port, and nothing is "
        "written in between."
    )
    add("")
    add(
        "**Storm.** The server that took the subscriptions is stopped and a new process "
        "started; all clients reconnect at once and send their read again, with the version "
        'of their last reply (resuming: the answer is `"resume": "unchanged"`, without '
        "rows), or without it (a full refetch; on a third process). Statements: every "
        "statement of the server's request threads from the storm's start until the count "
        "stays still, less what authenticating the same number of connections costs (that "
        "many connections opened afterwards, nothing sent on them, counted the same way); "
        "the change reader's own wake-ups are apart (`reader`). Latency: from the storm's "
        "start to each reply; `connect` is the part until the handshake was done, `request` "
        "the rest. Bytes: the payload of the replies the server sent. CPU: the server "
        "process's CPU time from the storm's start to the last reply."
    )
    for db, layer in scoped_backends(storm):
        here = sorted(
            (r for r in storm if (r["db"], r["layer"]) == (db, layer) and r["measure"] == "storm"),
            key=storm_order,
        )
        if not here:
            continue
        add("")
        add(f"### {backend(db, layer)}")
        add("")
        add(
            "| reads | storm | N | statements beyond auth | auth per connection | reader "
            "| p50 ms | p95 ms | connect p95 ms | request p95 ms | bytes sent | server CPU ms |"
        )
        add("|---" * 12 + "|")
        for row in here:
            cells = [row["reads"], storm_measure(row), fmt(row["subscribers"])]
            if failed(row):
                cells += [failed_cell(row)] + ["–"] * 8
            elif row.get("workers", 1) > 1:
                # Each process counts its own statements and CPU: not read.
                cells += ["n/a", "n/a", "n/a"]
                cells += [fmt(row[k]) for k in ("p50_ms", "p95_ms", "connect_p95_ms")]
                cells += [fmt(row["request_p95_ms"]), fmt(row["bytes"]), "n/a"]
            else:
                cells += [
                    fmt(row["queries"]),
                    fmt(row["auth_queries_per_connection"], 1),
                    fmt(row["reader_queries"]),
                    fmt(row["p50_ms"]),
                    fmt(row["p95_ms"]),
                    fmt(row["connect_p95_ms"]),
                    fmt(row["request_p95_ms"]),
                    fmt(row["bytes"]),
                    fmt(row["server_cpu_ms"]),
                ]
            add("| " + " | ".join(cells) + " |")
        for row in here:
            if row.get("resume") and not failed(row) and row.get("statements"):
                add("")
                add(
                    f"Statements of the resuming storm ({row['reads']}), the most frequent "
                    f"first (authentication's included; `[reader]`: the change reader's; "
                    f"versions held: {fmt(row.get('versions_held'))}):"
                )
                add("")
                for sql, count in row["statements"].items():
                    add(f"- {count:,} × `{sql[:90]}`")
    handshake_table(add, storm)
    resyncs = sorted((r for r in storm if r["measure"] == "resync"), key=storm_order)
    if resyncs:
        add("")
        add(
            "**Resync.** On the server holding the subscriptions, before it is stopped: "
            "`Hub.resync()`, what the hub does when its channel-layer receive works again "
            "after a failure (every key evaluated again, every connection's user and "
            "credentials checked again), triggered by the bench-only view `/bench/resync/` "
            "rather than by stopping Redis, which the machine shares. Time from the call "
            "until a marker put in the hub's lanes after it is acted on (everything the "
            "resync queued is processed); the statements the server's request threads ran "
            "until the count stays still; pushes all clients received (nothing changed: "
            "none expected)."
        )
        add("")
        add("| backend | reads | N | time ms | statements | server CPU ms | pushes |")
        add("|---|---|---|---|---|---|---|")
        for row in resyncs:
            cells = [backend(row["db"], row["layer"]), row["reads"], fmt(row["subscribers"])]
            if failed(row):
                cells += [failed_cell(row), "–", "–", "–"]
            else:
                cells += [
                    fmt(row["resync_ms"]),
                    fmt(row["queries"]),
                    fmt(row["server_cpu_ms"]),
                    fmt(row["pushes"]),
                ]
            add("| " + " | ".join(cells) + " |")
    add("")


STACKS = {"syncbind": "syncbind's", "channels": "Channels'"}


def handshake_table(add, storm: list[dict]) -> None:
    """The reference: the same number of handshakes alone, on each server kind."""
    rows = [r for r in storm if r["measure"] == "handshake"]
    if not rows:
        return
    add("")
    add(
        "**Handshakes alone.** The reference for the storm's `connect` part: as many clients "
        "as the storm's connect at once with the same session cookie and send nothing, each "
        "kind on a server process of its own: syncbind's BindingConsumer behind "
        "`syncbind.middleware.AuthMiddlewareStack` (the user read by `SessionAuthentication` "
        "in syncbind's worker pool; what the storm rows above use) and behind Channels' "
        "`AuthMiddlewareStack` (the user read on asgiref's one thread-sensitive thread), and "
        "the hand-written `JsonWebsocketConsumer` behind Channels' stack, whose `connect()` "
        "only accepts an authenticated user. Server CPU: the process's, from the start to "
        "the last handshake; load generator CPU: its own, on the same 2 cores."
    )
    add("")
    add(
        "| backend | server | auth stack | N | connect p50 ms | connect p95 ms "
        "| server CPU ms | per handshake ms | load generator CPU ms |"
    )
    add("|---" * 9 + "|")
    for row in sorted(rows, key=lambda r: (r["db"] != "sqlite", r["contender"] != SYNCBIND)):
        stack = STACKS.get(row["stack"], row["stack"])
        cells = [backend(row["db"], row["layer"]), label(row["contender"]), stack]
        cells.append(fmt(row["subscribers"]))
        if failed(row):
            cells += [failed_cell(row)] + ["–"] * 4
        else:
            cells += [
                fmt(row["connect_p50_ms"]),
                fmt(row["connect_p95_ms"]),
                fmt(row["server_cpu_ms"]),
                fmt(row["server_cpu_ms"] / row["subscribers"], 2),
                fmt(row["client_cpu_ms"]),
            ]
        add("| " + " | ".join(cells) + " |")


def failures(results: dict) -> list[tuple[str, dict]]:
    """(scenario, row) for every failed measurement of the run."""
    return [
        (scenario, row)
        for scenario, rows in results.items()
        if isinstance(rows, list)
        for row in rows
        if failed(row)
    ]


def failures_section(add, results: dict) -> None:
    failed_rows = failures(results)
    if not failed_rows:
        return
    add("## Failures in this run")
    add("")
    meta = results.get("meta", {})
    log_dir = meta.get("log_dir")
    # A scenario merged from a later run has its logs in that run's directory.
    dirs = {s: part.get("log_dir") for part in meta.get("merged", []) for s in part["scenarios"]}
    where = f" in `{log_dir}`" if log_dir else ""
    if any(dirs.get(scenario) for scenario, _ in failed_rows):
        where = " in the log directory of the run that measured it"
    ours = sorted(
        {row["contender"] for _, row in failed_rows if row["contender"].startswith("syncbind")}
    )
    add(
        f"{len(failed_rows)} measurement(s) failed; the run went on without them, the tables "
        "show them as failed and the targets that depend on them are not judged. "
        + (
            f"syncbind's own contenders failed ({', '.join(ours)}): the run exited with an error. "
            if ours
            else "Only peers failed, so the run itself succeeded. "
        )
        + f"The load generator's error and the server log's tail of each are{where} "
        "(the file named after each failure)."
    )
    add("")
    for scenario, row in failed_rows:
        folder = dirs.get(scenario) or (log_dir if dirs else None)
        path = f"{folder}/{row['log']}" if folder and row.get("log") else row.get("log")
        log = f" (`{path}`)" if path else ""
        add(
            f"- {label(row['contender'])}, {step_name(scenario, row)}, "
            f"{backend(row['db'], row['layer'])}: {row['failed']}{log}"
        )
    add("")


def sections_note(sections: list[dict]) -> str:
    """Where the run's wall time went, part by part, in the order they ran."""
    return "; ".join(
        f"{', '.join(SCENARIO_NAMES.get(n, n) for n in part['scenarios'])} "
        f"({part['db']} + {part['layer']}) {part['seconds']:.0f} s"
        for part in sections
    )


def machine_note(meta: dict) -> str:
    m = meta["machine"]
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; Python {meta['python']}"
    )


def render_markdown(results: dict, charts: dict[str, str]) -> str:
    meta = results["meta"]
    lines: list[str] = []
    add = lines.append
    add("# Benchmarks")
    add("")
    add(
        "syncbind against djangochannelsrestframework (DCRF), channels-binding, a hand-written "
        "Channels consumer and an echo consumer, in one run on one machine. Every contender "
        "serves the same model, rows and fields from its own uvicorn process (one worker); the "
        "load comes from a separate `websockets` process. Ratios are to syncbind's BindingConsumer; "
        "absolute numbers drift on shared machines, ratios less so."
    )
    add("")
    add(
        f"- Generated by `{meta['command']}` on {meta['date']} ({meta['mode']} mode, {meta['seconds']:.0f} s)."
    )
    if meta.get("sections"):
        add(f"- Wall time by part: {sections_note(meta['sections'])}.")
    add(f"- Machine: {machine_note(meta)}.")
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    add(
        f"- Versions: {versions}; {meta.get('postgres') or 'no PostgreSQL'}; {meta.get('redis') or 'no Redis'}."
    )
    plan = meta["plan"]
    add(
        f"- Plan: {plan['rounds']} round(s), {plan['duration']} s per step after {plan['warmup']} s of warm-up; "
        "results are medians over rounds."
    )
    for skipped in results.get("skipped", []):
        add(f"- Not measured: {skipped['db']} + {skipped['layer']} layer ({skipped['why']}).")
    for part in meta.get("merged", []):
        names = ", ".join(SCENARIO_NAMES.get(s, s) for s in part["scenarios"])
        add(
            f"- Measured later and merged into this record ({names}): `{part['command']}` on "
            f"{part['date']} ({part['mode']} mode, {part['seconds']:.0f} s); machine: "
            f"{machine_note(part)}."
        )
    add("")
    failures_section(add, results)

    add("## Targets")
    add("")
    add("| target | measured | met |")
    add("|---|---|---|")
    for target, measured, met in targets(results):
        add(f"| {target} | {measured} | {'yes' if met else 'no' if met is False else '–'} |")
    add("")
    add("Where a target is not met, the analysis below says why.")
    add("")

    add("## 1. Requests: throughput and latency")
    add("")
    add(
        "Each of C connections sends a request, waits for its reply and sends the next: `retrieve` "
        "of a random row, or `list` of a random 25-row page (6 fields, one foreign key). "
        "Messages per second over the measured window; latency per request; the server "
        "process's CPU time (all threads) divided by the replies, which drifts less than "
        "rates when the machine is shared."
    )
    tp = results["throughput"]
    for db in sorted({r["db"] for r in tp}, reverse=True):
        for kind in ("retrieve", "list"):
            conns = sorted({r["connections"] for r in tp if r["db"] == db and r["kind"] == kind})
            add("")
            add(f"### {kind} on {'PostgreSQL' if db == 'postgres' else 'SQLite'}")
            add("")
            head = "| contender | " + " | ".join(f"C={c} msg/s" for c in conns)
            head += (
                f" | C={conns[-1]} p50 ms | C={conns[-1]} p99 ms | C={conns[-1]} server CPU ms/msg"
                f" | ratio at C={conns[-1]} |"
            )
            add(head)
            add("|---" * (len(conns) + 5) + "|")
            base = find(tp, db=db, kind=kind, connections=conns[-1], contender=SYNCBIND)
            if failed(base):
                base = None
            for name in CONTENDERS:
                rows = {c: find(tp, db=db, kind=kind, connections=c, contender=name) for c in conns}
                present = [r for r in rows.values() if r]
                if not present:
                    continue
                reasons = {failed(r) for r in present}
                if None not in reasons and len(reasons) == 1:
                    # Every step of this contender failed alike: one cell says it.
                    add(
                        f"| {label(name)} | {failed_cell(present[0])} |" + " – |" * (len(conns) + 3)
                    )
                    continue
                last = rows[conns[-1]]
                cells = [
                    failed_cell(rows[c])
                    if failed(rows[c])
                    else fmt(rows[c]["rate"])
                    if rows[c]
                    else "–"
                    for c in conns
                ]
                if failed(last):
                    last = None
                add(
                    f"| {label(name)} | "
                    + " | ".join(cells)
                    + f" | {fmt(last and last['p50_ms'], 1)} | {fmt(last and last['p99_ms'], 1)}"
                    + f" | {fmt(last and last.get('cpu_ms'), 2)}"
                    + f" | {ratio(last and last['rate'], base and base['rate'])} |"
                )
    add("")

    slow = results["slow"]
    if slow:
        add("## 2. Slow queries")
        add("")
        n = slow[0]["connections"]
        add(
            f"{n} connections each calling a custom event whose query takes 20 ms "
            "(`SELECT pg_sleep(0.02)`). A consumer that runs every handler on one thread "
            "tops out near 50 msg/s whatever the number of connections."
        )
        add("")
        contender_table(
            add,
            slow,
            ["msg/s", "p50 ms", "p99 ms"],
            lambda row: [fmt(row["rate"]), fmt(row["p50_ms"], 1), fmt(row["p99_ms"], 1)],
            "rate",
        )
        add("")
    delay_section(add, results.get("delay", []))

    fan = results["fanout"]
    if fan:
        add("## 3. Fan-out")
        add("")
        add(
            "N connections subscribed to one row (syncbind: `retrieve`; DCRF: `subscribe_instance`) "
            "or to one category's list (syncbind: a filtered `list` page; DCRF: a `model_observer` "
            "grouped by category, which pushes the changed row rather than the page). One ordinary "
            "`save()` in the server; time until the last subscriber has its push (median over saves), "
            "and the queries the server ran for it, the save's own two included."
        )
        for layer in sorted({r["layer"] for r in fan}):
            add("")
            add(f"### {'channels-redis' if layer == 'redis' else 'in-memory'} layer")
            add("")
            add(
                "| subscribed to | N | syncbind last push ms | syncbind queries | DCRF last push ms | DCRF queries | latency ratio |"
            )
            add("|---|---|---|---|---|---|---|")
            for mode in ("row", "page"):
                for n in sorted({r["subscribers"] for r in fan if r["layer"] == layer}):
                    ours = find(fan, layer=layer, mode=mode, subscribers=n, contender=SYNCBIND)
                    theirs = find(
                        fan, layer=layer, mode=mode, subscribers=n, contender="dcrf-observer"
                    )
                    what = "one row" if mode == "row" else "one filtered list"
                    cells = [what, f"{n:,}"]
                    for row in (ours, theirs):
                        if failed(row):
                            cells += [failed_cell(row), "–"]
                        else:
                            cells += [
                                fmt(row and row["latency_last_ms"], 1),
                                fmt(row and row["queries_per_save"]),
                            ]
                    judged = not failed(ours) and not failed(theirs)
                    cells.append(
                        ratio(
                            ours and ours["latency_last_ms"], theirs and theirs["latency_last_ms"]
                        )
                        if judged
                        else "–"
                    )
                    add("| " + " | ".join(cells) + " |")
            missing = sum(r.get("missing") or 0 for r in fan if r["layer"] == layer)
            add("")
            add(f"Pushes that never arrived: {missing}.")
        add("")

    scoped_section(add, results.get("scoped", []))

    mem = results["memory"]
    if mem:
        add("## 5. Memory per idle connection")
        add("")
        n = mem[0]["connections"]
        add(
            f"Resident memory of the server before and after {n:,} idle authenticated connections "
            "(each opened with the session cookie, then left alone)."
        )
        add("")
        contender_table(
            add,
            mem,
            ["RSS before MiB", "RSS after MiB", "per connection KiB"],
            lambda row: [
                fmt(row["rss_before"] / 2**20, 1),
                fmt(row["rss_after"] / 2**20, 1),
                fmt(row["per_connection_bytes"] / 1024, 1),
            ],
            "per_connection_bytes",
        )
        add("")

    capture_section(add, results.get("capture", []))
    storm_section(add, results.get("storm", []))

    if charts:
        add("## Charts")
        add("")
        for title, path in charts.items():
            add(f"![{title}]({path})")
            add("")

    analysis = HERE / "analysis.md"
    if analysis.exists():
        add(analysis.read_text().rstrip())
        add("")
    return "\n".join(lines)


# -- charts -------------------------------------------------------------------


def render_charts(results: dict, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts: dict[str, Path] = {}
    tp, slow = results["throughput"], results["slow"]
    if tp:
        top = max(r["connections"] for r in tp)
        panels = [
            (db, kind)
            for db in sorted({r["db"] for r in tp}, reverse=True)
            for kind in ("retrieve", "list")
        ]
        if slow:
            panels.append(("postgres", "slow"))
        cols = 3
        rows_n = (len(panels) + cols - 1) // cols
        fig, axes = plt.subplots(rows_n, cols, figsize=(5.2 * cols, 4.6 * rows_n), squeeze=False)
        flat = [ax for row in axes for ax in row]
        for ax in flat[len(panels) :]:
            ax.axis("off")
        for ax, (db, kind) in zip(flat, panels, strict=False):
            rows = (
                list(slow)
                if kind == "slow"
                else [
                    r for r in tp if r["db"] == db and r["kind"] == kind and r["connections"] == top
                ]
            )
            rows = [
                r for name in CONTENDERS for r in rows if r["contender"] == name and not failed(r)
            ]
            # The echo ceiling is a line, not a bar: it would flatten every other bar.
            echo = [r for r in rows if r["contender"] == "echo"]
            rows = [r for r in rows if r["contender"] != "echo"]
            names = [label(r["contender"]).replace(", ", "\n").replace(" ", "\n", 1) for r in rows]
            colors = [
                "tab:green" if r["contender"].startswith("syncbind") else "tab:gray" for r in rows
            ]
            ax.bar(names, [r["rate"] for r in rows], color=colors)
            if echo and rows:
                ax.set_title(
                    f"{kind} on {db}, C={rows[0]['connections']} (echo: {echo[0]['rate']:,.0f}/s)"
                )
            else:
                c = rows[0]["connections"] if rows else top
                ax.set_title(f"{kind} on {db}, C={c}")
            ax.set_ylabel("messages/s")
            ax.tick_params(axis="x", labelrotation=90, labelsize=7)
        fig.tight_layout()
        path = out / "throughput.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        charts["Throughput by contender"] = path

    fan = results["fanout"]
    if fan:
        layers = sorted({r["layer"] for r in fan})
        fig, axes = plt.subplots(2, len(layers), figsize=(5.5 * len(layers), 8), squeeze=False)
        for col, layer in enumerate(layers):
            for name, mode, style in [
                (SYNCBIND, "row", "g-o"),
                (SYNCBIND, "page", "g--s"),
                ("dcrf-observer", "row", "k-o"),
                ("dcrf-observer", "page", "k--s"),
            ]:
                rows = sorted(
                    (
                        r
                        for r in fan
                        if r["layer"] == layer
                        and r["contender"] == name
                        and r["mode"] == mode
                        and not failed(r)
                    ),
                    key=lambda r: r["subscribers"],
                )
                if not rows:
                    continue
                who = "syncbind" if name == SYNCBIND else "DCRF"
                what = {"row": "row", "page": "filtered list"}[mode]
                xs = [r["subscribers"] for r in rows]
                axes[0][col].plot(
                    xs, [r["latency_last_ms"] for r in rows], style, label=f"{who} {what}"
                )
                axes[1][col].plot(
                    xs, [r["queries_per_save"] for r in rows], style, label=f"{who} {what}"
                )
            axes[0][col].set_title(f"last push after a save ({layer} layer)")
            axes[0][col].set_ylabel("ms")
            axes[1][col].set_title(f"queries per save ({layer} layer)")
            axes[1][col].set_ylabel("queries")
            for ax in (axes[0][col], axes[1][col]):
                ax.set_xscale("log")
                ax.set_xlabel("subscribers (N)")
                ax.legend(fontsize=8)
            axes[0][col].set_yscale("log")
            axes[1][col].set_yscale("log")
            axes[1][col].set_ylim(bottom=1)
        fig.tight_layout()
        path = out / "fanout.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        charts["Fan-out latency and queries against N"] = path
    return charts


def render(results: dict, markdown: Path, out: Path) -> None:
    charts = render_charts(results, out)
    relative = {
        title: str(path.relative_to(markdown.parent))
        if path.is_relative_to(markdown.parent)
        else str(path)
        for title, path in charts.items()
    }
    markdown.write_text(render_markdown(results, relative) + "\n")


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "latest.json"
    results = json.loads(source.read_text())
    out = source.parent
    markdown = HERE.parent / "BENCHMARKS.md" if out == HERE / "results" else out / "BENCHMARKS.md"
    render(results, markdown, out)
    print(f"wrote {markdown}")


if __name__ == "__main__":
    main()
