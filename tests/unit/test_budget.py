"""ecsop's share of AWS's API rates: the documented table, and calls paced to a share of it.

The budget runs on a fake clock: ``sleep`` advances it, so what a caller
would wait is asserted exactly, and nothing sleeps.
"""

from __future__ import annotations

import botocore.session
import pytest

from ecsop.aws import throttling
from ecsop.aws.budget import BudgetDeferred, BudgetSettings, CallBudget, account_of, deferrable
from ecsop.aws.throttling import Rate


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def budget(share: float = 0.5) -> tuple[CallBudget, FakeTime, list[tuple[str, str, float]]]:
    clock = FakeTime()
    waits: list[tuple[str, str, float]] = []
    found = CallBudget(
        BudgetSettings(share=share),
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        on_wait=lambda service, operation, seconds: waits.append((service, operation, seconds)),
    )
    return found, clock, waits


# --- the documented table ----------------------------------------------------------------


def test_every_ecs_action_in_the_table_is_an_ecs_operation() -> None:
    """A misspelt action would silently fall back to the unlisted rate (botocore's model)."""
    model = botocore.session.get_session().get_service_model("ecs")
    listed = {action for _, actions in throttling.ECS_CATEGORIES for action in actions}
    assert listed - set(model.operation_names) == set()


def test_every_ecs_operation_ecsop_calls_has_a_documented_bucket() -> None:
    for operation in (
        "DescribeServices",
        "UpdateService",
        "DescribeTaskDefinition",
        "ListTaskDefinitions",
        "RegisterTaskDefinition",
        "TagResource",
        "UntagResource",
        "ListTagsForResource",
        "ListTasks",
        "DescribeTasks",
        "DescribeContainerInstances",
        "RunTask",
        "StopTask",
        "ListServiceDeployments",
        "DescribeServiceDeployments",
        "DescribeServiceRevisions",
    ):
        assert throttling.bucket_of("ecs", operation).name != f"ecs:{operation}", operation


@pytest.mark.parametrize(
    ("service", "operation", "bucket", "rate"),
    [
        pytest.param("ecs", "DescribeServices", "ecs:service-read", Rate(20, 100), id="describe"),
        pytest.param("ecs", "ListServices", "ecs:service-read", Rate(20, 100), id="shares-it"),
        pytest.param("ecs", "UpdateService", "ecs:service-modify", Rate(5, 50), id="update"),
        pytest.param(
            "ecs", "RegisterTaskDefinition", "ecs:task-definition-modify", Rate(1, 20), id="reg"
        ),
        pytest.param("ecs", "TagResource", "ecs:tag-modify", Rate(10, 20), id="tag"),
        pytest.param("ecs", "ListTasks", "ecs:cluster-resource-read", Rate(20, 100), id="tasks"),
        pytest.param(
            "ecs", "StopServiceDeployment", "ecs:StopServiceDeployment", Rate(1, 20), id="unlisted"
        ),
        pytest.param(
            "elasticloadbalancing",
            "DescribeTargetHealth",
            "elasticloadbalancing:non-mutating",
            Rate(10, 40),
            id="elb",
        ),
        pytest.param(
            "monitoring", "DescribeAlarms", "monitoring:DescribeAlarms", Rate(9, 9), id="alarms"
        ),
        pytest.param("sts", "AssumeRole", "sts:AssumeRole", Rate(10, 20), id="unpublished"),
    ],
)
def test_each_call_draws_from_its_documented_bucket(
    service: str, operation: str, bucket: str, rate: Rate
) -> None:
    found = throttling.bucket_of(service, operation)
    assert (found.name, found.rate) == (bucket, rate)


# --- pacing --------------------------------------------------------------------------------


def test_a_burst_goes_at_once_then_calls_are_spaced_at_the_share_of_the_sustained_rate() -> None:
    paced, clock, waits = budget(share=0.5)  # DescribeServices: 50 at once, then 10 a second
    for _ in range(50):
        assert paced.acquire("111122223333", "us-east-1", "ecs", "DescribeServices") == 0
    started = clock.now
    for _ in range(20):
        paced.acquire("111122223333", "us-east-1", "ecs", "DescribeServices")
    assert clock.now - started == pytest.approx(2.0)
    assert len(waits) == 20 and all(w[:2] == ("ecs", "DescribeServices") for w in waits)


