"""The ECS events the simulator publishes, as an EventBridge rule delivers them to SQS.

Shapes follow the ECS Developer Guide's event pages ("Amazon ECS task state
change events", "Amazon ECS service action events", "Amazon ECS service
deployment state change events"); the clock is stepped by hand, so each
assertion is about what a consumer reads after simulated time moved.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import requests
from sandbox_harness import CRASH, GOOD, GOOD_2, PULL_ERROR, Harness, scenario, service_spec

pytestmark = pytest.mark.sandbox

PATTERN = {
    "source": ["aws.ecs"],
    "detail-type": [
        "ECS Task State Change",
        "ECS Service Action",
        "ECS Deployment State Change",
    ],
}


class Inbox:
    """An SQS queue behind an EventBridge rule on ECS's events, as helm-free-deploy sets up."""

    def __init__(self, sb: Harness, pattern: dict[str, Any] | None = None) -> None:
        kw: dict[str, Any] = {
            "endpoint_url": sb.server.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        self.sqs = boto3.client("sqs", **kw)
        events = boto3.client("events", **kw)
        self.url = self.sqs.create_queue(QueueName="ecsop-events")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(Name="ecs", EventPattern=json.dumps(pattern or PATTERN))
        events.put_targets(Rule="ecs", Targets=[{"Id": "queue", "Arn": arn}])

    def drain(self) -> list[dict[str, Any]]:
        """Every event waiting in the queue, oldest first, deleted as read."""
        found: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


def names(found: list[dict[str, Any]]) -> list[str]:
    return [
        e["detail"].get("eventName")
        or f"{e['detail']['lastStatus']}/{e['detail']['desiredStatus']}"
        for e in found
    ]


def test_a_deployment_publishes_its_tasks_its_progress_and_its_end(sandbox: Harness) -> None:
    inbox = Inbox(sandbox)
    service = sandbox.service()
    sandbox.deploy(GOOD_2)
    sandbox.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED")
    sandbox.advance(1)
    found = inbox.drain()
    order = names(found)
    assert order[0] == "SERVICE_DEPLOYMENT_IN_PROGRESS"
    assert order[-2:] == ["SERVICE_DEPLOYMENT_COMPLETED", "SERVICE_STEADY_STATE"]
    # New tasks start (PROVISIONING -> PENDING -> RUNNING), old ones drain and stop.
    for state in ("PROVISIONING/RUNNING", "PENDING/RUNNING", "RUNNING/RUNNING", "STOPPED/STOPPED"):
        assert state in order, state

    started = found[0]
    assert (
        started["source"] == "aws.ecs" and started["detail-type"] == "ECS Deployment State Change"
    )
    assert started["resources"] == [service["serviceArn"]]
    assert "account" not in started  # moto's SQS delivery leaves it out (docs/sandbox.md)
    assert started["region"] == "us-east-1"
    deployment = sandbox.service()["deployments"][0]
    assert started["detail"] == {
        "eventType": "INFO",
        "eventName": "SERVICE_DEPLOYMENT_IN_PROGRESS",
        "deploymentId": deployment["id"],
        "updatedAt": started["detail"]["updatedAt"],
        "reason": f"ECS deployment {deployment['id']} in progress.",
    }
    task_event = next(e for e in found if e["detail-type"] == "ECS Task State Change")
    detail = task_event["detail"]
    assert task_event["resources"] == [detail["taskArn"]]
    assert detail["group"] == "service:api"
    assert detail["startedBy"] == deployment["id"]
    assert detail["clusterArn"] == service["clusterArn"]
    assert detail["createdAt"].endswith("Z") and "T" in detail["createdAt"]
    assert isinstance(detail["version"], int)
    steady = found[-1]
    assert steady["detail-type"] == "ECS Service Action"
    assert steady["detail"]["clusterArn"] == service["clusterArn"]
    assert steady["detail"]["eventType"] == "INFO"


def test_a_crash_is_published_with_its_stop_code_reason_and_exit_code(sandbox: Harness) -> None:
    sandbox.server.simulator.services[("prod", "api")].deployment_configuration[
        "deploymentCircuitBreaker"
    ] = {"enable": False, "rollback": False}
    inbox = Inbox(sandbox)
    sandbox.deploy(CRASH)
    sandbox.run_until(lambda s: s["deployments"][0]["runningCount"] > 0, step=1)
    inbox.drain()
    sandbox.advance(5)  # crashAfterSeconds
    stopping = [e for e in inbox.drain() if e["detail"].get("desiredStatus") == "STOPPED"]
    assert stopping, "the crash was not published"
    detail = stopping[0]["detail"]
    assert detail["lastStatus"] == "STOPPING"
    assert detail["stopCode"] == "EssentialContainerExited"
    assert detail["stoppedReason"] == "Essential container in task exited"
    assert detail["containers"][0]["exitCode"] == 3
    sandbox.advance(2)  # stoppingSeconds
    stopped = [e["detail"] for e in inbox.drain() if e["detail"].get("lastStatus") == "STOPPED"]
    assert stopped and stopped[0]["taskArn"] == detail["taskArn"]
    assert stopped[0]["stoppedAt"] and stopped[0]["version"] > detail["version"]


def test_a_breaker_rollback_is_failed_then_in_progress_with_its_reason(
    start_sandbox: Any,
) -> None:
    sb = start_sandbox(scenario({"api": service_spec(2, breaker=True, rollback=True)}))
    inbox = Inbox(sb)
    first = sb.service()["deployments"][0]["id"]
    sb.deploy(PULL_ERROR)
    sb.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED", limit=3600)
    found = inbox.drain()
    deployment = [e["detail"] for e in found if e["detail-type"] == "ECS Deployment State Change"]
    assert [d["eventName"] for d in deployment] == [
        "SERVICE_DEPLOYMENT_IN_PROGRESS",
        "SERVICE_DEPLOYMENT_FAILED",
        "SERVICE_DEPLOYMENT_IN_PROGRESS",
        "SERVICE_DEPLOYMENT_COMPLETED",
    ]
    failed, rollback = deployment[1], deployment[2]
    assert failed["eventType"] == "ERROR"
    assert failed["reason"] == "ECS deployment circuit breaker: tasks failed to start."
    assert (
        rollback["reason"]
        == f"ECS deployment circuit breaker: rolling back to deploymentId {first}."
    )
    assert rollback["deploymentId"] != failed["deploymentId"]
    impaired = [e for e in found if e["detail"].get("eventName") == "SERVICE_TASK_START_IMPAIRED"]
    pull = [e["detail"] for e in found if e["detail"].get("stopCode") == "TaskFailedToStart"]
    assert pull and "CannotPullContainerError" in pull[0]["stoppedReason"]
    assert impaired or len(pull) < 3  # the throttle only starts after three failures


def test_a_rule_matching_one_cluster_by_resource_prefix_gets_only_its_events(
    start_sandbox: Any,
) -> None:
    sb = start_sandbox(
        scenario(
            clusters={
                "prod": {"services": {"api": service_spec(1, breaker=False)}},
                "staging": {"services": {"api": service_spec(1, breaker=False)}},
            }
        )
    )
    prod = sb.service()
    prefix = prod["clusterArn"].replace(":cluster/prod", "")
    inbox = Inbox(
        sb,
        {
            **PATTERN,
            "resources": [
                {"prefix": f"{prefix}:task/prod/"},
                {"prefix": f"{prefix}:service/prod/"},
            ],
        },
    )
    sb.deploy(GOOD_2)
    staging_td = sb.register(GOOD_2)
    sb.ecs.update_service(cluster="staging", service="api", taskDefinition=staging_td)
    sb.advance(30)
    found = inbox.drain()
    assert found
    assert all("/prod/" in e["resources"][0] for e in found)


def test_events_are_lost_late_and_twice_as_the_scenario_says(start_sandbox: Any) -> None:
    sb = start_sandbox(scenario(events={"dropRate": 0.5, "delaySeconds": 10}))
    inbox = Inbox(sb)
    sb.deploy(GOOD)
    sb.advance(1)
    assert inbox.drain() == []  # 10 s late
    sb.advance(60)
    delivered = inbox.drain()
    state = requests.get(f"{sb.server.endpoint_url}/_sandbox/events", timeout=5).json()
    assert state["dropped"] > 0 and state["delivered"] == len(delivered)
    assert state["emitted"] == state["dropped"] + state["delivered"]
    assert 0.2 < state["dropped"] / state["emitted"] < 0.8
    for event in delivered:
        assert event["detail"]  # delivered whole

    changed = requests.post(
        f"{sb.server.endpoint_url}/_sandbox/events", json={"duplicateRate": 1.0}, timeout=5
    ).json()
    assert changed["options"] == {
        "dropRate": 0.0,
        "delaySeconds": 0.0,
        "jitterSeconds": 0.0,
        "duplicateRate": 1.0,
    }
    sb.deploy(GOOD_2)
    sb.advance(1)
    twice = inbox.drain()
    ids = [(e["detail-type"], json.dumps(e["detail"], sort_keys=True)) for e in twice]
    assert len(ids) == 2 * len(set(ids))

    bad = requests.post(
        f"{sb.server.endpoint_url}/_sandbox/events", json={"dropRate": 2}, timeout=5
    )
    assert bad.status_code == 400


def test_nothing_is_built_while_no_rule_listens(sandbox: Harness) -> None:
    sandbox.deploy(GOOD_2)
    sandbox.advance(60)
    state = requests.get(f"{sandbox.server.endpoint_url}/_sandbox/events", timeout=5).json()
    assert state["emitted"] > 0 and state["delivered"] == 0 and state["events"] == []


def test_a_target_that_cannot_take_an_event_loses_it_and_ecs_goes_on(sandbox: Harness) -> None:
    inbox = Inbox(sandbox)
    inbox.sqs.delete_queue(QueueUrl=inbox.url)
    sandbox.deploy(GOOD_2)
    sandbox.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED")
    state = requests.get(f"{sandbox.server.endpoint_url}/_sandbox/events", timeout=5).json()
    assert state["undeliverable"] > 0 and state["delivered"] == 0
