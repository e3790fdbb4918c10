"""The simulated clock every sandbox component reads time from.

Simulated time runs ``speed`` times faster than real time from the moment the
speed was last set, and can be pushed forward by hand (``advance``).  Speed 0
freezes it, which is how tests step a rollout second by second without ever
sleeping.  Nothing in the sandbox calls ``time.time()`` directly: the ECS model,
ELB target health and CloudWatch alarms all move on this one clock, so a test
that advances it sees every consequence at once.
"""

from __future__ import annotations

import threading
import time


class SimClock:
    """Epoch seconds that flow at ``speed`` x real time; thread-safe."""

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if speed < 0:
            raise ValueError("clock speed must be >= 0")
        self._lock = threading.Lock()
        self._base_sim = time.time() if start is None else start
        self._base_real = time.monotonic()
        self._speed = speed

    def now(self) -> float:
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> float:
        return self._base_sim + (time.monotonic() - self._base_real) * self._speed

    def advance(self, seconds: float) -> float:
        """Jump forward; returns the new time.  Time never runs backwards."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._rebase()
            self._base_sim += seconds
            return self._base_sim

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if value < 0:
            raise ValueError("clock speed must be >= 0")
        with self._lock:
            self._rebase()
            self._speed = value

    def _rebase(self) -> None:
        # Fold the time elapsed so far into the base, so a speed change
        # applies only from now on.
        self._base_sim = self._now_locked()
        self._base_real = time.monotonic()
