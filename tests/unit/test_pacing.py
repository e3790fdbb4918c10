"""Observing every release within the API budget: resync plans, their pace, batched polls.

Pure planning is table-driven; the pacer and the poller run on fake clocks;
the controller-level tests drive a ``World`` (in-memory ECS) resync by resync
and count its DescribeServices.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from controller_world import V1, World
from structlog.testing import capture_logs

from builders import release
from ecsop.aws.throttling import Rate
from ecsop.cli.status import render_resync
from ecsop.controller import pacing
from ecsop.controller.active_poll import ActivePoller
from ecsop.controller.manager import Controller, ControllerSettings
from ecsop.runtime.loop import LoopSettings, WorkLoop
from ecsop.runtime.workqueue import RateLimitingQueue
from ecsop.spec.loader import LoadedRelease


def loaded(
    name: str, cluster: str = "prod", region: str = "us-east-1", role: str | None = None
) -> LoadedRelease:
    spec = {"roleArn": role} if role else {}
    return LoadedRelease(
        release(name, cluster=cluster, service=name, **spec),
        f"{name}.yaml",
        1,
        region,
        account="111122223333",
    )


def fleet(count: int, cluster: str = "prod", region: str = "us-east-1") -> list[LoadedRelease]:
    return [loaded(f"svc-{i:05d}", cluster, region) for i in range(count)]


# --- planning ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("releases", "calls"),
    [
        pytest.param(fleet(1), 1, id="one"),
        pytest.param(fleet(10), 1, id="ten-per-call"),
        pytest.param(fleet(11), 2, id="eleven"),
        pytest.param(fleet(1000), 100, id="thousand"),
        pytest.param(fleet(5, "a") + fleet(5, "b"), 2, id="per-cluster"),
        pytest.param(fleet(5) + fleet(5, region="eu-west-1"), 2, id="per-region"),
        pytest.param(
            [loaded("x"), loaded("y", role="arn:aws:iam::222233334444:role/r")], 2, id="per-role"
        ),
    ],
)
def test_a_resync_makes_the_fewest_describe_services_calls(
    releases: list[LoadedRelease], calls: int
) -> None:
    found = pacing.batches(releases)
    assert len(found) == calls
    assert sorted(n for b in found for n in b.names) == sorted(r.name for r in releases)
    assert all(len({(m.region, m.release.spec.cluster) for m in b.members}) == 1 for b in found)


DESCRIBE = Rate(10, 50)
"""ecsop's default DescribeServices budget: half of ECS's 20 a second."""


@pytest.mark.parametrize(
    ("releases", "configured", "rate", "interval", "stretched"),
    [
        pytest.param(1000, 30.0, DESCRIBE, 30.0, False, id="1k-fits"),
        pytest.param(2250, 30.0, DESCRIBE, 30.0, False, id="2250-just-fits"),
        pytest.param(5000, 30.0, DESCRIBE, 500 / 7.5, True, id="5k-stretches"),
        pytest.param(10000, 30.0, DESCRIBE, 1000 / 7.5, True, id="10k-stretches"),
        pytest.param(10000, 300.0, DESCRIBE, 300.0, False, id="10k-at-5-minutes"),
        pytest.param(10000, 30.0, None, 30.0, False, id="no-budget"),
    ],
)
def test_the_interval_stretches_only_when_the_resync_does_not_fit_the_budget(
    releases: int, configured: float, rate: Rate | None, interval: float, stretched: bool
) -> None:
    found = pacing.plan(fleet(releases), configured, rate, share=0.75)
    assert found.interval == pytest.approx(interval)
    assert found.stretched is stretched
    assert len(found.batches) == math.ceil(releases / 10)


def test_accounts_and_regions_are_walked_one_after_another_so_their_times_add_up() -> None:
    found = pacing.plan(fleet(1000) + fleet(1000, region="eu-west-1"), 10.0, DESCRIBE, 1.0)
    assert found.calls == {("111122223333", "us-east-1"): 100, ("111122223333", "eu-west-1"): 100}
    assert found.needed == pytest.approx(20.0)


# --- the pacer -----------------------------------------------------------------------------


class Recorder:
    """Observes batches and records, in order, what was described and what was queued."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.events: list[tuple[str, float, tuple[str, ...]]] = []

    def observe(self, members: Sequence[LoadedRelease]) -> list[Exception]:
        self.events.append(("describe", self.clock[0], tuple(m.name for m in members)))
        return []

    def queue(self, names: Iterable[str]) -> None:
        self.events.append(("queue", self.clock[0], tuple(names)))


