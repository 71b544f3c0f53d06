"""Channel-layer configuration helpers.

channels-redis 4.3 with redis-py 8 needs two settings that its defaults get
wrong for syncbind's long-lived hub:

- ``socket_timeout``: redis-py 8 defaults to 5 s, the same as channels-redis's
  blocking receive, so an idle receive fails with "Timeout reading from ...";
  it must be longer than the receive (or None). Reported as
  django/channels_redis#422 (channels-redis 4.3 and earlier with redis-py 8.0
  and later; redis-py 7 had no default timeout).
- ``max_connections``: the pool's default of 100 raises MaxConnectionsError
  under bursts; syncbind's hub needs few connections, but other consumers and
  the saving threads share the pool.

These are settings, not a workaround (so not in ``syncbind/_compat/``): the
values are right with every version (a socket timeout above the receive's
also notices a dead connection where redis-py 7 had none), and a site can
override them.
"""

from __future__ import annotations

from typing import Any


def redis_channel_layer(
    url: str = "redis://127.0.0.1:6379/0",
    *,
    max_connections: int = 1000,
    socket_timeout: float | None = 30.0,
    **config: Any,
) -> dict[str, Any]:
    """A ``CHANNEL_LAYERS`` entry for channels-redis with safe connection settings::

        CHANNEL_LAYERS = {"default": redis_channel_layer(os.environ["REDIS_URL"])}

    Extra keyword arguments (``prefix``, ``expiry``, ``group_expiry``,
    ``capacity``...) go to RedisChannelLayer's CONFIG.
    """
    host = {"address": url, "max_connections": max_connections, "socket_timeout": socket_timeout}
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [host], **config},
    }
