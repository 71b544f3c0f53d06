"""Change capture: every committed write of the tables streams read is pushed, whoever made it.

Triggers (:mod:`.triggers`) record each write of a captured table
(:mod:`.tables`) in the change table, in the writing transaction; each
process reads that table in commit order (:mod:`.log`, :mod:`.follower`)
and hands the records to its hubs as change messages (:mod:`.records`).
On PostgreSQL and SQLite it is on by default (``CAPTURE``); the triggers are
installed by ``manage.py migrate``. Model signals announce the writes of
tables that are not captured (other backends, capture off, a table whose
triggers are missing), never those of a captured one: no change is pushed twice.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import connections, models, router
from django.db.utils import DatabaseError

from syncbind._wire.protocol import CHANGED, EXPIRED, UNCHANGED
from syncbind.settings import api_settings

_lock = threading.Lock()
_finding = threading.Lock()
# alias -> the tables whose triggers are installed as they must be (read once).
_covered: dict[str, frozenset[str]] = {}


def enabled(alias: str) -> bool:
    """Whether capture is on for database ``alias`` (setting, backend)."""
    # Not at module level (nor below): _live.changes imports this package, and its
    # modules import _live.changes.
    from syncbind._capture.triggers import supported

    return bool(api_settings.CAPTURE) and supported(alias)


def covered_tables(alias: str) -> frozenset[str]:
    """The tables of ``alias`` whose writes the triggers record (cached per process;
    :func:`forget` after installing)."""
    with _lock:
        known = _covered.get(alias)
    if known is not None:
        return known
    from syncbind._capture.tables import captured_tables
    from syncbind._capture.triggers import installed, trigger_names

    with _finding:  # one thread asks the database; the others wait for its answer
        with _lock:
            known = _covered.get(alias)
        if known is not None:
            return known
        try:
            have = installed(alias)
            vendor = connections[alias].vendor
            found = frozenset(
                table.name
                for table in captured_tables()
                if trigger_names(table, vendor) <= have.get(table.name, set())
            )
        except Exception:  # no change table yet (before migrate), no database
            return frozenset()
        with _lock:
            _covered[alias] = found
        return found


def forget(alias: str | None = None) -> None:
    with _lock:
        if alias is None:
            _covered.clear()
        else:
            _covered.pop(alias, None)


def covers(model: type[models.Model], using: str | None = None) -> bool:
    """Whether the triggers record the writes of ``model``'s table on ``using``."""
    alias = using or router.db_for_write(model)
    if not enabled(alias):
        return False
    return (model._meta.concrete_model or model)._meta.db_table in covered_tables(alias)


def follow(model: type[models.Model]) -> bool:
    """Start this process's reader of the database ``model`` is read from, if its table is
    captured (before a first read: see :meth:`.follower.Follower.ensure_started`).
    Returns whether it is."""
    alias = router.db_for_read(model)
    if not covers(model, alias):
        return False
    from syncbind._capture.follower import follower_for

    follower_for(alias).ensure_started()
    return True


def _reader(alias: str) -> Any:
    """This process's running reader of database ``alias`` (None: none runs)."""
    from syncbind._capture.follower import running

    return next((follower for follower in running() if follower.alias == alias), None)


def poke(using: str) -> None:
    """This process committed a write to a captured table of ``using``: read soon."""
    follower = _reader(using)
    if follower is not None:
        follower.poke()


def read_all_now() -> None:
    """Read every running reader's table up to now and hand it to the hubs (tests'
    ``settle()``; worker thread)."""
    from syncbind._capture.follower import running

    for follower in running():
        follower.read_now()


def installed_on_migrate(using: str = "default", **kwargs: Any) -> None:
    """``post_migrate``: install the triggers of the captured tables (or drop them all,
    with capture off)."""
    from syncbind._capture.triggers import install, supported, uninstall

    if (
        not supported(using)
        or "syncbind_change" not in connections[using].introspection.table_names()
    ):
        return
    try:
        if api_settings.CAPTURE:
            install(using)
        else:
            uninstall(using)
    except DatabaseError:
        logging.getLogger("syncbind.capture").exception("syncbind could not install its triggers")
        raise
    finally:
        forget(using)


def version_for(model: type[models.Model]) -> str | None:
    """The version a state of ``model``'s rows read from now on reflects: the position
    this process's reader has read up to (None without capture)."""
    alias = router.db_for_read(model)
    if not covers(model, alias):
        return None
    follower = _reader(alias)
    return None if follower is None else follower.version()


def resume(model: type[models.Model], tables: frozenset[str], version: str) -> str:
    """Whether a state of ``model``'s rows reading ``tables`` changed since ``version``:
    ``protocol.UNCHANGED``, ``CHANGED``, or ``EXPIRED`` (the log no longer reaches back,
    or the version is not one of this database's)."""
    follower = _reader(router.db_for_read(model))
    found = None if follower is None else follower.tables_since(version)
    if found is None:
        return EXPIRED
    return CHANGED if found & tables else UNCHANGED
