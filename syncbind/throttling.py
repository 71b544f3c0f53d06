"""Per-connection rate limiting (``RATE_LIMIT``: "100/s", "600/m", "10000/h")."""

from __future__ import annotations

import time

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

    One per connection, used by that connection's messages one at a time.
    """

    def __init__(self, count: int, period: float, clock=time.monotonic) -> None:
        self.capacity = float(count)
        self.refill = count / period
        self.tokens = float(count)
        self.clock = clock
        self.updated = clock()

    @classmethod
    def from_setting(cls, rate: str | None) -> RateLimit | None:
        return None if not rate else cls(*parse_rate(rate))

    def allow(self) -> bool:
        """Take one token; False when the bucket is empty (the message is refused)."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
