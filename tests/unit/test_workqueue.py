"""The work queue keeps client-go's promises: de-duplicated, one worker per item, delays honoured.

Delays are asserted on a ``ManualClock``: nothing here sleeps through a backoff.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from ecsop.runtime.clock import ManualClock
from ecsop.runtime.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimiterSettings,
    default_rate_limiter,
)
from ecsop.runtime.workqueue import RateLimitingQueue

Op = tuple[Any, ...]


def run(ops: Sequence[Op]) -> tuple[RateLimitingQueue, ManualClock]:
    """Apply ``ops`` to a fresh queue on a manual clock, asserting every expectation."""
    clock = ManualClock()
    queue = RateLimitingQueue(clock=clock)
    for step, (verb, *args) in enumerate(ops):
        where = f"step {step}: {verb}{tuple(args)}"
        if verb == "add":
            queue.add(args[0])
        elif verb == "after":
            queue.add_after(args[0], args[1])
        elif verb == "get":
            assert queue.get(timeout=0) == args[0], where
        elif verb == "done":
            queue.done(args[0])
        elif verb == "advance":
            clock.advance(args[0])
        elif verb == "len":
            assert len(queue) == args[0], where
        elif verb == "waiting":
            assert queue.waiting == args[0], where
        elif verb == "shutdown":
            queue.shutdown()
        else:  # pragma: no cover - a typo in a table
            raise AssertionError(f"unknown verb {verb}")
    return queue, clock


@pytest.mark.parametrize(
    "ops",
    [
        pytest.param(
            [("add", "a"), ("add", "b"), ("add", "c"), ("get", "a"), ("get", "b"), ("get", "c")],
            id="fifo",
        ),
        pytest.param(
            [("add", "a"), ("add", "a"), ("add", "a"), ("len", 1), ("get", "a"), ("get", None)],
            id="adding-a-waiting-item-does-nothing",
        ),
        pytest.param(
            [("add", "a"), ("add", "b"), ("add", "a"), ("get", "a"), ("get", "b")],
            id="re-adding-keeps-the-original-position",
        ),
        pytest.param(
            [
                ("add", "a"),
                ("get", "a"),
                ("add", "a"),
                ("add", "a"),
                ("len", 0),
                ("get", None),
                ("done", "a"),
                ("len", 1),
                ("get", "a"),
                ("done", "a"),
                ("get", None),
            ],
            id="added-while-processing-is-held-until-done-and-queued-once",
        ),
        pytest.param(
            [("add", "a"), ("get", "a"), ("done", "a"), ("len", 0), ("get", None)],
            id="done-without-re-add-does-not-requeue",
        ),
        pytest.param(
            [("add", "a"), ("get", "a"), ("add", "a"), ("done", "a"), ("done", "a"), ("len", 1)],
            id="a-second-done-does-not-queue-twice",
        ),
        pytest.param(
            [("done", "ghost"), ("len", 0), ("add", "ghost"), ("get", "ghost")],
            id="done-of-an-unknown-item-is-harmless",
        ),
        pytest.param(
            [
                ("after", "a", 5),
                ("len", 0),
                ("waiting", 1),
                ("advance", 4.999),
                ("get", None),
                ("advance", 0.001),
                ("waiting", 0),
                ("get", "a"),
            ],
            id="add-after-waits-exactly-the-delay",
        ),
        pytest.param(
            [("after", "a", 5), ("after", "a", 10), ("advance", 5), ("get", "a")],
            id="later-add-after-keeps-the-earlier-time",
        ),
        pytest.param(
            [
                ("after", "a", 10),
                ("after", "a", 2),
                ("advance", 2),
                ("get", "a"),
                ("done", "a"),
                ("advance", 8),
                ("get", None),
            ],
            id="earlier-add-after-wins-and-the-stale-time-never-fires",
        ),
        pytest.param(
            [("after", "a", 0), ("get", "a"), ("after", "b", -1), ("get", "b")],
            id="non-positive-delay-adds-now",
        ),
        pytest.param(
            [("after", "b", 2), ("after", "a", 1), ("advance", 2), ("get", "a"), ("get", "b")],
            id="due-items-arrive-in-due-order",
        ),
        pytest.param(
            [("after", "a", 5), ("add", "a"), ("advance", 5), ("len", 1), ("get", "a")],
            id="due-item-already-waiting-is-not-duplicated",
        ),
        pytest.param(
            [
                ("add", "a"),
                ("get", "a"),
                ("after", "a", 1),
                ("advance", 1),
                ("len", 0),
                ("done", "a"),
                ("get", "a"),
            ],
            id="due-item-being-processed-waits-for-done",
        ),
        pytest.param(
            [
                ("add", "a"),
                ("after", "b", 1),
                ("shutdown",),
                ("add", "c"),
                ("after", "d", 0),
                ("get", "a"),
                ("advance", 1),
                ("get", None),
                ("waiting", 0),
            ],
            id="shutdown-drains-ready-items-and-drops-new-and-scheduled-ones",
        ),
        pytest.param(
            [("add", "a"), ("get", "a"), ("add", "a"), ("shutdown",), ("done", "a"), ("get", "a")],
            id="shutdown-still-finishes-work-accepted-while-processing",
        ),
    ],
)
def test_queue_semantics(ops: list[Op]) -> None:
    run(ops)


# --- rate limiters ---------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "cap", "expected"),
    [
        pytest.param(0.005, 1000.0, [0.005, 0.01, 0.02, 0.04, 0.08], id="client-go-defaults"),
        pytest.param(1.0, 8.0, [1.0, 2.0, 4.0, 8.0, 8.0, 8.0], id="capped"),
        pytest.param(3.0, 1.0, [1.0, 1.0], id="base-above-cap-is-capped"),
    ],
)
def test_exponential_backoff(base: float, cap: float, expected: list[float]) -> None:
    limiter = ItemExponentialFailureRateLimiter(base, cap)
    assert [limiter.when("a") for _ in expected] == pytest.approx(expected)
    assert limiter.num_requeues("a") == len(expected)
    assert limiter.when("b") == pytest.approx(min(base, cap)), "items back off independently"
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == pytest.approx(min(base, cap))


def test_backoff_of_a_long_failing_item_stays_capped() -> None:
    limiter = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    delays = [limiter.when("a") for _ in range(3000)]
    assert max(delays) == 1000.0
    assert delays[-1] == 1000.0


def test_token_bucket_allows_a_burst_then_spaces_retries_at_qps() -> None:
    clock = ManualClock()
    bucket = BucketRateLimiter(qps=10, burst=100, clock=clock)
    assert all(bucket.when(f"i{n}") == 0 for n in range(100))
    assert [bucket.when("x") for _ in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    clock.advance(1.3)  # pays back the three borrowed tokens and refills ten
    assert all(bucket.when(f"j{n}") == 0 for n in range(10))
    assert bucket.when("y") == pytest.approx(0.1)


def test_token_bucket_refill_is_capped_at_burst() -> None:
    clock = ManualClock()
    bucket = BucketRateLimiter(qps=10, burst=5, clock=clock)
    clock.advance(3600)
    assert [bucket.when("a") for _ in range(6)] == pytest.approx([0, 0, 0, 0, 0, 0.1])


def test_default_limiter_is_the_max_of_backoff_and_bucket() -> None:
    clock = ManualClock()
    limiter = default_rate_limiter(RateLimiterSettings(qps=1, burst=1), clock)
    assert isinstance(limiter, MaxOfRateLimiter)
    assert limiter.when("a") == pytest.approx(0.005), "bucket has a token: backoff decides"
    assert limiter.when("b") == pytest.approx(1.0), "bucket empty: it decides"
    assert limiter.num_requeues("a") == 1
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0


def test_settings_are_client_go_defaults() -> None:
    assert RateLimiterSettings() == RateLimiterSettings(
        base_delay=0.005, max_delay=1000.0, qps=10.0, burst=100
    )


def test_add_rate_limited_backs_off_per_item_and_forget_resets() -> None:
    clock = ManualClock()
    retries: list[None] = []
    queue = RateLimitingQueue(
        clock=clock,
        rate_limiter=default_rate_limiter(RateLimiterSettings(base_delay=1, max_delay=60), clock),
        on_retry=lambda: retries.append(None),
    )
    for expected_delay in (1, 2, 4):
        queue.add_rate_limited("a")
        clock.advance(expected_delay - 0.001)
        assert queue.get(timeout=0) is None
        clock.advance(0.001)
        assert queue.get(timeout=0) == "a"
        queue.done("a")
    assert queue.num_requeues("a") == 3
    assert len(retries) == 3
    queue.forget("a")
    assert queue.num_requeues("a") == 0
    queue.add_rate_limited("a")
    clock.advance(1)
    assert queue.get(timeout=0) == "a"


def test_depth_hook_reports_every_change_in_order() -> None:
    depths: list[int] = []
    clock = ManualClock()
    queue = RateLimitingQueue(clock=clock, on_depth=depths.append)
    queue.add("a")
    queue.add("b")
    queue.add("a")  # no change, no report
    assert queue.get(timeout=0) == "a"
    queue.add_after("c", 1)
    clock.advance(1)
    assert queue.depth == 2
    assert depths == [1, 2, 1, 2]


# --- blocking ------------------------------------------------------------------


def _in_thread(
    queue: RateLimitingQueue, timeout: float | None
) -> tuple[threading.Thread, list[Any]]:
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(queue.get(timeout)), daemon=True)
    thread.start()
    return thread, got


def test_get_blocks_until_an_item_is_added() -> None:
    queue = RateLimitingQueue()
    thread, got = _in_thread(queue, None)
    time.sleep(0.02)
    assert got == []
    queue.add("a")
    thread.join(1)
    assert got == ["a"]


def test_get_times_out_on_the_real_clock() -> None:
    queue = RateLimitingQueue()
    started = time.monotonic()
    assert queue.get(timeout=0.05) is None
    assert 0.04 <= time.monotonic() - started < 1


def test_blocked_get_wakes_when_a_delayed_item_falls_due_on_virtual_time() -> None:
    clock = ManualClock()
    queue = RateLimitingQueue(clock=clock)
    queue.add_after("a", 30)
    thread, got = _in_thread(queue, None)
    time.sleep(0.02)
    assert got == []
    clock.advance(30)
    thread.join(1)
    assert got == ["a"]


def test_blocked_get_picks_up_an_earlier_schedule() -> None:
    clock = ManualClock()
    queue = RateLimitingQueue(clock=clock)
    queue.add_after("late", 100)
    thread, got = _in_thread(queue, None)
    time.sleep(0.02)
    queue.add_after("soon", 1)
    clock.advance(1)
    thread.join(1)
    assert got == ["soon"]


def test_get_timeout_is_virtual_time() -> None:
    clock = ManualClock()
    queue = RateLimitingQueue(clock=clock)
    thread, got = _in_thread(queue, 600)
    _parked(clock)  # its 600 s count from virtual 0, however late the thread started
    clock.advance(599)
    time.sleep(0.02)
    assert thread.is_alive()
    clock.advance(1)
    thread.join(5)
    assert got == [None]


def _parked(clock: ManualClock, timeout: float = 5.0) -> None:
    """Until a thread waits on ``clock`` (a loaded machine starts threads late)."""
    deadline = time.monotonic() + timeout
    while not clock._waiting:
        assert time.monotonic() < deadline, "no thread ever waited on the clock"
        time.sleep(0.001)


def test_shutdown_wakes_every_blocked_worker() -> None:
    queue = RateLimitingQueue()
    workers = [_in_thread(queue, None) for _ in range(4)]
    time.sleep(0.02)
    queue.shutdown()
    for thread, got in workers:
        thread.join(1)
        assert got == [None]
    assert queue.shutting_down


# --- properties ------------------------------------------------------------------

ITEMS = st.sampled_from(["a", "b", "c", "d"])


class QueueModel(RuleBasedStateMachine):
    """Single-threaded: the queue behaves exactly like client-go's, step for step.

    The model is the definition in ``queue.go``/``delaying_queue.go`` written
    as plainly as possible: an ordered list, a dirty set, a processing set and
    a table of due times.
    """

    held = Bundle("held")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.queue = RateLimitingQueue(clock=self.clock)
        self.now = 0.0
        self.order: list[str] = []
        self.dirty: set[str] = set()
        self.processing: set[str] = set()
        self.due: dict[str, tuple[float, int]] = {}
        self.seq = 0
        self.shut = False

    def _add(self, item: str) -> None:
        if item in self.dirty:
            return
        self.dirty.add(item)
        if item not in self.processing:
            self.order.append(item)

    def _promote(self) -> None:
        for item, (_, _) in sorted(self.due.items(), key=lambda kv: kv[1]):
            if self.due[item][0] <= self.now:
                del self.due[item]
                if not self.shut:
                    self._add(item)

    @rule(item=ITEMS)
    def add(self, item: str) -> None:
        self._promote()
        if not self.shut:
            self._add(item)
        self.queue.add(item)

    @rule(item=ITEMS, delay=st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0, 5.0]))
    def add_after(self, item: str, delay: float) -> None:
        self._promote()
        if not self.shut:
            if delay <= 0:
                self._add(item)
            elif item not in self.due or self.due[item][0] > self.now + delay:
                self.seq += 1
                self.due[item] = (self.now + delay, self.seq)
        self.queue.add_after(item, delay)

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.clock.advance(seconds)

    @rule(target=held)
    def get(self) -> str:
        self._promote()
        expected = self.order.pop(0) if self.order else None
        if expected is not None:
            self.processing.add(expected)
            self.dirty.discard(expected)
        assert self.queue.get(timeout=0) == expected
        return expected or "-"

    @rule(item=held)
    def done(self, item: str) -> None:
        if item in self.processing:
            self.processing.discard(item)
            if item in self.dirty:
                self.order.append(item)
        self._promote()
        self.queue.done(item)

    @precondition(lambda self: not self.shut)
    @rule()
    def shutdown(self) -> None:
        self.shut = True
        self.due.clear()
        self.queue.shutdown()

    @invariant()
    def lengths_agree(self) -> None:
        self._promote()
        assert len(self.queue) == len(self.order)
        assert self.queue.waiting == len(self.due)


TestQueueModel = QueueModel.TestCase
TestQueueModel.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)


Script = list[tuple[str, str]]
scripts = st.lists(
    st.lists(
        st.tuples(st.sampled_from(["add", "add", "after"]), ITEMS),
        max_size=15,
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    producers=scripts,
    workers=st.integers(min_value=2, max_value=5),
    readds=st.lists(ITEMS, max_size=10),
    seed=st.integers(0, 2**16),
)
def test_concurrent_workers_never_share_an_item_and_never_lose_one(
    producers: list[Script], workers: int, readds: list[str], seed: int
) -> None:
    """Producers and workers race on the real clock; the queue's promises hold.

    - no item is held by two workers at once;
    - every add is followed by a hand-out of that item (none lost);
    - hand-outs never outnumber adds (de-duplication, no phantom items).
    """
    queue = RateLimitingQueue()
    lock = threading.Lock()
    stopping = False
    tick = 0
    last_add: dict[str, int] = {}
    last_get: dict[str, int] = {}
    held: set[str] = set()
    adds = gets = 0
    violations: list[str] = []
    readd_budget = list(readds)

    def record_add(item: str, delay: float | None) -> None:
        nonlocal tick, adds
        with lock:  # held across the call so shutdown cannot slip between record and add
            if stopping:
                return
            tick += 1
            adds += 1
            last_add[item] = tick
            if delay is None:
                queue.add(item)
            else:
                queue.add_after(item, delay)

    def produce(script: Script, rng: random.Random) -> None:
        for verb, item in script:
            record_add(item, rng.choice([0.001, 0.003]) if verb == "after" else None)
            if rng.random() < 0.3:
                time.sleep(0)

    def work(rng: random.Random) -> None:
        nonlocal tick, gets
        while (item := queue.get()) is not None:
            with lock:
                tick += 1
                gets += 1
                last_get[item] = tick
                if item in held:
                    violations.append(f"{item} handed to two workers")
                held.add(item)
                readd = readd_budget.pop() if readd_budget and rng.random() < 0.5 else None
            if rng.random() < 0.5:
                time.sleep(0.0005)
            if readd is not None:
                record_add(readd, None)
            with lock:
                held.discard(item)
            queue.done(item)

    master = random.Random(seed)
    worker_threads = [
        threading.Thread(target=work, args=(random.Random(master.random()),), daemon=True)
        for _ in range(workers)
    ]
    producer_threads = [
        threading.Thread(target=produce, args=(s, random.Random(master.random())), daemon=True)
        for s in producers
    ]
    for thread in worker_threads + producer_threads:
        thread.start()
    for thread in producer_threads:
        thread.join(5)
    deadline = time.monotonic() + 5
    while queue.waiting and time.monotonic() < deadline:
        time.sleep(0.001)
    assert queue.waiting == 0
    with lock:
        stopping = True
        queue.shutdown()
    for thread in worker_threads:
        thread.join(5)
        assert not thread.is_alive(), "a worker never saw shutdown"

    assert violations == []
    lost = sorted(item for item, at in last_add.items() if last_get.get(item, 0) < at)
    assert lost == [], "added but never handed out afterwards"
    assert gets <= adds
    assert queue.get(timeout=0) is None


def test_a_producer_waits_for_room_until_workers_take_items() -> None:
    queue = RateLimitingQueue()
    for index in range(5):
        queue.add(f"r{index}")
    assert not queue.wait_for_room(3, timeout=0.05), "no worker took anything"
    room = threading.Event()

    def producer() -> None:
        if queue.wait_for_room(3, timeout=5):
            room.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert queue.get(timeout=0) == "r0"
    assert not room.wait(0.1), "four still ready"
    assert queue.get(timeout=0) == "r1"
    assert not room.wait(0.1), "three still ready"
    assert queue.get(timeout=0) == "r2"
    assert room.wait(5), "two ready: room"
    thread.join(5)
    assert queue.wait_for_room(3, timeout=0)


def test_a_producer_waiting_for_room_is_released_by_shutdown() -> None:
    queue = RateLimitingQueue()
    for index in range(5):
        queue.add(f"r{index}")
    released = threading.Event()
    thread = threading.Thread(target=lambda: (queue.wait_for_room(1, timeout=30), released.set()))
    thread.start()
    queue.shutdown()
    assert released.wait(5)
    thread.join(5)
