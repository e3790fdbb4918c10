"""The controller's work queue: release names, de-duplicated, delayed, rate-limited.

This is client-go's ``util/workqueue`` (``queue.go``, ``delaying_queue.go``,
``rate_limiting_queue.go``, ``default_rate_limiters.go``) in Python, because
its guarantees are exactly what a level-triggered controller needs:

- an item is waiting at most once: ``add`` of a waiting item does nothing, so a
  burst of spec changes costs one reconcile, not one per event;
- an item is held by at most one worker: ``add`` of an item being processed
  marks it *dirty*, and ``done`` puts it back, so the change is not lost and
  two workers never reconcile one release at the same time;
- ``add_after`` schedules a look later (a rollout being watched); scheduling
  an item that is already scheduled keeps the *earlier* time;
- ``add_rate_limited`` re-queues after an error with per-item exponential
  backoff combined (by max) with an overall token bucket, and ``forget``
  resets the backoff once a pass succeeds.

Items are identity only (release names); nothing else travels through the
queue, so every pass re-reads the world.

Unlike client-go there is no background goroutine moving delayed items into
the queue: waiting workers compute how long to sleep from the earliest due
time, and every operation first moves due items across. Time is read and
waited on only through an injected ``Clock``, so tests drive delays on a
``ManualClock`` instead of sleeping through them.

Callers: ``ecsop.controller`` (the watcher and resync add, workers get/done,
outcomes map to ``forget``/``add_rate_limited``/``add_after``), which wires the
``on_depth``/``on_retry`` hooks to ``ecsop.metrics``.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "BucketRateLimiter",
    "Clock",
    "ItemExponentialFailureRateLimiter",
    "ManualClock",
    "MaxOfRateLimiter",
    "RateLimiter",
    "RateLimiterSettings",
    "RateLimitingQueue",
    "SystemClock",
    "default_rate_limiter",
]


# --- time --------------------------------------------------------------------


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


# --- rate limiters ---------------------------------------------------------


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


# --- the queue ---------------------------------------------------------------


class RateLimitingQueue:
    """A thread-safe, de-duplicating, delaying, rate-limited FIFO of release names.

    Worker protocol (as in client-go)::

        while (name := queue.get()) is not None:
            try:
                outcome = reconcile(name)
            finally:
                queue.done(name)

    ``done`` must be called exactly once for every item ``get`` returned, or
    that item is never handed out again.

    ``on_depth`` and ``on_retry`` are the metrics hooks (``ecsop_workqueue_depth``
    and ``ecsop_workqueue_retries_total``): ``on_depth(n)`` whenever the number
    of ready items changes, ``on_retry()`` on each ``add_rate_limited``. They
    run with the queue's lock held, so values arrive in order; they must be
    quick and must not call back into the queue. A Prometheus ``Gauge.set`` /
    ``Counter.inc`` fits as is.
    """

    def __init__(
        self,
        *,
        rate_limiter: RateLimiter | None = None,
        clock: Clock | None = None,
        on_depth: Callable[[int], object] | None = None,
        on_retry: Callable[[], object] | None = None,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self._limiter = rate_limiter or default_rate_limiter(clock=self._clock)
        self._on_depth = on_depth or _ignore_depth
        self._on_retry = on_retry or _ignore_retry
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        """Items that need processing: waiting in ``_queue``, or processing and re-added."""
        self._processing: set[str] = set()
        self._waiting: dict[str, tuple[float, int]] = {}
        """Items scheduled by ``add_after`` -> (due, sequence) of their live heap entry."""
        self._heap: list[tuple[float, int, str]] = []
        """(due, sequence, item); an entry not recorded in ``_waiting`` is stale."""
        self._sequence = itertools.count()
        self._shutting_down = False

    # -- client-go Interface ----------------------------------------------------

    def add(self, item: str) -> None:
        """Mark ``item`` as needing processing. Ignored after ``shutdown``."""
        with self._cond:
            self._promote_due()
            if self._shutting_down:
                return
            self._add_locked(item)

    def get(self, timeout: float | None = None) -> str | None:
        """Take the next item, blocking up to ``timeout`` seconds (``None``: no limit).

        Returns ``None`` on timeout, or once the queue is shut down and has no
        ready items left (queued items are still handed out after ``shutdown``
        so that work already accepted is finished).
        """
        with self._cond:
            deadline = None if timeout is None else self._clock.monotonic() + timeout
            while True:
                self._promote_due()
                if self._queue:
                    item = self._queue.popleft()
                    self._processing.add(item)
                    self._dirty.discard(item)
                    self._on_depth(len(self._queue))
                    return item
                if self._shutting_down:
                    return None
                now = self._clock.monotonic()
                wait: float | None = None
                if deadline is not None:
                    wait = deadline - now
                    if wait <= 0:
                        return None
                if self._heap:
                    until_due = self._heap[0][0] - now
                    wait = until_due if wait is None else min(wait, until_due)
                self._clock.wait(self._cond, wait)

    def done(self, item: str) -> None:
        """Finish processing ``item``; if it was re-added meanwhile, queue it again."""
        with self._cond:
            if item not in self._processing:
                return  # a second ``done`` must not queue a waiting item twice
            self._processing.remove(item)
            if item in self._dirty:
                self._queue.append(item)
                self._on_depth(len(self._queue))
                self._cond.notify()
            self._promote_due()

    def __len__(self) -> int:
        """Items ready to be handed out (not those processing or scheduled for later)."""
        with self._cond:
            self._promote_due()
            return len(self._queue)

    @property
    def depth(self) -> int:
        """Same as ``len(queue)``; the value reported as ``ecsop_workqueue_depth``."""
        return len(self)

    @property
    def waiting(self) -> int:
        """Items scheduled by ``add_after``/``add_rate_limited`` and not yet due."""
        with self._cond:
            self._promote_due()
            return len(self._waiting)

    def shutdown(self) -> None:
        """Stop accepting items and wake every worker.

        Ready items are still handed out (and items re-added while processing
        are still re-queued by ``done``), after which ``get`` returns ``None``.
        Items scheduled for later are dropped: a stopping daemon does not wait
        for a rollout poll due in five seconds, and the next one re-reads AWS.
        """
        with self._cond:
            self._shutting_down = True
            self._waiting.clear()
            self._heap.clear()
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        """True once ``shutdown`` has been called."""
        with self._cond:
            return self._shutting_down

    # -- client-go DelayingInterface -------------------------------------------

    def add_after(self, item: str, delay: float) -> None:
        """Add ``item`` once ``delay`` seconds have passed (now, if ``delay <= 0``).

        If ``item`` is already scheduled, the earlier of the two times wins:
        "look again in 5 s" must not postpone a retry already due in 1 s.
        """
        with self._cond:
            self._promote_due()
            if self._shutting_down:
                return
            if delay <= 0:
                self._add_locked(item)
                return
            due = self._clock.monotonic() + delay
            current = self._waiting.get(item)
            if current is not None and current[0] <= due:
                return
            entry = (due, next(self._sequence))
            self._waiting[item] = entry
            heapq.heappush(self._heap, (*entry, item))
            # A worker may be sleeping until a later due time (or forever): let it recompute.
            self._cond.notify_all()

    # -- client-go RateLimitingInterface ---------------------------------------

    def add_rate_limited(self, item: str) -> None:
        """Re-queue ``item`` after a failure, once the rate limiter allows.

        Counted as a retry. (client-go counts every ``AddAfter`` as a retry;
        ecsop uses ``add_after`` for routine rollout polling, which is not a
        retry, so only this path is counted.)
        """
        with self._cond:
            if self._shutting_down:
                return
            self._on_retry()
        self.add_after(item, self._limiter.when(item))

    def forget(self, item: str) -> None:
        """The item succeeded: reset its backoff. It stays in the queue if it is there."""
        self._limiter.forget(item)

    def num_requeues(self, item: str) -> int:
        """Failures of ``item`` recorded by the rate limiter since it was last forgotten."""
        return self._limiter.num_requeues(item)

    # -- internals --------------------------------------------------------------

    def _add_locked(self, item: str) -> None:
        if item in self._dirty:
            return
        self._dirty.add(item)
        if item in self._processing:
            return  # ``done`` re-queues it: one worker per item.
        self._queue.append(item)
        self._on_depth(len(self._queue))
        self._cond.notify()

    def _promote_due(self) -> None:
        """Move every scheduled item that is due into the queue, earliest first."""
        if not self._heap:
            return
        now = self._clock.monotonic()
        while self._heap:
            due, sequence, item = self._heap[0]
            if self._waiting.get(item) != (due, sequence):
                heapq.heappop(self._heap)  # stale: rescheduled earlier, or dropped
                continue
            if due > now:
                return
            heapq.heappop(self._heap)
            del self._waiting[item]
            if not self._shutting_down:
                self._add_locked(item)


def _ignore_depth(depth: int) -> None:
    """The default ``on_depth``: the queue works without Prometheus."""


def _ignore_retry() -> None:
    """The default ``on_retry``."""
