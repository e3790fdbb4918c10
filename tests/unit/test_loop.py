"""The work loop never dies from an exception, and says when it stopped seeing the world."""

from __future__ import annotations

import threading
import time

from ecsop.runtime.loop import LoopSettings, WorkLoop
from ecsop.runtime.workqueue import RateLimitingQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_resync_that_raises_is_counted_and_the_loop_goes_on() -> None:
    """Issue 21, #4: a symlink loop once killed the resync thread for good."""
    calls: list[int] = []
    errors: list[str] = []
    done = threading.Event()

    def resync() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("Symlink loop from 'loop.yaml'")
        done.set()

    loop = WorkLoop(
        RateLimitingQueue(),
        lambda key: None,
        resync,
        LoopSettings(workers=1, resync_seconds=0.01),
        on_loop_error=errors.append,
    )
    loop.start()
    assert done.wait(5)
    loop.stop()
    assert errors == ["resync", "resync"]
    assert loop.health()[0]


def test_health_fails_when_no_resync_completes_for_three_intervals() -> None:
    clock = Clock()
    loop = idle_loop(clock)
    assert loop.health()[0]
    clock.now += 91
    healthy, why = loop.health()
    assert not healthy and "no resync has completed" in why


def test_a_worker_survives_a_failing_error_handler() -> None:
    seen: list[str] = []

    def reconcile(key: str) -> float | None:
        seen.append(key)
        raise ValueError("boom")

    def broken_handler(key: str, exc: Exception) -> None:
        raise RuntimeError("the handler itself failed")

    queue = RateLimitingQueue()
    loop = WorkLoop(
        queue,
        reconcile,
        lambda: None,
        LoopSettings(workers=1, resync_seconds=60),
        on_error=broken_handler,
    )
    loop.start()
    queue.add("a")
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        queue.add("b")
        time.sleep(0.01)
    loop.stop()
    assert {"a", "b"} <= set(seen)


def test_a_resync_that_keeps_making_progress_stays_healthy() -> None:
    """A first pass of 10,000 releases that waits for its workers lasts minutes: as long
    as its batches keep going out it is alive, and once they stop it is not."""
    clock = Clock()
    loop = idle_loop(clock)
    for _ in range(10):
        clock.now += 60
        loop.progressed()
        assert loop.health()[0]
    clock.now += 91
    healthy, why = loop.health()
    assert not healthy and "made progress" in why


def idle_loop(clock: Clock) -> WorkLoop:
    """A loop with no workers and a 30 s resync, on ``clock``: for its health alone."""
    return WorkLoop(
        RateLimitingQueue(),
        lambda key: None,
        lambda: None,
        LoopSettings(workers=0, resync_seconds=30),
        monotonic=clock,
    )
