"""The change-capture scenario's database side: ``python -m bench.capture '<plan as JSON>'``.

It runs with syncbind's app installed (``BENCH_CONTENDER=syncbind-sync``) on a
database of its own (``bench.run.Backends.env(..., database="capture")``), so
that its rows and triggers change nothing the other scenarios measure. It
migrates, which installs syncbind's triggers, writes ``rows`` items and the
superuser's session, then times two writes with capture on (triggers
installed) and off (triggers dropped, model signals announce the save):

- one ``save()`` of an item whose name changed;
- one ``QuerySet.update()`` of every item (``quantity = quantity + 1``).

On and off take turns in blocks (``rounds`` of each, their order alternating),
so that drift on a shared machine spreads over both. A block empties the
change table, makes one untimed write of each kind (the first statement after
the triggers changed is prepared again), then ``saves`` timed saves and
``updates`` timed updates, and counts the change records they wrote. The
triggers are installed again at the end, for the servers that follow.

It prints one JSON line: the session, the table and row the latency step
writes with raw SQL, and one result per kind of write (medians on and off,
their ratio, and the change records per write in each state: the triggers
fired with capture on, and only then).
"""

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ.setdefault("BENCH_CONTENDER", "syncbind-sync")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import F  # noqa: E402

import syncbind._capture  # noqa: E402
from bench.app.models import Category, Item  # noqa: E402
from bench.prepare import superuser_session  # noqa: E402
from syncbind._capture import triggers  # noqa: E402

ALIAS = "default"
STATES = {True: "on", False: "off"}


def prepare(rows: int) -> Item:
    """Schema and triggers, ``rows`` items; the first, which the saves and the latency step write."""
    call_command("migrate", verbosity=0, interactive=False)
    category = Category.objects.create(name="capture")
    Item.objects.bulk_create(
        (
            Item(name=f"item {n}", price=Decimal("1.99"), quantity=0, category=category)
            for n in range(rows)
        ),
        batch_size=1000,
    )
    return Item.objects.order_by("pk").first()


def set_capture(on: bool) -> None:
    """Install or drop the triggers, and check that syncbind sees it so."""
    if on:
        triggers.install(ALIAS)
    else:
        triggers.uninstall(ALIAS)
    syncbind._capture.forget(ALIAS)
    if syncbind._capture.covers(Item, ALIAS) is not on:
        raise RuntimeError(f"capture of {Item._meta.db_table} should be {STATES[on]}")


def change_records() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM syncbind_change")
        return cursor.fetchone()[0]


def clear_changes() -> None:
    with connection.cursor() as cursor:
        # No reader runs here: the records are not needed, and a table kept short
        # makes every block's inserts alike.
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE syncbind_change")
        else:
            cursor.execute("DELETE FROM syncbind_change")


def timed(write: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        write()
        samples.append(time.perf_counter() - started)
    return samples


class Writes:
    """The timed writes of both states, the records they left, and how many were made."""

    def __init__(self, item: Item) -> None:
        self.item = item
        self.samples: dict[str, dict[str, list[float]]] = {
            kind: {"on": [], "off": []} for kind in ("save", "update")
        }
        self.records = {kind: {"on": 0, "off": 0} for kind in ("save", "update")}
        self.made = {kind: {"on": 0, "off": 0} for kind in ("save", "update")}

    def save(self) -> None:
        self.item.name = f"renamed {time.perf_counter_ns()}"
        self.item.save()

    def update(self) -> None:
        Item.objects.update(quantity=F("quantity") + 1)

    def block(self, on: bool, saves: int, updates: int) -> None:
        state = STATES[on]
        set_capture(on)
        clear_changes()
        for kind, write, times in (("save", self.save, saves), ("update", self.update, updates)):
            before = change_records()
            write()  # warm-up, untimed
            self.samples[kind][state] += timed(write, times)
            self.made[kind][state] += times + 1
            self.records[kind][state] += change_records() - before

    def results(self, rows: int) -> list[dict]:
        out = []
        for kind, written in (("save", 1), ("update", rows)):
            on, off = (statistics.median(self.samples[kind][s]) for s in ("on", "off"))
            out.append(
                {
                    "type": "capture",
                    "measure": "write",
                    "write": kind,
                    "rows": written,
                    "on_ms": round(on * 1000, 3),
                    "off_ms": round(off * 1000, 3),
                    "ratio": round(on / off, 3),
                    "samples": len(self.samples[kind]["on"]),
                    # Change records per write: ``rows`` with the triggers, none without.
                    "records_per_write_on": self.records[kind]["on"] / self.made[kind]["on"],
                    "records_per_write_off": self.records[kind]["off"] / self.made[kind]["off"],
                }
            )
        return out


def main() -> None:
    plan = json.loads(sys.argv[1])
    item = prepare(plan["rows"])
    session = superuser_session()
    writes = Writes(item)
    for round_no in range(plan["rounds"]):
        for on in (True, False) if round_no % 2 == 0 else (False, True):
            writes.block(on, plan["saves"], plan["updates"])
    set_capture(True)
    clear_changes()
    print(
        json.dumps(
            {
                "session": session,
                "table": Item._meta.db_table,
                "item": item.pk,
                "writes": writes.results(plan["rows"]),
            }
        )
    )


if __name__ == "__main__":
    main()
