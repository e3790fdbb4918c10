"""Token-bucket throttling: per-operation buckets and ECS's documented rates (per category).

"The bucket maximum capacity signifies the burst rate and the bucket refill rate
is the sustained rate" (request-throttling.html). Unit tests run the buckets on
a fake wall clock; the HTTP tests check botocore sees ``ThrottlingException``
and that the call counts and log record it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests
from botocore.exceptions import ClientError
from sandbox_harness import Harness, scenario

from ecsop.sandbox import ecs_rates
from ecsop.sandbox.faults import FaultInjector
from ecsop.sandbox.protocol import Call
from ecsop.sandbox.scenario import Faults
from ecsop.sandbox.token_bucket import Rate, TokenBucket


class FakeWall:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("rate", "calls_at", "allowed"),
    [
        pytest.param(Rate(1, 3), [0, 0, 0, 0], [True, True, True, False], id="burst-then-empty"),
        pytest.param(Rate(1, 3), [0, 0, 0, 0, 1], [True] * 3 + [False, True], id="refills-1-per-s"),
        pytest.param(Rate(2, 2), [0, 0, 10, 10, 10], [True, True, True, True, False], id="capped"),
        pytest.param(Rate(0.5, 1), [0, 1, 2, 2], [True, False, True, False], id="slow-refill"),
    ],
)
def test_a_bucket_allows_its_burst_then_its_sustained_rate(
    rate: Rate, calls_at: list[float], allowed: list[bool]
) -> None:
    wall = FakeWall()
    bucket = TokenBucket(rate, wall)
    seen = []
    for at in calls_at:
        wall.now = 100.0 + at
        seen.append(bucket.take())
    assert seen == allowed


def ecs(operation: str) -> Call:
    return Call("ecs", operation, "json")


def test_operations_have_their_own_buckets_and_throttled_calls_are_counted() -> None:
    wall = FakeWall()
    injector = FaultInjector(
        Faults.model_validate(
            {"operations": {"DescribeServices": {"refillPerSecond": 1, "burst": 2}}}
        ),
        seed=1,
        monotonic=wall,
    )
    outcomes = [injector.decide(ecs("DescribeServices")) for _ in range(3)]
    assert [None if f is None else f.status for f in outcomes] == [None, None, 400]
    assert all(injector.decide(ecs("ListServices")) is None for _ in range(100))
    row = next(r for r in injector.calls() if r["operation"] == "DescribeServices")
    assert (row["count"], row["throttled"]) == (3, 1)
    # New fault settings start with full buckets.
    injector.faults = injector.faults
    assert injector.decide(ecs("DescribeServices")) is None


@pytest.mark.parametrize(
    ("operation", "burst"),
    [
        pytest.param("DescribeClusters", 50, id="cluster-read"),
        pytest.param("RegisterTaskDefinition", 20, id="task-definition-modify"),
        pytest.param("RunTask", 20, id="run-task-fargate"),
        pytest.param("DescribeServices", 100, id="service-read"),
        pytest.param("UpdateService", 50, id="service-modify"),
        pytest.param("TagResource", 20, id="tag-modify"),
        pytest.param("DescribeTasks", 100, id="cluster-resource-read"),
        pytest.param("StopServiceDeployment", 20, id="unlisted"),
    ],
)
def test_the_ecs_preset_gives_each_ecs_operation_its_burst(operation: str, burst: int) -> None:
    wall = FakeWall()
    injector = FaultInjector(Faults.model_validate({"preset": "ecs-documented"}), 1, wall)
    allowed = sum(injector.decide(ecs(operation)) is None for _ in range(burst + 5))
    assert allowed == burst
    wall.now += 1
    refill = ecs_rates.rate(operation).refill_per_second
    assert sum(injector.decide(ecs(operation)) is None for _ in range(100)) == refill
    # Other services are not ECS: the preset leaves them alone.
    assert all(injector.decide(Call("monitoring", operation, "cbor")) is None for _ in range(99))


def test_actions_of_one_category_share_its_bucket_as_at_ecs() -> None:
    """"All API actions in a category share the same token bucket" (request-throttling.html)."""
    wall = FakeWall()
    injector = FaultInjector(Faults.model_validate({"preset": "ecs-documented"}), 1, wall)
    allowed = [
        injector.decide(ecs(operation)) is None
        for _ in range(60)
        for operation in ("DescribeServices", "ListServices")
    ]
    assert sum(allowed) == 100
    # Another category is untouched.
    assert injector.decide(ecs("UpdateService")) is None


def test_an_operation_entry_overrides_the_preset() -> None:
    faults = Faults.model_validate(
        {
            "preset": "ecs-documented",
            "operations": {"UpdateService": {"refillPerSecond": 100, "burst": 100}},
        }
    )
    injector = FaultInjector(faults, 1, FakeWall())
    assert all(injector.decide(ecs("UpdateService")) is None for _ in range(100))


def test_a_bucket_needs_both_numbers() -> None:
    with pytest.raises(ValueError, match="both refillPerSecond and burst"):
        Faults.model_validate({"operations": {"DescribeServices": {"burst": 2}}})


def call_row(sb: Harness, operation: str) -> dict[str, int]:
    rows = requests.get(f"{sb.server.endpoint_url}/_sandbox/calls", timeout=5).json()["calls"]
    found: dict[str, int] = next(r for r in rows if r["operation"] == operation)
    return found


def test_an_empty_bucket_answers_throttling_exception_in_wall_clock_time(
    start_sandbox: Callable[..., Harness],
) -> None:
    faults = {"operations": {"DescribeServices": {"refillPerSecond": 0.5, "burst": 3}}}
    sb = start_sandbox(scenario(faults=faults))
    for _ in range(3):
        sb.service()
    with pytest.raises(ClientError) as caught:
        sb.service()
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    sb.ecs.list_services(cluster="prod")  # its own (absent) bucket
    time.sleep(2.2)  # AWS's throttle refills on the wall clock, not the simulated one
    sb.service()
    assert call_row(sb, "DescribeServices")["throttled"] == 1
    log = requests.get(
        f"{sb.server.endpoint_url}/_sandbox/calls/log",
        params={"operation": "DescribeServices"},
        timeout=5,
    ).json()["calls"]
    assert [c["fault"] for c in log] == [None, None, None, 400, None]


def test_the_ecs_preset_throttles_registrations_past_their_burst(
    start_sandbox: Callable[..., Harness],
) -> None:
    sb = start_sandbox(scenario(faults={"preset": "ecs-documented"}))
    began = time.monotonic()
    allowed = []
    for _ in range(30):
        try:
            sb.register("registry.example/api@sha256:" + "a" * 64)
            allowed.append(True)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ThrottlingException"
            allowed.append(False)
    elapsed = time.monotonic() - began
    assert all(allowed[:20])  # the burst
    # ...then 1 token a second: however slow this machine is, no more than that.
    assert sum(allowed) <= 20 + int(elapsed) + 1
    assert not all(allowed)
    sb.elbv2.describe_target_groups()  # ELBv2 is not ECS
    shown = requests.get(f"{sb.server.endpoint_url}/_sandbox/faults", timeout=5).json()
    assert shown["preset"] == "ecs-documented"
