"""Faults: Redis going away and coming back, a PostgreSQL connection killed under a
worker, a client that stops reading. Each runs against real server processes."""

import asyncio
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from syncbind.testing import connect_url
from tests import factories
from tests.livesystem import TIMEOUT, make_shared_env, shell
from tests.servers import (
    free_port,
    require_services,
    server_process,
    test_database_env,
    token_protocols,
    wait_for_port,
)

pytestmark = [pytest.mark.e2e]

SEED = """
import json
from syncbind.authentication import make_token
from tests.factories import ProductFactory, SuperUserFactory
user = SuperUserFactory()
print(json.dumps({"token": make_token(user), "product": ProductFactory(name="start").pk}))
"""


def wait_for_log(path: Path, text: str, count: int = 1, timeout: float = 30) -> str:
    """Wait until ``text`` appears ``count`` times in the server log; return the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = path.read_text(errors="replace") if path.exists() else ""
        if log.count(text) >= count:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged {count} time(s):\n{log[-3000:]}")


class RedisServer:
    """A redis-server of the test's own, on a free port, that the test can stop and restart."""

    def __init__(self):
        binary = shutil.which("redis-server")
        if binary is None:
            require_services()  # fails under SYNCBIND_REQUIRE_SERVICES, else skips
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def own_redis():
    redis = RedisServer()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def test_redis_outage(own_redis, tmp_path):
    log_path = tmp_path / "server.log"
    with make_shared_env(redis_url=own_redis.url) as env:
        seed = json.loads(shell(env, SEED).strip().splitlines()[-1])
        token, pk = quote(seed["token"]), seed["product"]
        with server_process("tests.asgi:application", env=env, log_path=log_path) as (
            port,
            _process,
        ):

            async def scenario():
                async with (
                    connect_url(
                        f"ws://127.0.0.1:{port}/ws/",
                        subprotocols=token_protocols(token),
                        timeout=TIMEOUT,
                    ) as watcher,
                    connect_url(
                        f"ws://127.0.0.1:{port}/ws/async/",
                        subprotocols=token_protocols(token),
                        timeout=TIMEOUT,
                    ) as writer,
                ):
                    await watcher.send_event("testapp.Product.retrieve", {"id": pk})
                    await writer.send_event("testapp.Product.update", {"id": pk, "name": "before"})
                    assert (await watcher.receive_push("testapp.Product.retrieve"))["data"][
                        "name"
                    ] == "before"

                    own_redis.stop()
                    # Requests and writes keep working without Redis, and the writes are
                    # pushed all the same: captured changes cross no channel layer.
                    for name in ("during 1", "during 2", "during 3"):
                        reply = await writer.send_event(
                            "testapp.Product.update", {"id": pk, "name": name}
                        )
                        assert reply["data"]["row"]["name"] == name
                    while True:
                        push = await watcher.receive_push("testapp.Product.retrieve")
                        if push["data"]["name"] == "during 3":
                            break
                        assert push["data"]["name"].startswith("during")
                    # So is a write by another program.
                    await asyncio.to_thread(
                        shell,
                        env,
                        f"from tests.testapp.models import Product\n"
                        f"Product.objects.filter(pk={pk}).update(name='by a cron job')",
                    )
                    push = await watcher.receive_push("testapp.Product.retrieve")
                    assert push["data"]["name"] == "by a cron job"
                    # The hub's group receive fails meanwhile (server pushes wait for it).
                    await asyncio.to_thread(
                        wait_for_log, log_path, "hub cannot receive changes from the channel layer"
                    )

                    own_redis.start()
                    await asyncio.to_thread(wait_for_log, log_path, "hub receives changes again")
                    await writer.send_event("testapp.Product.update", {"id": pk, "name": "after"})
                    push = await watcher.receive_push("testapp.Product.retrieve")
                    assert push["data"]["name"] == "after"
                    # Nothing was announced on the layer: nothing could be lost there.
                    assert "could not announce" not in log_path.read_text()

            asyncio.run(scenario())


SEED_TWO_USERS = """
import json
from syncbind.authentication import make_token
from tests.factories import ProductFactory, SuperUserFactory
writer, reader = SuperUserFactory(), SuperUserFactory()
print(json.dumps({"token": make_token(writer), "reader": make_token(reader),
                  "product": ProductFactory(name="start").pk}))
"""


