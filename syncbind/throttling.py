"""Rate limiting (``RATE_LIMIT``: "100/s", "600/m", "10000/h"): per WebSocket connection,
and per user (or client address) across HTTP requests."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(rate: str) -> tuple[int, float]:
    """``"100/s"`` → ``(100, 1.0)``."""
    try:
        count, period = rate.split("/")
        parsed = int(count), PERIODS[period.strip()[0].lower()]
        if parsed[0] < 1:
            raise ValueError(rate)  # a bucket that never fills refuses every message
        return parsed
    except (ValueError, KeyError, IndexError):
        raise ValueError(f"Invalid RATE_LIMIT {rate!r}: use '<count>/<s|m|h>'.") from None


class RateLimit:
    """A token bucket: ``count`` messages per ``period``, bursts up to ``count``.

    One per WebSocket connection, or per HTTP client (:class:`HttpRateLimits`), whose
    requests may run in several worker threads at once.
    """

    def __init__(self, count: int, period: float, clock=time.monotonic) -> None:
        self.capacity = float(count)
        self.refill = count / period
        self.tokens = float(count)
        self.clock = clock
        self.updated = clock()
        self._lock = threading.Lock()

    @classmethod
    def from_setting(cls, rate: str | None) -> RateLimit | None:
        return None if not rate else cls(*parse_rate(rate))

    def allow(self) -> bool:
        """Take one token; False when the bucket is empty (the message is refused)."""
        with self._lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


class HttpRateLimits:
    """The HTTP API's buckets: one per signed-in user, else per client address, shared by
    that client's requests in this process. At most ``max_clients`` are kept, the least
    recently used dropped first (a dropped client starts again with a full bucket)."""

    max_clients = 10_000

    def __init__(self) -> None:
        self._buckets: OrderedDict[Any, RateLimit] = OrderedDict()
        self._lock = threading.Lock()

    def for_client(self, rate: str | None, client: Any) -> RateLimit | None:
        """The bucket of ``client`` at ``rate`` (None: unlimited)."""
        if not rate:
            return None
        key = (rate, client)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = RateLimit(*parse_rate(rate))
                while len(self._buckets) > self.max_clients:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
            return bucket


http_rate_limits = HttpRateLimits()
