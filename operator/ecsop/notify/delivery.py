"""Delivering notifications: a bounded queue, its own worker threads, retries that end.

``Notifier.publish`` is what the controller calls, from a reconcile worker:
it routes the event, drops what this process already queued (same provider,
same idempotency key), and enqueues without waiting. A full queue drops and
counts; nothing a receiver does can slow a reconcile down.

The queue keeps one FIFO lane per (provider, release), so a release's events
reach each receiver in the order they happened: GitHub must see ``pending``
before ``failure``, or the pull request would show the older state last. A
lane whose head waits for a retry holds its later events back; other lanes
go on. Workers never sleep through a backoff: a retried delivery goes back
to the queue with the time it is due.

A failed attempt that may succeed later (429, 408, 5xx, a timeout, a refused
connection) is retried with exponential backoff and jitter, waiting at least
what ``Retry-After`` asks; after ``maxAttempts``, or when the receiver asks to
wait longer than ``maxRetryAfterSeconds``, the delivery is dropped and counted
(``ecsop_notifications_dropped_total``, alert ``EcsopNotificationsDropped``).
A receiver's refusal (another 4xx) is dropped at once. Delivery is
at-least-once while the daemon runs: a receiver may see an event twice (an
answer lost after it was processed), with the same ``id`` both times.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from ecsop.notify.config import Delivery
from ecsop.notify.events import Event
from ecsop.notify.http import DeliveryError, HttpClient, Transport, urllib_transport
from ecsop.notify.metrics import NotifyMetrics
from ecsop.notify.routing import Router

log = structlog.get_logger("ecsop.notify")

SENT_REMEMBERED = 10_000
"""(provider, event id) pairs remembered, so a repeated publish is not queued twice."""


class Provider(Protocol):
    """A receiver kind: renders an event into requests and sends them through ``client``."""

    name: str

    def wants(self, event: Event) -> bool:
        """Whether this provider has anything to say about ``event``."""
        ...

    def deliver(self, event: Event, client: HttpClient) -> None:
        """Send ``event``; raises ``DeliveryError`` when an attempt fails."""
        ...


@dataclass
class _Job:
    provider: str
    event: Event
    queued_at: float
    due: float
    attempts: int = 0

    @property
    def lane(self) -> str:
        return f"{self.provider}\0{self.event.release}"


class _Lanes:
    """A bounded queue of FIFO lanes; a lane's head is handed out only when due and idle."""

    def __init__(self, capacity: int, clock: Callable[[], float]) -> None:
        self._capacity = capacity
        self._clock = clock
        self._cond = threading.Condition()
        self._lanes: dict[str, deque[_Job]] = {}
        self._ready: list[tuple[float, int, str]] = []
        """(due, tie-breaker, lane) for each lane whose head is waiting to be taken."""
        self._busy: set[str] = set()
        self._size = 0
        self._seq = itertools.count()

    def __len__(self) -> int:
        with self._cond:
            return self._size

    def put(self, job: _Job) -> bool:
        with self._cond:
            if self._size >= self._capacity:
                return False
            lane = self._lanes.setdefault(job.lane, deque())
            lane.append(job)
            self._size += 1
            if len(lane) == 1 and job.lane not in self._busy:
                self._schedule(job.lane, job.due)
            return True

    def take(self, timeout: float) -> _Job | None:
        """The next due head of an idle lane, waiting at most ``timeout`` seconds."""
        deadline = self._clock() + timeout
        with self._cond:
            while True:
                now = self._clock()
                if self._ready and self._ready[0][0] <= now:
                    _, _, name = heapq.heappop(self._ready)
                    self._busy.add(name)
                    return self._lanes[name][0]
                wait = deadline - now
                if self._ready:
                    wait = min(wait, self._ready[0][0] - now)
                if wait <= 0:
                    return None
                self._cond.wait(wait)

    def finish(self, job: _Job) -> None:
        """``job`` (its lane's head) is done, delivered or dropped: the next one may go."""
        with self._cond:
            lane = self._lanes[job.lane]
            lane.popleft()
            self._size -= 1
            self._busy.discard(job.lane)
            if lane:
                self._schedule(job.lane, max(lane[0].due, self._clock()))
            else:
                del self._lanes[job.lane]
            self._cond.notify_all()

    def again(self, job: _Job, due: float) -> None:
        """``job`` stays its lane's head and is handed out again at ``due``."""
        with self._cond:
            job.due = due
            self._busy.discard(job.lane)
            self._schedule(job.lane, due)

    def wait_empty(self, timeout: float) -> bool:
        deadline = self._clock() + timeout
        with self._cond:
            while self._size:
                left = deadline - self._clock()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def drain(self) -> list[_Job]:
        """Remove and return every job not in flight."""
        with self._cond:
            left = [
                job
                for name, lane in self._lanes.items()
                for index, job in enumerate(lane)
                if index or name not in self._busy
            ]
            for name in list(self._lanes):
                if name in self._busy:
                    head = self._lanes[name][0]
                    self._lanes[name] = deque([head])
                else:
                    del self._lanes[name]
            self._size -= len(left)
            self._ready.clear()
            self._cond.notify_all()
            return left

    def _schedule(self, lane: str, due: float) -> None:
        heapq.heappush(self._ready, (due, next(self._seq), lane))
        self._cond.notify()