def test_a_deferrable_call_that_would_wait_too_long_takes_no_token_and_says_when() -> None:
    """A deploy gives its worker back rather than sleep; a rollback behind it goes first."""
    defers: list[tuple[str, str]] = []
    clock = FakeTime()
    waits: list[tuple[str, str, float]] = []
    paced = CallBudget(
        BudgetSettings(share=0.5),
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        on_wait=lambda service, operation, seconds: waits.append((service, operation, seconds)),
        on_defer=lambda service, operation: defers.append((service, operation)),
    )
    rate = paced.rate("ecs", "RegisterTaskDefinition")
    assert rate is not None
    for _ in range(int(rate.burst)):
        paced.acquire("a", "us-east-1", "ecs", "RegisterTaskDefinition")
    with deferrable(1.0), pytest.raises(BudgetDeferred) as deferred:
        paced.acquire("a", "us-east-1", "ecs", "RegisterTaskDefinition")
    assert deferred.value.seconds == pytest.approx(1 / rate.sustained)
    assert clock.slept == [] and waits == []
    assert defers == [("ecs", "RegisterTaskDefinition")], "counted for the metric"
    # No token was taken: outside the block the next call waits exactly as long.
    assert paced.acquire("a", "us-east-1", "ecs", "RegisterTaskDefinition") == pytest.approx(
        1 / rate.sustained
    )
    # Within the limit, a deferrable call waits like any other.
    clock.now += (rate.burst + 1) / rate.sustained  # the bucket full again
    with deferrable(1 / rate.sustained + 0.01):
        for _ in range(int(rate.burst) + 1):
            paced.acquire("a", "us-east-1", "ecs", "RegisterTaskDefinition")
    assert clock.slept[-1] == pytest.approx(1 / rate.sustained)
    assert len(defers) == 1, "a call that waited within the limit was not deferred"


def test_operations_ecs_throttles_together_share_one_budget() -> None:
    paced, clock, _ = budget(share=0.5)
    for _ in range(25):
        paced.acquire("a", "us-east-1", "ecs", "DescribeServices")
        paced.acquire("a", "us-east-1", "ecs", "ListServices")
    assert clock.slept == []
    assert paced.acquire("a", "us-east-1", "ecs", "ListServices") == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("other_account", "other_region", "other_operation"),
    [
        pytest.param("222233334444", "us-east-1", "DescribeServices", id="another-account"),
        pytest.param("111122223333", "eu-west-1", "DescribeServices", id="another-region"),
        pytest.param("111122223333", "us-east-1", "UpdateService", id="another-bucket"),
    ],
)
def test_each_account_region_and_bucket_has_its_own_budget(
    other_account: str, other_region: str, other_operation: str
) -> None:
    paced, _clock, _ = budget(share=0.5)
    for _ in range(50):
        paced.acquire("111122223333", "us-east-1", "ecs", "DescribeServices")
    assert paced.acquire(other_account, other_region, "ecs", other_operation) == 0


def test_calls_without_a_role_count_against_the_daemons_own_account() -> None:
    paced, _, _ = budget(share=0.5)
    paced.own_account = "111122223333"
    for _ in range(50):
        paced.acquire("", "us-east-1", "ecs", "DescribeServices")
    assert paced.acquire("111122223333", "us-east-1", "ecs", "DescribeServices") > 0


def test_a_share_of_zero_turns_the_budget_off() -> None:
    paced, clock, waits = budget(share=0)
    for _ in range(1000):
        paced.acquire("a", "us-east-1", "ecs", "RegisterTaskDefinition")
    assert (clock.slept, waits, paced.rate("ecs", "DescribeServices")) == ([], [], None)


def test_the_planned_rate_is_the_share_of_the_documented_one() -> None:
    paced, _, _ = budget(share=0.25)
    assert paced.rate("ecs", "DescribeServices") == Rate(5, 25)
    assert paced.rate("ecs", "RegisterTaskDefinition") == Rate(0.25, 5)


def test_a_tiny_share_still_allows_one_call_at_a_time() -> None:
    assert Rate(1, 20).scaled(0.01).burst == 1


def test_a_negative_share_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        CallBudget(BudgetSettings(share=-0.1))


@pytest.mark.parametrize(
    ("role", "account"),
    [
        pytest.param(None, "", id="no-role"),
        pytest.param("arn:aws:iam::222233334444:role/deployer", "222233334444", id="role"),
        pytest.param("not-an-arn", "", id="garbage"),
    ],
)
def test_a_roles_account(role: str | None, account: str) -> None:
    assert account_of(role) == account
