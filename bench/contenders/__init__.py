"""The contenders: one WebSocket consumer each, served alone by its own server.

``CONTENDERS`` maps a name to what the load generator needs to talk to it
(its wire protocol, see ``bench.protocols``) and to the module whose
``consumer()`` returns its ASGI application.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Contender:
    name: str
    label: str
    protocol: str
    module: str
    # Extra environment for its server process.
    env: tuple[tuple[str, str], ...] = ()
    # The scoped fan-out's cases it can take (bench.run.SCOPED_CASES); the others are n/a.
    scoped_cases: tuple[str, ...] = ()


CONTENDERS = {
    c.name: c
    for c in [
        Contender(
            "syncbind-sync",
            "syncbind BindingConsumer",
            "syncbind",
            "bench.contenders.syncbind_sync",
            scoped_cases=("row", "page", "own_row", "own_page"),
        ),
        Contender(
            "syncbind-async",
            "syncbind AsyncBindingConsumer",
            "syncbind",
            "bench.contenders.syncbind_async",
        ),
        # The same BindingConsumer with every one of its 16 workers taking work (no
        # running limit, as syncbind was before syncbind._workers.pool): what the limit buys.
        Contender(
            "syncbind-sync-16",
            "syncbind BindingConsumer, MAX_RUNNING_THREADS=16",
            "syncbind",
            "bench.contenders.syncbind_sync",
            env=(("BENCH_MAX_RUNNING_THREADS", "16"),),
        ),
        Contender("dcrf", "DCRF GenericAsyncAPIConsumer", "dcrf", "bench.contenders.dcrf"),
        Contender(
            "dcrf-observer",
            "DCRF observers",
            "dcrf",
            "bench.contenders.dcrf_observer",
            # An instance observer per row: no per-user filtered list.
            scoped_cases=("row", "own_row"),
        ),
        Contender(
            "channels-binding",
            "channels-binding AsyncConsumer",
            "channels_binding",
            "bench.contenders.channels_binding",
            env=(("DJANGO_ALLOW_ASYNC_UNSAFE", "true"),),
        ),
        Contender("plain", "hand-written JsonWebsocketConsumer", "plain", "bench.contenders.plain"),
        Contender("echo", "echo (no database)", "echo", "bench.contenders.echo"),
    ]
}
