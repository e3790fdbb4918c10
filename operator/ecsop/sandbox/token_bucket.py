"""A token bucket, as AWS describes its API throttling.

"The bucket maximum capacity signifies the burst rate and the bucket refill rate
is the sustained rate" ("Request throttling for the Amazon ECS API",
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html):
each call takes one token; a call that finds the bucket empty is throttled and
takes none; tokens come back at the refill rate up to the capacity.  Time is
wall-clock seconds (``time.monotonic`` unless a test injects another clock):
AWS throttles on real time, whatever the sandbox's simulated clock does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    refill_per_second: float
    """Sustained rate: tokens added per second."""
    burst: int
    """Bucket capacity: calls allowed at once (a full bucket to start with)."""


class TokenBucket:
    def __init__(self, rate: Rate, now: Callable[[], float]) -> None:
        if rate.refill_per_second <= 0 or rate.burst < 1:
            raise ValueError("a token bucket needs refillPerSecond > 0 and burst >= 1")
        self.rate = rate
        self._now = now
        self._tokens = float(rate.burst)
        self._at = now()

    def take(self) -> bool:
        """Take a token for one call; False (throttled) when the bucket is empty."""
        now = self._now()
        elapsed = max(0.0, now - self._at)
        self._at = now
        self._tokens = min(
            float(self.rate.burst), self._tokens + elapsed * self.rate.refill_per_second
        )
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
