"""Where the work queue and its rate limiters read the time and sleep.

A seam of its own so tests drive delays on a ``ManualClock`` instead of
sleeping through them: a backoff of 1000 s is asserted in microseconds.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Where the queue reads the time and sleeps: the seam tests replace."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        """Block on ``condition`` (held by the caller) until notified or ``timeout`` passes.

        Spurious returns are allowed: callers re-check their state and the time.
        """
        ...


class SystemClock:
    """The real clock: ``time.monotonic`` and ``Condition.wait``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        condition.wait(timeout)


class ManualClock:
    """A virtual clock that moves only when told to, for tests.

    ``wait`` never sleeps on its own: it blocks until the condition is notified
    or ``advance`` moves time, so a delay of 1000 s is asserted in microseconds.
    Each real wait is bounded by ``real_timeout`` and then returns spuriously
    (which ``Clock.wait`` allows), so a waiter re-checks its state now and then
    even if nobody ever advances the clock.
    """

    def __init__(self, start: float = 0.0, *, real_timeout: float = 5.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._waiting: list[threading.Condition] = []
        self._real_timeout = real_timeout

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward and wake everything waiting on this clock."""
        if seconds < 0:
            raise ValueError("a monotonic clock does not go backwards")
        with self._lock:
            self._now += seconds
            waiting = list(dict.fromkeys(self._waiting))
        for condition in waiting:
            with condition:
                condition.notify_all()

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        if timeout is not None and timeout <= 0:
            return
        with self._lock:
            self._waiting.append(condition)
        try:
            condition.wait(self._real_timeout)
        finally:
            with self._lock:
                self._waiting.remove(condition)
