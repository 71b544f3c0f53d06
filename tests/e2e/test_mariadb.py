"""[MariaDB/MySQL] A backend without change capture keeps model signals (issue 22).

docs/subscriptions.md ("Which changes"): MySQL and MariaDB have no capture;
``migrate`` installs no trigger, the system check says so (``syncbind.W018``), and
what Django writes through ``save()``, many-to-many changes and ``delete()`` is pushed
by model signals; a bare ``QuerySet.update()`` is not, ``notify_update()`` is.

Like tests/e2e/test_distributed.py, the test process never opens the database with
Django: the module's fixture creates a MariaDB database with a unique name (over
PyMySQL), and child processes (``python -m django ...``, ``SYNCBIND_TEST_DB=mariadb``)
migrate it, check, and run tests/mariadb_child.py, whose printed lines the tests
read. The database is dropped at the end.
"""

import json
import os
import subprocess
import sys
import uuid

import pymysql
import pytest

from tests.livesystem import run_child, shell
from tests.servers import ROOT, require_mariadb

pytestmark = [pytest.mark.e2e, pytest.mark.services]

W018 = (
    "?: (syncbind.W018) The database 'default' (mysql) has no change capture: only writes "
    "that send model signals (save(), delete(), many-to-many changes) are pushed; "
    "QuerySet.update(), bulk_create() and other programs' writes are not."
)


def mariadb(sql, params=None):
    """Run one statement as root on the server; return its rows."""
    server = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with server, server.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


@pytest.fixture(scope="module")
def mariadb_env():
    """A dedicated, migrated MariaDB database, as an environment for child processes."""
    require_mariadb()
    name = f"syncbind_maria_{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "SYNCBIND_TEST_DB": "mariadb",
        "SYNCBIND_TEST_DB_NAME": name,
        "SYNCBIND_TEST_LAYER": "memory",
    }
    mariadb(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        run_child(env, "migrate", "-v0")
        yield env
    finally:
        mariadb(f"DROP DATABASE IF EXISTS `{name}`")


def test_migrate_makes_the_change_table_and_installs_no_trigger(mariadb_env):
    schema = mariadb_env["SYNCBIND_TEST_DB_NAME"]
    tables = mariadb(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", [schema]
    )
    assert ("syncbind_change",) in tables
    triggers = mariadb(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
        [schema],
    )
    assert triggers == []  # none at all, so none named syncbind_cap_...


def test_check_warns_that_there_is_no_capture(mariadb_env):
    done = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        env=mariadb_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert W018 in done.stderr.splitlines()
    assert "System check identified 1 issue (0 silenced)." in done.stderr


def test_model_signals_push_what_django_writes_but_a_bare_update(mariadb_env):
    printed = shell(mariadb_env, "from tests.mariadb_child import main; main()")
    # Django's shell may print a line of its own first ("N objects imported automatically").
    facts = [json.loads(line) for line in printed.splitlines() if line.startswith("{")]
    product, tag = facts[1]["product"], facts[1]["tag"]
    assert facts == [
        {"enabled": False, "covers": False},
        {"subscribed": "first", "product": product, "tag": tag},
        {"after_save": {"name": "saved", "stock": 0, "tags": []}},
        {"after_update": "nothing pushed"},
        {"after_notify_update": {"name": "updated quietly", "stock": 7, "tags": []}},
        {"after_tags_add": {"name": "updated quietly", "stock": 7, "tags": [tag]}},
        {"after_delete": {"event": "testapp.Product.delete", "data": {"id": product}}},
    ]
