"""Looking again at releases whose pass asked for it: rollouts polled ten per DescribeServices.

A pass that returns ``RequeueAfter`` (a rollout in progress, a bake, a step
running) is handed here instead of straight back to the work queue. When its
time comes, the poller describes it together with every other release due
within ``slack`` seconds, ten per DescribeServices per (account, region, role,
cluster) (``pacing.batches``), into the service cache, and only then queues
them: each pass takes the batched observation instead of describing its
service alone. A hundred rollouts polled every 5 seconds cost 2
DescribeServices a second instead of 20.

Passes of one batch start together and ask to be looked at after the same
delay, so they come due together again and stay batched; ``slack`` (a fifth
of the active-poll interval by default) gathers releases that drifted apart.
A batch with room left (fewer than ten of its cluster due) is filled with the
releases of that cluster due next within ``fill`` seconds (the active-poll
interval): a seat in a call already being made costs nothing, and rollouts
started one by one (RegisterTaskDefinition is paced at one every two seconds)
fall into one phase within a poll instead of being polled a few per call
forever. A release is looked at up to ``fill`` early, never late.

Called by ``ecsop.controller.manager``: ``schedule`` is the work loop's
``requeue``; ``start``/``stop`` with the daemon.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

import structlog

from ecsop.aws.ecs import DESCRIBE_SERVICES_BATCH
from ecsop.controller import pacing
from ecsop.spec.loader import LoadedRelease

log = structlog.get_logger("ecsop.controller.active_poll")


class ActivePoller:
    def __init__(
        self,
        loaded: Callable[[str], LoadedRelease | None],
        observe: pacing.Observe,
        queue: Callable[[str], None],
        *,
        slack: float,
        fill: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._loaded = loaded
        self._observe = observe
        self._queue = queue
        self._slack = slack
        self._fill = fill
        self._monotonic = monotonic
        self._on_batch = on_batch
        self._cond = threading.Condition()
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._stopping = False
        self._thread: threading.Thread | None = None

    def schedule(self, name: str, delay: float) -> None:
        """Look at ``name`` again in ``delay`` seconds (replacing any earlier request)."""
        due = self._monotonic() + delay
        with self._cond:
            if self._stopping:
                return
            self._due[name] = due
            heapq.heappush(self._heap, (due, name))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._due)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ecsop-active-poll", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._due.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def poll_due(self) -> list[str]:
        """Observe and queue every release due now (or within ``slack``); the names queued."""
        now = self._monotonic()
        with self._cond:
            names = self._take(now + self._slack)
        if not names:
            return []
        known = [found for found in map(self._loaded, names) if found is not None]
        extra = self._top_up(known, now + self._fill)
        names += [loaded.name for loaded in extra]
        for batch in pacing.batches([*known, *extra]):
            try:
                errors = self._observe(batch.members)
            except Exception as exc:  # the passes describe on their own and back off
                errors = [exc]
            if errors:
                log.warning("batched poll failed", releases=list(batch.names), error=str(errors[0]))
            self._on_batch(len(batch.members))
        for name in names:
            self._queue(name)
        return names

    def _top_up(self, known: list[LoadedRelease], until: float) -> list[LoadedRelease]:
        """Releases due by ``until`` that fill the last batch of a cluster being polled now,
        earliest first; taken off the schedule."""
        room = Counter({g: -n % DESCRIBE_SERVICES_BATCH for g, n in _counts(known).items()})
        if not +room:
            return []
        with self._cond:
            waiting = sorted((due, name) for name, due in self._due.items() if due <= until)
        chosen: list[tuple[float, LoadedRelease]] = []
        for due, name in waiting:
            found = self._loaded(name)
            if found is not None and room[pacing.group_of(found)] > 0:
                room[pacing.group_of(found)] -= 1
                chosen.append((due, found))
        taken: list[LoadedRelease] = []
        with self._cond:
            for due, found in chosen:
                if self._due.get(found.name) == due:  # not rescheduled meanwhile
                    del self._due[found.name]
                    taken.append(found)
        return taken

    def _take(self, until: float) -> list[str]:
        """Pop every name due by ``until`` (stale heap entries skipped); under ``_cond``."""
        names: list[str] = []
        while self._heap and self._heap[0][0] <= until:
            due, name = heapq.heappop(self._heap)
            if self._due.get(name) == due:
                del self._due[name]
                names.append(name)
        return names

    def _next_due(self) -> float | None:
        """The earliest live due time; under ``_cond``."""
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    due = self._next_due()
                    wait = None if due is None else due - self._monotonic()
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stopping:
                    return
            try:
                self.poll_due()
            except Exception:  # never lose the poller; the resync still sees everything
                log.exception("active poll failed")


def _counts(releases: Iterable[LoadedRelease]) -> Counter[pacing.Group]:
    return Counter(pacing.group_of(loaded) for loaded in releases)
