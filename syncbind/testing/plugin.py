"""pytest fixtures for projects that use syncbind (needs pytest-django and pytest-asyncio).

Enable them with one line in the project's top ``conftest.py``::

    pytest_plugins = ["syncbind.testing.plugin"]

Fixtures:

``syncbind_client``
    ``client = await syncbind_client(user)``: a connected
    :class:`~syncbind.testing.SyncbindClient` as ``user`` (None: anonymous),
    closed after the test (once what the test announced has been sent). It asks for ``transactional_db`` itself: binding code
    runs in syncbind's worker threads, whose database connections cannot see a
    test transaction's uncommitted rows.
``syncbind_application``
    The ASGI application ``syncbind_client`` connects to: a bare
    ``BindingConsumer`` unless the project overrides this fixture (with its own
    consumer, say; a router behind ``AllowedHostsOriginValidator`` also needs
    an ``Origin`` header, ``syncbind_client(user, headers=[(b"origin", ...)])``).
``settle``
    :func:`syncbind.testing.settle`: ``await settle()`` returns once every change
    committed so far has been pushed.

Each test's change-table readers (:mod:`syncbind._capture`) are stopped after it:
the next test that subscribes starts its own, from that moment, so no test is
pushed another's changes, and no reader touches the database while
pytest-django blocks access between tests.

At the end of the session the worker threads' database connections are closed,
so that the test database can be dropped (PostgreSQL refuses to drop a database
that sessions are still using).

A SQLite database with no test ``NAME`` is tested in a file of the session's
temporary directory rather than in memory: pushes are read in worker threads
while the test writes, and Django's in-memory test database (SQLite's shared
cache) locks whole tables, so a write could fail with "database table is
locked". A ``TEST["NAME"]`` of the project's own is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connections

from syncbind._capture.follower import stop_all
from syncbind._compat.asgiref import thread_sensitive_executor
from syncbind._live.announcer import get_announcer
from syncbind._workers.executor import shutdown_executor
from syncbind.testing import SyncbindClient, connect
from syncbind.testing import settle as _settle


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None, tmp_path_factory: Any
) -> None:
    """pytest-django's hook on the test databases' settings: SQLite in a file (see
    the module docstring); the suffixes pytest-django adds for parallel runs stay."""
    databases: dict[str, dict[str, Any]] = settings.DATABASES
    for alias, database in databases.items():
        test = database.setdefault("TEST", {})
        if database.get("ENGINE") == "django.db.backends.sqlite3" and not test.get("NAME"):
            test["NAME"] = str(tmp_path_factory.mktemp("syncbind-db") / f"{alias}.sqlite3")


@pytest.fixture
def syncbind_application() -> Any:
    """The application ``syncbind_client`` connects to (None: a bare BindingConsumer)."""
    return None


@pytest.fixture
async def syncbind_client(
    transactional_db: None, syncbind_application: Any
) -> AsyncIterator[Callable[..., Awaitable[SyncbindClient]]]:
    """``await syncbind_client(user, **connect_kwargs)``: a connected client, closed after
    the test."""
    clients: list[SyncbindClient] = []

    async def make(user: Any = None, **kwargs: Any) -> SyncbindClient:
        kwargs.setdefault("application", syncbind_application)
        client = await connect(user, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    # What the test announced is sent now, while its event loop runs: it must not reach
    # the connections of the next test.

    await asyncio.wait_for(get_announcer().drained(), 10)


@pytest.fixture
def settle() -> Callable[..., Awaitable[None]]:
    """``await settle()``: wait until committed changes have been pushed."""
    return _settle


@pytest.fixture(autouse=True)
def _syncbind_stop_change_readers() -> Iterator[None]:
    yield

    stop_all()


@pytest.fixture(scope="session", autouse=True)
def _syncbind_close_worker_connections(
    django_db_setup: None, django_db_blocker: Any
) -> Iterator[None]:
    yield

    stop_all()  # the change readers' connections, before the test database goes
    shutdown_executor()
    # asgiref's thread-sensitive executor (sync_to_async from tests) keeps one too.
    executor = thread_sensitive_executor()
    if executor is not None:
        executor.submit(connections.close_all).result()
