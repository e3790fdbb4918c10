"""How long a failing item waits before its next retry: client-go's rate limiters.

``default_rate_limiters.go`` in Python. The work queue asks ``when(item)``
on every ``add_rate_limited`` and ``forget(item)`` once a pass succeeds. The
default combines, by max, a per-item exponential backoff (one release failing
fast backs off on its own) with an overall token bucket (many failing at once
are held to its rate, so AWS is not hammered).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Protocol

from ecsop.runtime.clock import Clock, SystemClock


@dataclass(frozen=True)
class RateLimiterSettings:
    """How hard a failing release is retried; client-go's defaults.

    The per-item backoff and the overall bucket are combined by max: one
    release failing fast backs off on its own, many failing at once are held
    to the bucket's rate so AWS is not hammered.
    """

    base_delay: float = 0.005
    """Seconds before the first retry of an item; doubles with each further failure."""
    max_delay: float = 1000.0
    """Cap on one item's backoff, in seconds, however often it has failed."""
    qps: float = 10.0
    """Sustained retries per second across all items (the token bucket's refill rate)."""
    burst: int = 100
    """Retries allowed at once before ``qps`` applies (the token bucket's size)."""


class RateLimiter(Protocol):
    """Decides how long an item waits before its next retry (client-go's RateLimiter)."""

    def when(self, item: str) -> float:
        """Seconds to wait before retrying ``item``; records one more failure."""
        ...

    def forget(self, item: str) -> None:
        """Stop tracking ``item``: its next failure starts from the base delay."""
        ...

    def num_requeues(self, item: str) -> int:
        """How many failures of ``item`` have been recorded since it was last forgotten."""
        ...


class ItemExponentialFailureRateLimiter:
    """``base_delay * 2**failures``, capped at ``max_delay``, per item."""

    def __init__(self, base_delay: float, max_delay: float) -> None:
        self._base = base_delay
        self._max = max_delay
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def when(self, item: str) -> float:
        with self._lock:
            exponent = self._failures.get(item, 0)
            self._failures[item] = exponent + 1
        # Compare in log space so a long-failing item cannot overflow a float.
        if exponent >= 1024 or self._base * math.pow(2, exponent) > self._max:
            return self._max
        return float(self._base * math.pow(2, exponent))

    def forget(self, item: str) -> None:
        with self._lock:
            self._failures.pop(item, None)

    def num_requeues(self, item: str) -> int:
        with self._lock:
            return self._failures.get(item, 0)


class BucketRateLimiter:
    """An overall token bucket (golang.org/x/time/rate's reservation semantics).

    Each ``when`` takes a token; when none are left the tokens go negative and
    the caller is told how long until its token exists, so queued retries are
    spaced at ``qps`` and never refused.
    """

    def __init__(self, qps: float, burst: int, clock: Clock) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("a token bucket needs qps > 0 and burst >= 1")
        self._qps = qps
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock.monotonic()
        self._lock = threading.Lock()

    def when(self, item: str) -> float:
        with self._lock:
            now = self._clock.monotonic()
            elapsed = max(0.0, now - self._last)
            self._tokens = min(self._burst, self._tokens + elapsed * self._qps)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self._qps

    def forget(self, item: str) -> None:
        """The bucket is shared, not per item: nothing to forget."""

    def num_requeues(self, item: str) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay of several limiters; requeues counted by the most pessimistic."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self._limiters = limiters

    def when(self, item: str) -> float:
        # Every limiter must see the failure (each keeps its own count), so no short-circuit.
        return max([limiter.when(item) for limiter in self._limiters])

    def forget(self, item: str) -> None:
        for limiter in self._limiters:
            limiter.forget(item)

    def num_requeues(self, item: str) -> int:
        return max(limiter.num_requeues(item) for limiter in self._limiters)


def default_rate_limiter(
    settings: RateLimiterSettings | None = None, clock: Clock | None = None
) -> RateLimiter:
    """client-go's ``DefaultControllerRateLimiter``: max(per-item backoff, overall bucket)."""
    settings = settings or RateLimiterSettings()
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(settings.base_delay, settings.max_delay),
        BucketRateLimiter(settings.qps, settings.burst, clock or SystemClock()),
    )
