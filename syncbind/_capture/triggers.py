"""The triggers that record each write of a captured table, per database backend.

PostgreSQL: three statement-level triggers per table (transition tables allow
one event per trigger), sharing one function, so a 10,000-row ``update()`` is
one ``INSERT ... SELECT`` into the change table, and one ``pg_notify`` (a
wake-up, folded by PostgreSQL to one per transaction). SQLite: a row-level
trigger per event (it has no statement-level triggers); it has no NOTIFY,
and readers poll ``PRAGMA data_version``.

Every trigger's name carries a digest of what it records, so installing them
again (at each ``migrate``) replaces those whose table gained or lost a
column and leaves the others alone; the system check compares the names.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import connections

from syncbind._capture.tables import Table, captured_tables

PREFIX = "syncbind_cap_"
CHANNEL = "syncbind_change"
VENDORS = frozenset({"postgresql", "sqlite"})


def supported(alias: str) -> bool:
    """Whether this database can capture changes (an in-memory SQLite database cannot
    be read from another connection: it is left to model signals)."""
    connection: Any = connections[alias]
    if connection.vendor not in VENDORS:
        return False
    if connection.vendor == "sqlite":
        return not connection.is_in_memory_db()
    return True


def digest(table: Table) -> str:
    return hashlib.sha1(table.identity.encode()).hexdigest()[:10]


def trigger_names(table: Table, vendor: str) -> set[str]:
    stem = f"{PREFIX}{digest(table)}"
    return {f"{stem}_{event}" for event in ("i", "u", "d")}


def _q(connection: Any, name: str) -> str:
    return connection.ops.quote_name(name)


# -- PostgreSQL ---------------------------------------------------------------------------


def _pg_values(connection: Any, table: Table, alias: str) -> str:
    parts = ", ".join(
        f"'{name}', {alias}.{_q(connection, column)}" for name, column in table.columns
    )
    return f"jsonb_build_object({parts})"


def _pg_statements(connection: Any, table: Table) -> list[str]:
    stem = f"{PREFIX}{digest(table)}"
    function = _q(connection, stem)
    quoted = _q(connection, table.name)
    pk = _q(connection, table.pk)
    name = table.name.replace("'", "''")
    columns = "tbl, row_pk, op, old_values, new_values, txid, at"
    common = "pg_current_xact_id()::text::bigint, extract(epoch from now())::bigint"
    body = f"""
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO syncbind_change ({columns})
    SELECT '{name}', n.{pk}::text, 'I', NULL, {_pg_values(connection, table, "n")}, {common}
    FROM syncbind_new n;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO syncbind_change ({columns})
    SELECT '{name}', coalesce(n.{pk}, o.{pk})::text,
           CASE WHEN o.{pk} IS NULL THEN 'I' WHEN n.{pk} IS NULL THEN 'D' ELSE 'U' END,
           CASE WHEN o.{pk} IS NULL THEN NULL ELSE {_pg_values(connection, table, "o")} END,
           CASE WHEN n.{pk} IS NULL THEN NULL ELSE {_pg_values(connection, table, "n")} END,
           {common}
    FROM syncbind_new n FULL JOIN syncbind_old o ON o.{pk} = n.{pk};
  ELSE
    INSERT INTO syncbind_change ({columns})
    SELECT '{name}', o.{pk}::text, 'D', {_pg_values(connection, table, "o")}, NULL, {common}
    FROM syncbind_old o;
  END IF;
  IF FOUND THEN
    PERFORM pg_notify('{CHANNEL}', '');
  END IF;
  RETURN NULL;