def pacer(rate: Rate | None, configured: float = 30.0) -> tuple[pacing.ResyncPacer, list[float]]:
    clock = [0.0]

    def wait(seconds: float) -> bool:
        clock[0] += seconds
        return False

    return (
        pacing.ResyncPacer(
            configured, lambda: rate, share=0.75, monotonic=lambda: clock[0], wait=wait
        ),
        clock,
    )


def test_each_batch_is_queued_as_soon_as_it_lands_never_before() -> None:
    paced, clock = pacer(DESCRIBE)
    seen = Recorder(clock)
    paced.run(fleet(25), seen.observe, seen.queue)
    kinds = [kind for kind, _, _ in seen.events]
    assert kinds == ["describe", "queue"] * 3
    for (_, _, described), (_, _, queued) in zip(seen.events[::2], seen.events[1::2], strict=True):
        assert described == queued


def test_a_resync_that_fits_runs_at_once() -> None:
    paced, clock = pacer(DESCRIBE)
    seen = Recorder(clock)
    paced.run(fleet(1000), seen.observe, seen.queue)
    assert clock[0] == 0.0
    assert paced.interval == 30.0


def test_a_stretched_resync_spreads_its_batches_over_the_interval() -> None:
    paced, clock = pacer(DESCRIBE)
    seen = Recorder(clock)
    with capture_logs() as logs:
        paced.run(fleet(5000), seen.observe, seen.queue)
    times = [at for kind, at, _ in seen.events if kind == "describe"]
    assert times[0] == 0 and times[-1] == pytest.approx(499 / 7.5)
    assert all(b - a == pytest.approx(1 / 7.5) for a, b in itertools.pairwise(times))
    assert paced.interval == pytest.approx(500 / 7.5)
    status = paced.status()
    assert status["stretched"] and status["describeServicesCalls"] == 500
    assert status["describeServicesPerSecond"] == 7.5
    warned = [e for e in logs if e["event"].startswith("resync interval stretched")]
    assert len(warned) == 1 and warned[0]["effective"] == pytest.approx(66.7)


def test_the_stretch_is_logged_once_and_its_end_too() -> None:
    paced, clock = pacer(DESCRIBE)
    seen = Recorder(clock)
    with capture_logs() as logs:
        # The interval is the plan's or the last resync's time, whichever is longer.
        for size in (5000, 5000, 5100, 100, 100):
            paced.run(fleet(size), seen.observe, seen.queue)
    events = [e["event"] for e in logs]
    assert events == [
        "resync interval stretched to fit the AWS API budget",
        "resync interval back to the configured one",
    ]


def test_a_resync_slower_than_its_plan_sets_the_interval() -> None:
    paced, clock = pacer(None, configured=5.0)

    def slow(members: Sequence[LoadedRelease]) -> list[Exception]:
        clock[0] += 1.0
        return []

    paced.run(fleet(100), slow, lambda names: None)
    assert paced.interval == pytest.approx(10.0)
    assert paced.status()["stretched"]


def test_errors_of_each_batch_are_returned_and_every_batch_still_queued() -> None:
    paced, _clock = pacer(DESCRIBE)
    queued: list[str] = []
    failure = RuntimeError("AccessDenied")
    errors = paced.run(fleet(20), lambda members: [failure], queued.extend)
    assert errors == [failure, failure]
    assert len(queued) == 20


# --- the active poller ---------------------------------------------------------------------


