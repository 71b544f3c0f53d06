"""Reading the change table in commit order, from a position, and pruning it.

Ids are handed out when a row is written, not when its transaction commits,
so on PostgreSQL a reader that went by id would skip a long transaction's
records committed after a later id was read. The position is a snapshot
instead (the approach of PgQ): a read returns the records of transactions
visible in the snapshot taken now and not in the previous one. On SQLite
one transaction writes at a time, so the id order is the commit order and
the position is the last id read.

A reader whose position lies before what pruning deleted may have missed
records: :meth:`Log.read` says so (``missed``) and its owner evaluates
everything it holds again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, connections, transaction

from syncbind.settings import api_settings


@dataclass
class Record:
    table: str
    pk: str
    op: str
    old: Any
    new: Any


@dataclass
class Batch:
    """What one read found: records by table, tables with too many to list, and
    whether records before the position were pruned."""

    records: list[Record] = field(default_factory=list)
    crowded: set[str] = field(default_factory=set)
    missed: bool = False

    def __bool__(self) -> bool:
        return bool(self.records or self.crowded or self.missed)


def _json(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value)
    return value


class Log:
    """The change table of one database, read from a position (see the module docstring)."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    @property
    def connection(self) -> Any:
        return connections[self.alias]

    def now(self) -> Any:
        raise NotImplementedError

    def read(self, position: Any) -> tuple[Batch, Any]:
        """The records committed after ``position``, and the position after them."""
        raise NotImplementedError

    def _records(self, where: str, params: list[Any], order: str) -> Batch:
        found = Batch()
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT tbl, count(*) FROM syncbind_change WHERE {where} GROUP BY tbl", params
            )
            counts = dict(cursor.fetchall())
            # Past MAX_CHANGES_PER_MESSAGE records of one table they are counted, not
            # returned: "any row of it may have changed", as for a signal's batch.
            limit = api_settings.MAX_CHANGES_PER_MESSAGE
            listed = [table for table, count in counts.items() if count <= limit]
            found.crowded = {table for table, count in counts.items() if count > limit}
            if listed:
                marks = ", ".join(["%s"] * len(listed))
                cursor.execute(
                    "SELECT tbl, row_pk, op, old_values, new_values FROM syncbind_change "
                    f"WHERE {where} AND tbl IN ({marks}) ORDER BY {order}",
                    [*params, *listed],
                )
                found.records = [
                    Record(table, str(pk), op, _json(old), _json(new))
                    for table, pk, op, old, new in cursor.fetchall()
                ]
        return found

    def _mark(self, name: str) -> int | None:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT value FROM syncbind_capture_mark WHERE name = %s", [name])
            row = cursor.fetchone()
        return None if row is None else row[0]

    def prune(self, retention: float) -> int:
        """Delete the records older than ``retention`` seconds; returns how many."""
        raise NotImplementedError

    def tables_since(self, version: str) -> set[str] | None:
        """The tables written after position ``version`` (a position's text), up to now;
        None when the log no longer reaches back to it (pruned, or not a position of
        this database)."""
        raise NotImplementedError

    def text(self, position: Any) -> str:
        """A position as the version replies and pushes carry."""
        return str(position)

    def _prune(self, column: str, mark: str, retention: float) -> int:
        cutoff = int(time.time() - retention)
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            cursor.execute(f"SELECT max({column}) FROM syncbind_change WHERE at <= %s", [cutoff])
            (through,) = cursor.fetchone()
            if through is None:
                return 0
            # The mark is written before the records go, in the same transaction.
            cursor.execute(
                "UPDATE syncbind_capture_mark SET value = %s WHERE name = %s AND value < %s",
                [through, mark, through],
            )
            cursor.execute("SELECT 1 FROM syncbind_capture_mark WHERE name = %s", [mark])
            if cursor.fetchone() is None:
                cursor.execute(
                    "INSERT INTO syncbind_capture_mark (name, value) VALUES (%s, %s)",
                    [mark, through],
                )
            cursor.execute("DELETE FROM syncbind_change WHERE at <= %s", [cutoff])
            return cursor.rowcount


class PostgresLog(Log):
    def now(self) -> str:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_snapshot()::text")
            return cursor.fetchone()[0]

    def read(self, position: str) -> tuple[Batch, str]:
        snapshot = self.now()
        where = (
            "txid >= pg_snapshot_xmin(%s::pg_snapshot)::text::bigint"
            " AND pg_visible_in_snapshot(txid::text::xid8, %s::pg_snapshot)"
            " AND NOT pg_visible_in_snapshot(txid::text::xid8, %s::pg_snapshot)"
        )
        found = self._records(where, [position, snapshot, position], "txid, id")
        pruned = self._mark("pruned_txid")
        # A snapshot's text is "xmin:xmax:xip,...".
        found.missed = pruned is not None and pruned >= int(position.split(":", 1)[0])
        return found, snapshot

    def prune(self, retention: float) -> int:
        return self._prune("txid", "pruned_txid", retention)

    def tables_since(self, version: str) -> set[str] | None:
        if ":" not in version:
            return None

        try:
            with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_snapshot_xmin(%s::pg_snapshot)::text::bigint,"
                    " pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
                    [version],
                )
                xmin, now_xmax = cursor.fetchone()
                if xmin > now_xmax:
                    return None  # a position from the future: not this database's
                pruned = self._mark("pruned_txid")
                if pruned is not None and pruned >= xmin:
                    return None
                cursor.execute(
                    "SELECT DISTINCT tbl FROM syncbind_change WHERE txid >= %s"
                    " AND NOT pg_visible_in_snapshot(txid::text::xid8, %s::pg_snapshot)",
                    [xmin, version],
                )
                return {table for (table,) in cursor.fetchall()}
        except DatabaseError:  # not a snapshot PostgreSQL reads
            return None


class SqliteLog(Log):
    def now(self) -> int:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT coalesce(max(id), 0) FROM syncbind_change")
            return cursor.fetchone()[0]

    def read(self, position: int) -> tuple[Batch, int]:
        # No transaction: with BEGIN IMMEDIATE it would hold writers off. Records up to
        # ``newest`` never change; a prune between the reads only makes this cautious.
        newest = self.now()
        found = self._records("id > %s AND id <= %s", [position, newest], "id")
        pruned = self._mark("pruned_id")
        found.missed = pruned is not None and pruned > position
        return found, newest

    def prune(self, retention: float) -> int:
        return self._prune("id", "pruned_id", retention)

    def tables_since(self, version: str) -> set[str] | None:
        if not version.isdigit():
            return None
        position = int(version)
        newest = self.now()
        pruned = self._mark("pruned_id")
        if position > newest or (pruned is not None and pruned > position):
            return None
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT tbl FROM syncbind_change WHERE id > %s AND id <= %s",
                [position, newest],
            )
            return {table for (table,) in cursor.fetchall()}


def log_for(alias: str) -> Log:
    if connections[alias].vendor == "postgresql":
        return PostgresLog(alias)
    return SqliteLog(alias)