def test_writes_and_reads_do_not_wait_on_a_paused_redis(own_redis, tmp_path):
    """With Redis taking no writes, a write's reply and another user's read come at their
    usual pace (the announcement waits in the announcer, not in the worker); once Redis
    answers, the subscriber gets the push, late."""
    import redis

    log_path = tmp_path / "server.log"
    control = redis.Redis.from_url(own_redis.url)
    # Two workers: a write held on Redis would hold one of them, and the read the other.
    with make_shared_env(redis_url=own_redis.url) as env:
        env = {**env, "SYNCBIND_TEST_THREAD_POOL_SIZE": "2"}
        seed = json.loads(shell(env, SEED_TWO_USERS).strip().splitlines()[-1])
        token, reader_token = quote(seed["token"]), quote(seed["reader"])
        pk = seed["product"]
        with server_process("tests.asgi:application", env=env, log_path=log_path) as (
            port,
            _process,
        ):

            async def scenario():
                url = f"ws://127.0.0.1:{port}/ws/"
                async with (
                    connect_url(url, subprotocols=token_protocols(token)) as watcher,
                    connect_url(url, subprotocols=token_protocols(token)) as writer,
                    connect_url(url, subprotocols=token_protocols(reader_token)) as reader,
                ):
                    await watcher.send_event("testapp.Product.retrieve", {"id": pk})
                    await writer.send_event("testapp.Product.update", {"id": pk, "name": "before"})
                    push = await watcher.receive_push("testapp.Product.retrieve", timeout=TIMEOUT)
                    assert push["data"]["name"] == "before"

                    # In effect once it returns: every write command waits, group_send's too.
                    control.client_pause(15000, all=False)
                    try:
                        for name in ("during 1", "during 2", "during 3"):
                            started = time.monotonic()
                            reply = await writer.send_event(
                                "testapp.Product.update", {"id": pk, "name": name}
                            )
                            assert time.monotonic() - started < 2, "the write waited on Redis"
                            assert reply["data"]["row"]["name"] == name
                        started = time.monotonic()
                        reply = await reader.send_event(
                            "testapp.Product.retrieve", {"id": pk, "subscribe": False}
                        )
                        assert time.monotonic() - started < 2, "the read waited on Redis"
                        assert reply["data"]["name"] == "during 3"
                    finally:
                        control.client_unpause()
                    # The announcer delivers what waited, in order: the last state arrives.
                    while True:
                        push = await watcher.receive_push("testapp.Product.retrieve", TIMEOUT)
                        if push["data"]["name"] == "during 3":
                            break
                        assert push["data"]["name"].startswith("during")

            asyncio.run(scenario())
    control.close()
    assert "could not announce" not in log_path.read_text()


def test_postgres_connection_killed_under_a_worker(shared_env):
    env = {
        **shared_env,
        "SYNCBIND_TEST_THREAD_POOL_SIZE": "1",
    }  # one worker: the same thread each time
    seed = json.loads(shell(env, SEED).strip().splitlines()[-1])
    token, pk = quote(seed["token"]), seed["product"]
    with server_process("tests.asgi:application", env=env) as (port, _process):

        async def scenario():
            async with connect_url(
                f"ws://127.0.0.1:{port}/ws/",
                subprotocols=token_protocols(token),
                timeout=TIMEOUT,
            ) as client:
                assert (await client.send_event("testapp.Product.retrieve", {"id": pk}))["data"][
                    "name"
                ] == "start"
                killed = await asyncio.to_thread(_terminate_backends, env["SYNCBIND_PG_NAME"])
                assert killed >= 1  # the worker's kept connection
                reply = await client.send_event(
                    "testapp.Product.update", {"id": pk, "name": "after reconnect"}
                )
                assert reply["data"]["row"]["name"] == "after reconnect"

        asyncio.run(scenario())


def _terminate_backends(database):
    import psycopg

    from tests.livesystem import _pg_dsn

    with psycopg.connect(_pg_dsn("postgres"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return len(rows)


def _rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class RawClient:
    """A WebSocket client over a plain blocking socket: it reads only when told to.

    (Client libraries keep reading in the background; with loopback buffers of up to
    32 MB, a "stalled" library client would not stall the server at all.)
    """

    def __init__(self, port, path, subprotocols=None):
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # no autotuning
        self.sock.connect(("127.0.0.1", port))
        self.protocol = ClientProtocol(
            parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None, subprotocols=subprotocols
        )
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        head = b""
        while b"\r\n\r\n" not in head:  # byte by byte: read nothing past the handshake
            head += self.sock.recv(1)
        self.protocol.receive_data(head)
        self.protocol.events_received()  # the handshake response
        assert self.protocol.handshake_exc is None, self.protocol.handshake_exc

    def _flush(self):
        self.sock.sendall(b"".join(self.protocol.data_to_send()))

    def send(self, content):
        self.protocol.send_text(json.dumps(content).encode())
        self._flush()

    def read_all(self):
        """Read until the server closes; return (text messages, close code)."""
        self.sock.settimeout(10)
        messages = []
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                break
            if not data:
                break
            self.protocol.receive_data(data)
            messages += [
                event for event in self.protocol.events_received() if event.opcode.name == "TEXT"
            ]
            if self.protocol.close_rcvd is not None:
                break
        self.sock.close()
        close = self.protocol.close_rcvd
        return messages, close.code if close else None


@pytest.mark.django_db(transaction=True)
def test_client_that_stops_reading_is_closed(tmp_path, capsys):
    from syncbind.authentication import make_token

    user = factories.SuperUserFactory()
    env = {
        **test_database_env(),
        "SYNCBIND_TEST_TOKEN_AUTH": "1",
        "SYNCBIND_TEST_MAX_OUTGOING_BYTES": str(1 << 20),
    }
    log_path = tmp_path / "server.log"
    with server_process("tests.asgi:application", env=env, log_path=log_path) as (port, process):
        client = RawClient(port, "/ws/", token_protocols(make_token(user)))
        before = _rss_kib(process.pid)
        # 200 replies of 200 kB (40 MB) that the client does not read.
        for index in range(200):
            client.send(
                {"event": "testapp.Product.blob", "data": {"size": 200_000}, "request_id": index}
            )
        wait_for_log(log_path, "Closing a WebSocket whose client does not read")
        grown_mib = (_rss_kib(process.pid) - before) / 1024
        messages, close_code = client.read_all()
    print(
        f"stalled client: server RSS grew {grown_mib:.1f} MiB for 40 MB of unread replies; {len(messages)} delivered"
    )
    assert close_code == 4008
    assert len(messages) < 200
    assert grown_mib < 32  # bounded: the outbox limit plus socket buffers, not 40 MB and growing