class Poll:
    def __init__(self, releases: list[LoadedRelease], fill: float = 0.0) -> None:
        self.now = 0.0
        self.by_name = {r.name: r for r in releases}
        self.described: list[tuple[str, ...]] = []
        self.queued: list[str] = []
        self.poller = ActivePoller(
            self.by_name.get,
            self.observe,
            self.queued.append,
            slack=1.0,
            fill=fill,
            monotonic=lambda: self.now,
        )

    def observe(self, members: Sequence[LoadedRelease]) -> list[Exception]:
        assert not any(m.name in self.queued for m in members), "described after being queued"
        self.described.append(tuple(m.name for m in members))
        return []


def test_a_hundred_rollouts_are_polled_ten_per_describe_services() -> None:
    poll = Poll(fleet(100))
    for name in poll.by_name:
        poll.poller.schedule(name, 5.0)
    assert poll.poller.poll_due() == []
    poll.now = 5.0
    assert len(poll.poller.poll_due()) == 100
    assert [len(batch) for batch in poll.described] == [10] * 10
    assert sorted(poll.queued) == sorted(poll.by_name)


def test_releases_due_within_the_slack_share_a_batch_later_ones_wait() -> None:
    poll = Poll(fleet(3))
    poll.poller.schedule("svc-00000", 5.0)
    poll.poller.schedule("svc-00001", 5.9)
    poll.poller.schedule("svc-00002", 6.5)
    poll.now = 5.0
    assert poll.poller.poll_due() == ["svc-00000", "svc-00001"]
    assert poll.described == [("svc-00000", "svc-00001")]
    poll.now = 6.5
    assert poll.poller.poll_due() == ["svc-00002"]