END
"""
    statements = [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $syncbind${body}$syncbind$"
    ]
    for event, referencing in (
        ("INSERT", "NEW TABLE AS syncbind_new"),
        ("UPDATE", "OLD TABLE AS syncbind_old NEW TABLE AS syncbind_new"),
        ("DELETE", "OLD TABLE AS syncbind_old"),
    ):
        trigger = _q(connection, f"{stem}_{event[0].lower()}")
        statements.append(f"DROP TRIGGER IF EXISTS {trigger} ON {quoted}")
        statements.append(
            f"CREATE TRIGGER {trigger} AFTER {event} ON {quoted} REFERENCING {referencing} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    return statements


def _pg_installed(connection: Any) -> dict[str, set[str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT t.tgisinternal AND t.tgname LIKE %s AND n.nspname = ANY(current_schemas(false))",
            [PREFIX + "%"],
        )
        return _by_table(cursor.fetchall())


def _pg_drop(connection: Any, table_name: str, trigger: str) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {_q(connection, trigger)} ON {_q(connection, table_name)}"]


# -- SQLite -------------------------------------------------------------------------------


def _sqlite_values(connection: Any, table: Table, row: str) -> str:
    parts = ", ".join(f"'{name}', {row}.{_q(connection, column)}" for name, column in table.columns)
    return f"json_object({parts})"


def _sqlite_statements(connection: Any, table: Table) -> list[str]:
    stem = f"{PREFIX}{digest(table)}"
    quoted = _q(connection, table.name)
    pk = _q(connection, table.pk)
    name = table.name.replace("'", "''")
    insert = "INSERT INTO syncbind_change (tbl, row_pk, op, old_values, new_values, txid, at)"
    now = "CAST(strftime('%s', 'now') AS INTEGER)"
    old, new = _sqlite_values(connection, table, "OLD"), _sqlite_values(connection, table, "NEW")
    bodies = {
        "i": ("INSERT", f"{insert} VALUES ('{name}', NEW.{pk}, 'I', NULL, {new}, NULL, {now});"),
        "u": (
            "UPDATE",
            f"{insert} VALUES ('{name}', NEW.{pk}, 'U', {old}, {new}, NULL, {now});"
            # A changed primary key: the old row is gone.
            f" {insert} SELECT '{name}', OLD.{pk}, 'D', {old}, NULL, NULL, {now}"
            f" WHERE OLD.{pk} IS NOT NEW.{pk};",
        ),
        "d": ("DELETE", f"{insert} VALUES ('{name}', OLD.{pk}, 'D', {old}, NULL, NULL, {now});"),
    }
    statements = []
    for suffix, (event, body) in bodies.items():
        trigger = _q(connection, f"{stem}_{suffix}")
        statements.append(f"DROP TRIGGER IF EXISTS {trigger}")
        statements.append(
            f"CREATE TRIGGER {trigger} AFTER {event} ON {quoted} FOR EACH ROW BEGIN {body} END"
        )
    return statements


def _sqlite_installed(connection: Any) -> dict[str, set[str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
            [PREFIX + "%"],
        )
        return _by_table(cursor.fetchall())


def _sqlite_drop(connection: Any, table_name: str, trigger: str) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {_q(connection, trigger)}"]


# -- both ---------------------------------------------------------------------------------


def _by_table(rows: Any) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for table_name, trigger in rows:
        found.setdefault(table_name, set()).add(trigger)
    return found


def installed(alias: str) -> dict[str, set[str]]:
    """``{table: names of syncbind's triggers on it}`` as the database has them."""
    connection = connections[alias]
    if connection.vendor == "postgresql":
        return _pg_installed(connection)
    return _sqlite_installed(connection)


def existing_tables(alias: str) -> set[str]:
    return set(connections[alias].introspection.table_names())


def missing(alias: str, tables: list[Table] | None = None) -> list[Table]:
    """The captured tables (that exist) whose triggers are not installed as they must be."""
    tables = captured_tables() if tables is None else tables
    have = installed(alias)
    vendor = connections[alias].vendor
    present = existing_tables(alias)
    return [
        table
        for table in tables
        if table.name in present and not trigger_names(table, vendor) <= have.get(table.name, set())
    ]


def install(alias: str) -> list[str]:
    """Install (or replace) the triggers of every captured table on ``alias``, and drop
    syncbind's triggers that no longer match a captured table. Returns the tables
    whose triggers were (re)made."""
    connection = connections[alias]
    vendor = connection.vendor
    tables = captured_tables()
    present = existing_tables(alias)
    have = installed(alias)
    wanted: dict[str, set[str]] = {}
    statements: list[str] = []
    made = []
    for table in tables:
        if table.name not in present:
            continue
        names = trigger_names(table, vendor)
        wanted.setdefault(table.name, set()).update(names)
        if names <= have.get(table.name, set()):
            continue
        made.append(table.name)
        make = _pg_statements if vendor == "postgresql" else _sqlite_statements
        statements.extend(make(connection, table))
    drop = _pg_drop if vendor == "postgresql" else _sqlite_drop
    for table_name, names in have.items():
        for trigger in names - wanted.get(table_name, set()):
            statements.extend(drop(connection, table_name, trigger))
    if statements:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    if vendor == "postgresql" and statements:
        _pg_drop_orphan_functions(connection)
    return made


def _pg_drop_orphan_functions(connection: Any) -> None:
    # A function whose triggers were all replaced by ones of another digest.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE p.proname LIKE %s AND n.nspname = ANY(current_schemas(false)) "
            "AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid)",
            [PREFIX + "%"],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP FUNCTION IF EXISTS {_q(connection, name)}()")


def uninstall(alias: str) -> None:
    """Drop every syncbind trigger on ``alias`` (capture turned off)."""
    connection = connections[alias]
    drop = _pg_drop if connection.vendor == "postgresql" else _sqlite_drop
    statements = [
        statement
        for table_name, names in installed(alias).items()
        for trigger in names
        for statement in drop(connection, table_name, trigger)
    ]
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    if connection.vendor == "postgresql":
        _pg_drop_orphan_functions(connection)