def backoff(attempts: int, retry_after: float | None, settings: Delivery, jitter: float) -> float:
    """Seconds before attempt ``attempts + 1``: exponential, capped, at least ``Retry-After``.

    ``jitter`` in [0, 1) spreads retries of many deliveries over the upper half
    of the interval, so a receiver coming back is not hit by all of them at once.
    """
    delay = min(
        settings.max_backoff_seconds, settings.initial_backoff_seconds * 2.0 ** (attempts - 1)
    )
    delay = delay * (0.5 + 0.5 * jitter)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


class Notifier:
    """Routes events to providers and delivers them from its own threads."""

    def __init__(
        self,
        providers: Sequence[Provider],
        router: Router,
        settings: Delivery,
        metrics: NotifyMetrics,
        *,
        transport: Transport = urllib_transport,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._providers = {p.name: p for p in providers}
        self._router = router
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._clients = {
            p.name: HttpClient(
                p.name,
                transport,
                settings.timeout_seconds,
                lambda provider, code: metrics.attempts.labels(provider, code).inc(),
                wall_clock,
            )
            for p in providers
        }
        self._queue = _Lanes(settings.queue_size, clock)
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._closed = threading.Event()
        self._workers: list[threading.Thread] = []
        self._random = random.Random()
        for name in self._providers:
            metrics.provider(name)

    def start(self) -> None:
        for index in range(self._settings.workers):
            worker = threading.Thread(target=self._work, name=f"ecsop-notify-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        log.info("notifications on", providers=list(self._providers))

    def publish(self, event: Event) -> None:
        """Queue ``event`` for every provider that should hear it; never blocks, never raises."""
        if self._closed.is_set():
            return
        for name in self._router.providers_for(event):
            provider = self._providers[name]
            if not provider.wants(event) or not self._first(name, event.id):
                continue
            now = self._clock()
            if not self._queue.put(_Job(name, event, now, now)):
                self._dropped(name, event, "queue_full", "the notification queue is full")
        self._metrics.queue_depth.set(len(self._queue))

    def close(self, grace: float = 5.0) -> None:
        """Deliver what is queued for at most ``grace`` seconds, then drop the rest."""
        if not self._workers:
            return
        self._queue.wait_empty(grace)
        self._closed.set()
        for job in self._queue.drain():
            self._dropped(job.provider, job.event, "shutdown", "the daemon stopped")
        for worker in self._workers:
            worker.join(self._settings.timeout_seconds + 1)
        self._workers.clear()
        for job in self._queue.drain():  # in flight at close, then put back for a retry
            self._dropped(job.provider, job.event, "shutdown", "the daemon stopped")
        self._metrics.queue_depth.set(len(self._queue))

    def _first(self, provider: str, event_id: str) -> bool:
        key = (provider, event_id)
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            while len(self._seen) > SENT_REMEMBERED:
                self._seen.popitem(last=False)
            return True

    def _work(self) -> None:
        while not self._closed.is_set():
            job = self._queue.take(0.5)
            if job is None:
                continue
            self._attempt(job)
            self._metrics.queue_depth.set(len(self._queue))

    def _attempt(self, job: _Job) -> None:
        provider = self._providers[job.provider]
        event = job.event
        try:
            provider.deliver(event, self._clients[job.provider])
        except DeliveryError as error:
            job.attempts += 1
            self._failed(job, error)
            return
        except Exception:  # a provider bug must not kill the worker
            log.exception("notification provider failed", provider=job.provider, id=event.id)
            self._queue.finish(job)
            self._dropped(job.provider, event, "rejected", "the provider raised")
            return
        self._queue.finish(job)
        self._metrics.sent.labels(job.provider, event.type.value).inc()
        self._metrics.latency.labels(job.provider).observe(self._clock() - job.queued_at)
        log.debug(
            "notification sent", provider=job.provider, event_type=event.type.value, id=event.id
        )

    def _failed(self, job: _Job, error: DeliveryError) -> None:
        settings = self._settings
        why = f"{error.code}: {error.message}"
        if not error.retryable:
            self._queue.finish(job)
            self._dropped(job.provider, job.event, "rejected", why)
            return
        if error.retry_after is not None and error.retry_after > settings.max_retry_after_seconds:
            self._queue.finish(job)
            why = f"{why}; asked to wait {error.retry_after:g}s"
            self._dropped(job.provider, job.event, "retries_exhausted", why)
            return
        if job.attempts >= settings.max_attempts:
            self._queue.finish(job)
            why = f"{why}; after {job.attempts} attempts"
            self._dropped(job.provider, job.event, "retries_exhausted", why)
            return
        delay = backoff(job.attempts, error.retry_after, settings, self._random.random())
        log.info(
            "notification not delivered; retrying",
            provider=job.provider,
            event_type=job.event.type.value,
            id=job.event.id,
            release=job.event.release,
            attempt=job.attempts,
            retry_in=round(delay, 2),
            error=why,
        )
        self._queue.again(job, self._clock() + delay)

    def _dropped(self, provider: str, event: Event, reason: str, why: str) -> None:
        self._metrics.dropped.labels(provider, reason).inc()
        log.warning(
            "notification dropped",
            provider=provider,
            event_type=event.type.value,
            id=event.id,
            release=event.release,
            reason=reason,
            error=why,
        )
