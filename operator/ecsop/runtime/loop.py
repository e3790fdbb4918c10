"""The generic control loop: workers on a work queue, a periodic resync, errors to backoff.

Shaped like controller-runtime's controller: triggers put keys on a
de-duplicating ``RateLimitingQueue``; a bounded pool of workers takes one key
at a time and calls ``reconcile(key)``, which returns seconds until the key's
next pass (``RequeueAfter``) or None; an exception requeues the key with
per-key exponential backoff (``reconcileHandler``); success forgets its
backoff. A resync thread calls ``resync()`` every interval, counted from the
start of one resync to the start of the next. Who looks again after
``RequeueAfter`` (``requeue``, by default the queue's ``add_after``) and how
long the interval is (``resync_interval``, by default the settings') can be
injected: the controller batches the one and stretches the other to fit the
AWS API budget (``ecsop.controller.pacing``).

No iteration of either loop ever dies from an exception: it is logged,
counted (``on_loop_error``) and the loop goes on, and ``health`` reports a
resync that has not completed for several intervals, so ``/healthz`` fails
and a supervisor restarts a daemon that no longer sees the world.

Knows nothing about releases or AWS: keys are strings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ecsop.runtime.workqueue import RateLimitingQueue

log = structlog.get_logger("ecsop.runtime.loop")

RESYNC_MISSED_BEFORE_UNHEALTHY = 3
"""Resync intervals without a completed resync before ``health`` reports unhealthy."""


@dataclass(frozen=True)
class LoopSettings:
    workers: int = 4
    """Keys reconciled at once."""
    resync_seconds: float = 30.0
    """Every key is re-queued this often (``resync``)."""
    shutdown_grace_seconds: float = 30.0
    """On stop, how long to wait for passes in flight to finish."""


class WorkLoop:
    def __init__(
        self,
        queue: RateLimitingQueue,
        reconcile: Callable[[str], float | None],
        resync: Callable[[], None],
        settings: LoopSettings,
        *,
        on_error: Callable[[str, Exception], None] = lambda key, exc: None,
        on_pass: Callable[[str, str, float], None] = lambda key, result, seconds: None,
        on_loop_error: Callable[[str], None] = lambda loop: None,
        monotonic: Callable[[], float] = time.monotonic,
        requeue: Callable[[str, float], None] | None = None,
        resync_interval: Callable[[], float] | None = None,
    ) -> None:
        self.queue = queue
        self._reconcile = reconcile
        self._resync = resync
        self._settings = settings
        self._on_error = on_error
        self._on_pass = on_pass
        self._on_loop_error = on_loop_error
        self._monotonic = monotonic
        self._requeue = requeue or queue.add_after
        self._resync_interval = resync_interval or (lambda: settings.resync_seconds)
        """The interval now: it may shrink (events stopped flowing) between two resyncs, or
        stretch to fit the API budget."""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started_at = monotonic()
        self._resynced_at: float | None = None
        self._progressed_at: float | None = None

    def start(self) -> None:
        self._started_at = self._monotonic()
        for index in range(self._settings.workers):
            self._spawn(self._work, f"ecsop-worker-{index}")
        self._spawn(self._resync_forever, "ecsop-resync")

    def stop(self) -> None:
        """Stop taking work; let the passes in flight finish their AWS calls."""
        self._stop.set()
        self.queue.shutdown()
        deadline = self._monotonic() + self._settings.shutdown_grace_seconds
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - self._monotonic()))

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def working(self) -> bool:
        """Whether workers are taking from the queue (started, not stopping)."""
        return bool(self._threads) and self._settings.workers > 0 and not self._stop.is_set()

    def health(self) -> tuple[bool, str]:
        """Unhealthy once resyncs stop completing and stop making progress (a stuck or
        failing loop). A resync that waits for the workers (the first pass of a large
        fleet) is alive as long as its batches keep going out (``progressed``)."""
        since = self._resynced_at if self._resynced_at is not None else self._started_at
        if self._progressed_at is not None:
            since = max(since, self._progressed_at)
        allowed = RESYNC_MISSED_BEFORE_UNHEALTHY * self._resync_interval()
        late = self._monotonic() - since
        if late > allowed:
            what = "completed" if self._resynced_at is not None else "started"
            return False, (
                f"no resync has completed or made progress for {late:.0f}s "
                f"(last {what} {late:.0f}s ago)"
            )
        return True, "ok"

    def progressed(self) -> None:
        """The resync in progress has just observed another batch."""
        self._progressed_at = self._monotonic()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _resync_forever(self) -> None:
        while not self._stop.is_set():
            started = self._monotonic()
            try:
                self._resync()
            except Exception:
                log.exception("resync failed; trying again next interval")
                self._on_loop_error("resync")
            else:
                self._resynced_at = self._monotonic()
            # Re-read the interval every second: a shorter one applies from now. Counted
            # from the resync's start: a paced resync spreads its calls over the interval.
            while not self._stop.is_set():
                left = started + self._resync_interval() - self._monotonic()
                if left <= 0:
                    break
                self._stop.wait(min(left, 1.0))

    def _work(self) -> None:
        while True:
            key = self.queue.get()
            if key is None:
                return
            try:
                self._pass(key)
            except Exception:  # a bug in error handling itself: never lose the worker
                log.exception("worker iteration failed", key=key)
                self._on_loop_error("worker")
            finally:
                self.queue.done(key)

    def _pass(self, key: str) -> None:
        started = time.perf_counter()
        try:
            requeue = self._reconcile(key)
        except Exception as exc:  # any failure: back off this key only
            self._on_error(key, exc)
            self.queue.add_rate_limited(key)
            self._on_pass(key, "error", time.perf_counter() - started)
            return
        self.queue.forget(key)
        if requeue is not None and not self._stop.is_set():
            # Counted from the start of the pass, so a rollout is looked at
            # every interval, not every interval plus a pass.
            elapsed = time.perf_counter() - started
            self._requeue(key, max(0.0, requeue - elapsed))
        result = "requeue" if requeue is not None else "success"
        self._on_pass(key, result, time.perf_counter() - started)
