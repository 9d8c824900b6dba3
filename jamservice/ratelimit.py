"""A token bucket for per-member event rates."""

from __future__ import annotations

import time


class TokenBucket:
    """Allows `rate` events a second on average, with bursts of up to `burst`."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = time.monotonic()

    def allow(self, now: float | None = None) -> bool:
        """Take one token if there is one."""
        if now is None:
            now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