def test_rollouts_started_one_by_one_fall_into_one_phase_of_full_batches() -> None:
    """RegisterTaskDefinition paced at one every 2 s starts rollouts 2 s apart; each poll
    fills its call with the cluster's releases due next, so once all run every call names
    ten, and each release is still looked at at least every 5 s."""
    poll = Poll(fleet(30), fill=5.0)
    names = sorted(poll.by_name)
    seen: dict[str, list[float]] = {name: [] for name in names}
    for step in range(0, 240):  # 120 s in steps of 0.5 s
        poll.now = step / 2
        if step % 4 == 0 and step // 4 < len(names):
            poll.poller.schedule(names[step // 4], 5.0)  # a rollout starts, 2 s apart
        poll.queued.clear()
        for name in poll.poller.poll_due():
            seen[name].append(poll.now)
            poll.poller.schedule(name, 5.0)  # still rolling: look again in 5 s
    started_all = 2.0 * (len(names) - 1)
    after = [len(b) for b in poll.described[-12:]]
    assert after == [10] * 12
    for times in seen.values():
        assert all(b - a <= 5.0 for a, b in itertools.pairwise(times))
    assert poll.now > started_all + 30


def test_a_call_is_filled_only_with_its_own_clusters_releases_due_within_a_poll() -> None:
    poll = Poll(fleet(3), fill=5.0)
    poll.poller.schedule("svc-00000", 5.0)
    poll.poller.schedule("svc-00001", 8.0)
    poll.poller.schedule("svc-00002", 30.0)  # a bake, not a poll: never pulled this early
    poll.now = 5.0
    assert sorted(poll.poller.poll_due()) == ["svc-00000", "svc-00001"]
    assert poll.described == [("svc-00000", "svc-00001")]
    assert poll.poller.pending() == 1
    other = Poll([loaded("web"), loaded("api", cluster="other")], fill=5.0)
    other.poller.schedule("web", 1.0)
    other.poller.schedule("api", 3.0)
    other.now = 1.0
    assert other.poller.poll_due() == ["web"]
    assert other.poller.pending() == 1


def test_a_new_request_replaces_the_earlier_one() -> None:
    poll = Poll(fleet(1))
    poll.poller.schedule("svc-00000", 1.0)
    poll.poller.schedule("svc-00000", 10.0)
    poll.now = 2.0
    assert poll.poller.poll_due() == []
    poll.now = 10.0
    assert poll.poller.poll_due() == ["svc-00000"]
    assert poll.poller.pending() == 0


def test_a_release_gone_from_the_specs_is_queued_without_a_describe() -> None:
    poll = Poll(fleet(1))
    poll.poller.schedule("vanished", 0.0)
    assert poll.poller.poll_due() == ["vanished"]
    assert poll.described == []


def test_a_failing_batch_still_queues_its_releases() -> None:
    poll = Poll(fleet(2))

    def broken(members: Sequence[LoadedRelease]) -> list[Exception]:
        raise RuntimeError("network down")

    poll.poller._observe = broken
    for name in poll.by_name:
        poll.poller.schedule(name, 0.0)
    with capture_logs() as logs:
        assert len(poll.poller.poll_due()) == 2
    assert any(e["event"] == "batched poll failed" for e in logs)


# --- the controller ------------------------------------------------------------------------


def world_with(tmp_path: Path, count: int) -> World:
    world = World(tmp_path)
    for index in range(count):
        name = f"svc-{index:03d}"
        world.ecs.add_service(name)
        (world.specs / f"{name}.yaml").write_text(
            "apiVersion: ecsop.dev/v1\nkind: ServiceRelease\n"
            f"metadata: {{name: {name}}}\n"
            f"spec: {{cluster: prod, service: {name}, containers: {{app: '{V1}'}}}}\n"
        )
    world.controller.reload_specs()
    return world


def drain(world: World) -> list[str]:
    """Run every queued pass (no threads); the names run, in order."""
    ran: list[str] = []
    queue = world.controller.queue
    while len(queue):
        name = queue.get()
        assert name is not None
        try:
            world.controller.reconcile(name)
            ran.append(name)
        finally:
            queue.done(name)
    return ran


def test_the_first_pass_costs_one_describe_services_per_ten_releases(tmp_path: Path) -> None:
    world = world_with(tmp_path, 95)
    world.ecs.calls.clear()
    world.controller.resync()
    ran = drain(world)
    assert len(ran) == 95
    assert world.ecs.calls.count("DescribeServices") == 10


def test_a_first_pass_slower_than_its_answers_stay_fresh_describes_no_release_alone(
    tmp_path: Path,
) -> None:
    """Issue 22: at a cold start of 10,000 releases the resync queued every answer in
    seconds, the first passes (a DescribeTaskDefinition each) took minutes to reach
    them, and thousands expired and were described again one by one (3,995
    DescribeServices instead of 1,000). The resync now observes a batch only when the
    workers have room, so every answer is taken fresh."""
    world = world_with(tmp_path, 200)
    describe, task_definition = world.ecs.describe_services, world.ecs.task_definition
    sizes: list[int] = []

    def counted(cluster: str, names: list[str]) -> Any:
        sizes.append(len(names))
        return describe(cluster, names)

    def slow(arn: str) -> Any:
        # 200 first passes take 7.5 s on 4 workers and answers last 5 s: without the
        # backpressure the last third expire. With it, a batch waits behind ten passes
        # per worker (1.5 s): room for a loaded machine before an answer is 5 s old.
        time.sleep(0.15)
        return task_definition(arn)

    world.ecs.describe_services = counted  # type: ignore[method-assign]
    world.ecs.task_definition = slow  # type: ignore[method-assign]
    controller = Controller(
        ControllerSettings(
            specs=world.specs, default_region="us-east-1", resync_seconds=5.0, workers=4
        ),
        lambda region, role: world.ecs,
        world.metrics,
        clock=world.clock,
    )
    controller.start()  # its first resync is the first pass
    try:
        wait_for(lambda: len(controller.statuses.all()) == 200, 30)
    finally:
        controller.stop()
    first = sizes[: math.ceil(200 / 10)]
    assert first == [10] * 20, "the first pass: twenty DescribeServices of ten"
    assert 1 not in sizes, "no answer expired before its pass took it"


def test_rollouts_in_progress_are_polled_in_batches(tmp_path: Path) -> None:
    world = world_with(tmp_path, 25)
    world.controller.resync()
    drain(world)  # adopted
    for index in range(25):
        name = f"svc-{index:03d}"
        world.ecs.update_service("prod", name, world.ecs.services[name].task_definition)
    world.controller.resync()
    for name in drain(world):
        requeue = world.controller.reconcile(name)
        assert requeue is not None
        world.controller.poller.schedule(name, 0.0)
    world.ecs.calls.clear()
    assert len(world.controller.poller.poll_due()) == 25
    assert len(drain(world)) == 25
    assert world.ecs.calls.count("DescribeServices") == 3


# --- the work loop and the status line -------------------------------------------------------


def test_health_allows_three_stretched_intervals_not_three_configured_ones() -> None:

    now = [0.0]
    loop = WorkLoop(
        RateLimitingQueue(),
        lambda key: None,
        lambda: None,
        LoopSettings(workers=0, resync_seconds=30),
        monotonic=lambda: now[0],
        resync_interval=lambda: 133.0,
    )
    now[0] = 300.0
    assert loop.health()[0], "a 133 s interval is not a missed 30 s one"
    now[0] = 400.0
    assert not loop.health()[0]


def test_a_pass_asking_to_be_looked_at_again_goes_to_the_requeue_hook() -> None:

    asked: list[tuple[str, float]] = []
    done = threading.Event()

    def requeue(key: str, delay: float) -> None:
        asked.append((key, delay))
        done.set()

    queue = RateLimitingQueue()
    loop = WorkLoop(
        queue,
        lambda key: 5.0,
        lambda: None,
        LoopSettings(workers=1, resync_seconds=60),
        requeue=requeue,
    )
    loop.start()
    queue.add("shop")
    assert done.wait(5)
    loop.stop()
    assert asked[0][0] == "shop" and 4.5 < asked[0][1] <= 5.0


@pytest.mark.parametrize(
    ("resync", "line"),
    [
        pytest.param({"stretched": False}, "", id="kept"),
        pytest.param(
            {
                "stretched": True,
                "configuredSeconds": 30.0,
                "effectiveSeconds": 133.333,
                "describeServicesCalls": 1000,
                "describeServicesPerSecond": 7.5,
            },
            "resync every 133.333s, not 30.0s: 1000 DescribeServices per resync at 7.5/s "
            "(--api-budget)",
            id="budget",
        ),
        pytest.param(
            {
                "stretched": True,
                "configuredSeconds": 30.0,
                "effectiveSeconds": 41.2,
                "describeServicesPerSecond": None,
                "lastResyncSeconds": 41.2,
            },
            "resync every 41.2s, not 30.0s: the last resync took 41.2s",
            id="slow",
        ),
    ],
)
def test_ecsop_status_says_when_the_resync_is_stretched(
    resync: dict[str, object], line: str
) -> None:

    assert render_resync(resync) == line


def test_the_interval_asked_for_may_change_between_resyncs_and_the_budget_still_bounds_it() -> None:
    """With an events queue the interval asked for is the cadence's: long while events flow,
    short when they stop. The budget's floor holds whichever it is."""
    asked = [300.0]
    clock = [0.0]

    def wait(seconds: float) -> bool:
        clock[0] += seconds
        return False

    paced = pacing.ResyncPacer(
        lambda: asked[0], lambda: DESCRIBE, share=0.75, monotonic=lambda: clock[0], wait=wait
    )
    seen = Recorder(clock)
    paced.run(fleet(5000), seen.observe, seen.queue)
    assert paced.interval == 300.0 and not paced.status()["stretched"]
    asked[0] = 30.0  # events stopped flowing: the short resync, at once
    assert paced.interval == pytest.approx(500 / 7.5)
    assert paced.status()["stretched"] and paced.status()["configuredSeconds"] == 30.0


def wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
