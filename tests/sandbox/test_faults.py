"""Fault injection: the configured error mix, recognised by botocore."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from botocore.exceptions import ClientError
from sandbox_harness import Harness, scenario

pytestmark = pytest.mark.sandbox


def calls(sb: Harness, operation: str) -> dict[str, int]:
    found = requests.get(f"{sb.server.endpoint_url}/_sandbox/calls", timeout=5).json()["calls"]
    row = next((c for c in found if c["operation"] == operation), None)
    return {"count": 0, "throttled": 0, "errors": 0} if row is None else row


def test_throttling_is_retried_by_botocore(start_sandbox: Callable[..., Harness]) -> None:
    sb = start_sandbox(
        scenario(faults={"operations": {"DescribeServices": {"throttleRate": 1.0}}}), retries=3
    )
    with pytest.raises(ClientError) as caught:
        sb.service()
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert calls(sb, "DescribeServices")["count"] == 3  # 1 try + 2 retries
    assert calls(sb, "DescribeServices")["throttled"] == 3
    sb.ecs.list_services(cluster="prod")  # other operations are untouched


@pytest.mark.parametrize(
    ("client", "operation", "code"),
    [
        pytest.param("elbv2", "DescribeTargetGroups", "Throttling", id="query-protocol"),
        pytest.param("cloudwatch", "DescribeAlarms", "Throttling", id="cbor-protocol"),
    ],
)
def test_throttling_in_other_protocols(
    start_sandbox: Callable[..., Harness], client: str, operation: str, code: str
) -> None:
    sb = start_sandbox(
        scenario(faults={"operations": {operation: {"throttleRate": 1.0}}}), retries=2
    )
    method = {"DescribeTargetGroups": "describe_target_groups", "DescribeAlarms": "describe_alarms"}
    with pytest.raises(ClientError) as caught:
        getattr(getattr(sb, client), method[operation])()
    assert caught.value.response["Error"]["Code"] == code
    assert calls(sb, operation)["count"] == 2


def test_error_mix_follows_the_rates(start_sandbox: Callable[..., Harness]) -> None:
    sb = start_sandbox(scenario(faults={"throttleRate": 0.2, "errorRate": 0.3}))
    outcomes: dict[str, int] = {}
    for _ in range(400):
        try:
            sb.ecs.list_clusters()
            key = "ok"
        except ClientError as exc:
            key = str(exc.response["ResponseMetadata"]["HTTPStatusCode"])
        outcomes[key] = outcomes.get(key, 0) + 1
    assert set(outcomes) == {"ok", "400", "500", "503"}
    assert 50 <= outcomes["400"] <= 110  # ~80
    assert 85 <= outcomes["500"] + outcomes["503"] <= 155  # ~120
    row = calls(sb, "ListClusters")
    assert row["count"] == 400
    assert row["throttled"] == outcomes["400"]
    assert row["errors"] == outcomes["500"] + outcomes["503"]


def test_server_errors_are_retried(start_sandbox: Callable[..., Harness]) -> None:
    sb = start_sandbox(scenario(faults={"errorRate": 0.5}), retries=10)
    for _ in range(20):
        sb.ecs.list_clusters()  # always succeeds within 10 attempts (p = 2^-10 of failing)
    assert calls(sb, "ListClusters")["errors"] > 0


@pytest.mark.parametrize(
    ("operation", "call", "found"),
    [
        pytest.param(
            "RegisterTaskDefinition",
            lambda sb: sb.ecs.register_task_definition(
                family="lost", containerDefinitions=[{"name": "app", "image": "x", "memory": 64}]
            ),
            lambda sb: len(sb.ecs.list_task_definitions(familyPrefix="lost")["taskDefinitionArns"]),
            id="ecs-simulator",
        ),
        pytest.param(
            "PutMetricAlarm",
            lambda sb: sb.cloudwatch.put_metric_alarm(
                AlarmName="lost",
                Namespace="App",
                MetricName="Errors",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1.0,
                ComparisonOperator="GreaterThanThreshold",
            ),
            lambda sb: len(sb.cloudwatch.describe_alarms(AlarmNames=["lost"])["MetricAlarms"]),
            id="moto",
        ),
    ],
)
def test_a_lost_answer_comes_after_the_write(
    start_sandbox: Callable[..., Harness],
    operation: str,
    call: Callable[[Harness], object],
    found: Callable[[Harness], int],
) -> None:
    """The caller sees a 500 and AWS has done it: what a retry must not do twice."""
    sb = start_sandbox(
        scenario(faults={"operations": {operation: {"lostAnswerRate": 1.0}}}), retries=1
    )
    with pytest.raises(ClientError) as caught:
        call(sb)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert found(sb) == 1
    row = calls(sb, operation)
    assert (row["count"], row["errors"], row["lostAnswers"]) == (1, 1, 1)


def test_faults_can_change_at_run_time(sandbox: Harness) -> None:
    url = f"{sandbox.server.endpoint_url}/_sandbox/faults"
    assert requests.post(
        url, json={"operations": {"ListClusters": {"errorRate": 1.0}}}, timeout=5
    ).ok
    with pytest.raises(ClientError):
        sandbox.ecs.list_clusters()
    assert requests.post(url, json={}, timeout=5).ok
    sandbox.ecs.list_clusters()
