"""The controller's work queue: release names, de-duplicated, delayed, rate-limited.

This is client-go's ``util/workqueue`` (``queue.go``, ``delaying_queue.go``,
``rate_limiting_queue.go``; the rate limiters are in ``ecsop.ratelimit``) in
Python, because its guarantees are exactly what a level-triggered controller
needs:

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
import threading
from collections import deque
from collections.abc import Callable

from ecsop.runtime.clock import Clock, SystemClock
from ecsop.runtime.ratelimit import RateLimiter, default_rate_limiter

__all__ = ["RateLimitingQueue"]


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
        self._producers_waiting = 0
        """Callers of ``wait_for_room``: each item taken wakes them."""

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
                    if self._producers_waiting:
                        self._cond.notify_all()
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

    def wait_for_room(self, limit: int, timeout: float) -> bool:
        """Block until fewer than ``limit`` items are ready, the queue shuts down, or
        ``timeout`` passes; whether there is room.

        A producer's backpressure, which client-go's queue does not need because
        its informers hold no answer that can go stale: ecsop's resync queues each
        batch with its DescribeServices answer waiting in the service cache, and
        an answer not taken within its freshness is described again alone.
        """
        with self._cond:
            deadline = self._clock.monotonic() + timeout
            self._producers_waiting += 1
            try:
                while len(self._queue) >= limit and not self._shutting_down:
                    remaining = deadline - self._clock.monotonic()
                    if remaining <= 0:
                        return False
                    self._clock.wait(self._cond, remaining)
                return True
            finally:
                self._producers_waiting -= 1

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
