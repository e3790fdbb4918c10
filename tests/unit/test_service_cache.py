"""The service cache never hands out an observation older than ecsop's own last write."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from builders import deployment, release, service, td_arn
from ecsop.aws.service_cache import ServiceCache
from ecsop.decision.ecs_state import ServiceMissing, ServiceState
from ecsop.spec.loader import LoadedRelease


class SlowEcs:
    """describe_services answers what the service was when the call started."""

    def __init__(self) -> None:
        self.state = service(deployment(td_arn("api", 1)))
        self.calls = 0
        self.in_flight = threading.Event()
        self.release = threading.Event()
        self.block = False

    def describe_services(self, cluster: str, names: list[str]) -> dict[str, Any]:
        self.calls += 1
        answer = self.state
        if self.block:
            self.in_flight.set()
            self.release.wait(5)
        return {name: answer for name in names}


LOADED = LoadedRelease(release(service="api"), "api.yaml", 1, "us-east-1")


def test_a_batch_in_flight_during_a_write_is_not_used() -> None:
    """Issue 22, #1: a change landing during a batched refresh was deployed twice."""
    ecs = SlowEcs()
    cache = ServiceCache(lambda region, role: ecs, max_age_seconds=30)  # type: ignore[arg-type,return-value]
    ecs.block = True
    refresh = threading.Thread(target=cache.refresh, args=([LOADED],))
    refresh.start()
    assert ecs.in_flight.wait(5)
    # A pass deploys meanwhile: the service now runs revision 2.
    cache.wrote(LOADED)
    ecs.state = service(deployment(td_arn("api", 2)))
    ecs.block = False
    ecs.release.set()
    refresh.join(5)
    observed = cache.observe(LOADED)
    assert isinstance(observed, ServiceState)
    assert observed.task_definition == td_arn("api", 2), "the pre-write answer was discarded"
    assert ecs.calls == 2


def test_a_current_batched_answer_is_taken_once() -> None:
    ecs = SlowEcs()
    cache = ServiceCache(lambda region, role: ecs, max_age_seconds=30)  # type: ignore[arg-type,return-value]
    cache.refresh([LOADED])
    assert not isinstance(cache.observe(LOADED), ServiceMissing)
    assert ecs.calls == 1
    cache.observe(LOADED)
    assert ecs.calls == 2, "taken once; the next pass describes afresh"


def test_an_answer_is_dated_from_itself_not_from_the_refresh_start() -> None:
    clock = [0.0]
    ecs = SlowEcs()
    cache = ServiceCache(
        lambda region, role: ecs,  # type: ignore[arg-type,return-value]
        max_age_seconds=30,
        monotonic=lambda: clock[0],
    )

    def slow_describe(cluster: str, names: list[str]) -> dict[str, Any]:
        clock[0] += 40  # a refresh longer than the resync interval
        return {name: ecs.state for name in names}

    ecs.describe_services = slow_describe  # type: ignore[method-assign]
    cache.refresh([LOADED])
    cache.observe(LOADED)
    assert clock[0] == 40, "the answer, 0 s old, was used: no second describe"


def _fleet(count: int) -> list[LoadedRelease]:
    return [
        LoadedRelease(release(f"r{i:02d}", service=f"svc{i:02d}"), f"{i}.yaml", 1, "us-east-1")
        for i in range(count)
    ]


class Batches:
    """describe_services answering revision 1, calling ``during(batch number)`` mid-call."""

    def __init__(self, during: Any = None) -> None:
        self.batches: list[list[str]] = []
        self.during = during or (lambda number: None)

    def describe_services(self, cluster: str, names: list[str]) -> dict[str, Any]:
        self.batches.append(list(names))
        self.during(len(self.batches))
        return {name: service(deployment(td_arn(name, 1)), name=name) for name in names}


def test_a_write_during_a_long_refresh_discards_only_the_answers_read_before_it() -> None:
    fleet = _fleet(20)  # two DescribeServices of ten
    cache: ServiceCache

    def during(number: int) -> None:
        if number == 1:  # while the first ten are described, a pass writes one of each ten
            cache.wrote(fleet[0])
            cache.wrote(fleet[15])

    ecs = Batches(during)
    cache = ServiceCache(lambda region, role: ecs, max_age_seconds=30)  # type: ignore[arg-type,return-value]
    cache.refresh(fleet)
    assert len(ecs.batches) == 2
    cache.observe(fleet[15])
    assert len(ecs.batches) == 2, "described after the write: its answer is current"
    cache.observe(fleet[0])
    assert ecs.batches[-1] == ["svc00"], "read before the write: described afresh"


def test_each_answer_is_as_old_as_its_own_call() -> None:
    clock = [0.0]
    fleet = _fleet(20)

    def during(number: int) -> None:
        clock[0] += 20  # each call of ten takes 20 s (a paced or slow refresh)

    ecs = Batches(during)
    cache = ServiceCache(
        lambda region, role: ecs,  # type: ignore[arg-type,return-value]
        max_age_seconds=30,
        monotonic=lambda: clock[0],
    )
    cache.refresh(fleet)
    assert [len(names) for names in ecs.batches] == [10, 10]  # answered at 20 s and 40 s
    clock[0] = 55.0
    cache.observe(fleet[10])
    assert len(ecs.batches) == 2, "15 s old: used"
    cache.observe(fleet[0])
    assert ecs.batches[-1] == ["svc00"], "35 s old, older than the resync: described afresh"


def test_an_answer_says_what_an_earlier_one_did_whatever_the_time_it_was_read() -> None:
    """The settled check compares every field a DescribeServices answer carries, and
    only the time it was read is not one of them."""
    earlier = replace(
        service(deployment(td_arn("api", 1))), observed_at=datetime(2026, 11, 30, tzinfo=UTC)
    )
    assert replace(earlier, observed_at=None).says_what(earlier)
    changed = {
        "running_count": 1,
        "tags": {"ecsop:state": "v=2"},
        "deployments": (deployment(td_arn("api", 2)),),
        "events": (),  # the same: an empty tuple, as built
        "current_service_deployment": "arn:other",
    }
    for name, value in changed.items():
        other = replace(earlier, **{name: value})
        assert other.says_what(earlier) is (getattr(earlier, name) == value), name
