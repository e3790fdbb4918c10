"""Running each watched release's probes on their own intervals, off the reconcile workers.

A reconcile pass must never wait on a slow endpoint: it reads the latest
verdict and moves on. So probes that poll something (HTTP checks, metric
analyses) keep a watch per release, and one scheduler thread hands each due
item to a thread pool. An item is never in flight twice, and the thread
sleeps until the earliest item is due, or until a watch changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar


class Scheduled(Protocol):
    """One probe item of a watch: when it is next due, and whether it is running."""

    due: float
    in_flight: bool

    @property
    def interval_seconds(self) -> float: ...


WatchT = TypeVar("WatchT")
ItemT = TypeVar("ItemT", bound=Scheduled)


class IntervalScheduler(Generic[WatchT, ItemT]):
    """The watches of one kind of probe, and the thread that runs their items when due.

    Subclasses say which items a watch has (``_items``) and how one runs
    (``_run``, on a pool thread; it clears ``in_flight`` under ``_cond`` when
    done). ``_watches`` and every item's fields are guarded by ``_cond``.
    """

    def __init__(
        self,
        workers: int,
        name: str,
        monotonic: Callable[[], float],
    ) -> None:
        self._monotonic = monotonic
        self._name = name
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"ecsop-{name}")
        self._cond = threading.Condition()
        self._watches: dict[str, WatchT] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def forget(self, name: str) -> None:
        """Stop probing ``name`` (its rollout is over, or the release is gone)."""
        with self._cond:
            known = self._watches.pop(name, None) is not None
        if known:
            self._forgotten(name)

    def watching(self) -> list[str]:
        with self._cond:
            return sorted(self._watches)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._watches.clear()
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _items(self, watch: WatchT) -> Iterable[ItemT]:
        raise NotImplementedError

    def _run(self, name: str, watch: WatchT, item: ItemT) -> None:
        raise NotImplementedError

    def _forgotten(self, name: str) -> None:
        """Called outside the lock once ``name``'s watch is gone."""

    def _start(self) -> None:
        """Start the scheduler thread on the first watch (callers hold ``_cond``)."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._schedule, name=f"ecsop-{self._name}-scheduler", daemon=True
            )
            self._thread.start()

    def _schedule(self) -> None:
        with self._cond:
            while not self._closed:
                now = self._monotonic()
                wake: float | None = None
                for name, watch in self._watches.items():
                    for item in self._items(watch):
                        if item.in_flight:
                            continue
                        if item.due <= now:
                            item.in_flight = True
                            item.due = now + item.interval_seconds
                            self._pool.submit(self._run, name, watch, item)
                        else:
                            wake = item.due if wake is None else min(wake, item.due)
                self._cond.wait(None if wake is None else max(wake - now, 0.01))
