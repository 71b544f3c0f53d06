"""Real server processes for end-to-end tests: uvicorn on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def token_protocols(token: str) -> list[str]:
    """The WebSocket subprotocols that carry a syncbind token."""
    return ["syncbind", f"syncbind.token.{token}"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def test_database_env() -> dict[str, str]:
    """Environment that points a child process at the database the running test uses."""
    from django.conf import settings
    from django.db import connection

    env = {"SYNCBIND_TEST_DB_NAME": connection.settings_dict["NAME"]}
    for key in ("SYNCBIND_TEST_DB", "SYNCBIND_TEST_LAYER", "SYNCBIND_REDIS_PREFIX", "REDIS_URL"):
        if key in os.environ:
            env[key] = os.environ[key]
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        # The child uses the test database as its main database.
        env["SYNCBIND_PG_NAME"] = connection.settings_dict["NAME"]
    return env


test_database_env.__test__ = False  # a helper, not a test, wherever it is imported


@contextmanager
def server_process(
    app: str,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    settings_module: str = "tests.settings",
    port: int | None = None,
    log_path: Path | None = None,
):
    """Run ``uvicorn app`` in a child process; yields ``(port, process)``; stops it afterwards.

    ``log_path`` receives the child's stderr (where syncbind logs), for tests that
    wait for a log line.
    """
    port = port or free_port()
    child_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    log = open(log_path, "ab") if log_path else None  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=cwd,
        env=child_env,
        stderr=log,
    )
    try:
        wait_for_port(port, process)
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            log.close()


@contextmanager
def uvicorn_server(
    app: str,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    settings_module: str = "tests.settings",
):
    """Run ``uvicorn app`` in a child process; yields its port; stops it afterwards."""
    with server_process(app, env, cwd, settings_module) as (port, _process):
        yield port


def require_services() -> None:
    """Skip (or fail under SYNCBIND_REQUIRE_SERVICES=1) when Redis/PostgreSQL are not reachable."""
    from tests.services_available import services_available

    if services_available():
        return
    message = "needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432"
    if os.environ.get("SYNCBIND_REQUIRE_SERVICES"):
        pytest.fail(message + " (SYNCBIND_REQUIRE_SERVICES is set)")
    pytest.skip(message)


def require_mariadb() -> None:
    """Skip (or fail under SYNCBIND_REQUIRE_SERVICES=1) when MariaDB is not reachable."""
    from tests.services_available import reachable

    if reachable("127.0.0.1", 3306):
        return
    message = "needs MariaDB (or MySQL) on 127.0.0.1:3306"
    if os.environ.get("SYNCBIND_REQUIRE_SERVICES"):
        pytest.fail(message + " (SYNCBIND_REQUIRE_SERVICES is set)")
    pytest.skip(message)
