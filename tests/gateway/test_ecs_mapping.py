"""EcsGateway against botocore's Stubber: what moto does not model, with exact requests.

The Stubber checks every request against the ECS service model and the
expected parameters, and every canned response against the output shape, so
these are contract tests too: they pin what ECS documents and moto leaves out
(deployment configuration, alarms, events, paging, stopped tasks).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ecsop.aws import clients as aws
from ecsop.aws import ecs
from ecsop.aws.revisions import FIND_REVISION_LIMIT, PreparedClone
from ecsop.decision.ecs_state import (
    Fingerprint,
    RolloutState,
    ServiceMissing,
    ServiceState,
    TaskDefinitionArn,
)
from ecsop.decision.memory import TAG_CONTENT, TAG_RELEASE, RevisionMemory

ARN = "arn:aws:ecs:eu-west-1:111122223333"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def stub() -> Iterator[tuple[ecs.EcsGateway, Stubber]]:
    client = boto3.client(
        "ecs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield ecs.EcsGateway(client), stubber
        stubber.assert_no_pending_responses()


def service(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "serviceArn": f"{ARN}:service/prod/{name}",
        "serviceName": name,
        "status": "ACTIVE",
        "taskDefinition": f"{ARN}:task-definition/web:3",
        "desiredCount": 4,
        "runningCount": 3,
        "deployments": [],
        **fields,
    }


def deployment(id_: str, status: str, revision: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "status": status,
        "taskDefinition": f"{ARN}:task-definition/web:{revision}",
        "createdAt": T0,
        "updatedAt": T0 + timedelta(minutes=1),
        **fields,
    }


def expect_describe(stubber: Stubber, names: list[str], response: dict[str, Any]) -> None:
    stubber.add_response(
        "describe_services",
        {"services": [], "failures": [], **response},
        {"cluster": "prod", "services": names, "include": ["TAGS"]},
    )


def test_every_field_is_mapped(stub: tuple[ecs.EcsGateway, Stubber]) -> None:
    gateway, stubber = stub
    events = [
        {"id": f"e{i}", "createdAt": T0 + timedelta(seconds=i), "message": f"m{i}"}
        for i in range(30)
    ]
    raw = service(
        "api",
        deploymentConfiguration={
            "deploymentCircuitBreaker": {"enable": True, "rollback": False},
            "alarms": {"alarmNames": ["api-5xx", "api-p99"], "enable": True, "rollback": True},
        },
        loadBalancers=[{"targetGroupArn": "arn:tg", "containerName": "api", "containerPort": 80}],
        deployments=[
            deployment(
                "ecs-svc/2",
                "PRIMARY",
                4,
                rolloutState="IN_PROGRESS",
                rolloutStateReason="ECS deployment ecs-svc/2 in progress.",
                desiredCount=4,
                runningCount=1,
                pendingCount=2,
                failedTasks=3,
            ),
            deployment("ecs-svc/1", "ACTIVE", 3, rolloutState="COMPLETED", runningCount=2),
        ],
        events=events,
        tags=[{"key": "ecsop:release", "value": "api"}],
    )
    date = "Wed, 01 May 2024 12:05:00 GMT"
    expect_describe(
        stubber, ["api"], {"services": [raw], "ResponseMetadata": {"HTTPHeaders": {"date": date}}}
    )
    state = gateway.describe_services("prod", ["api"])["api"]
    assert isinstance(state, ServiceState)
    assert (state.desired_count, state.running_count) == (4, 3)
    assert state.circuit_breaker_enabled and not state.circuit_breaker_rollback
    assert state.alarm_names == ("api-5xx", "api-p99") and state.alarm_rollback
    assert state.has_load_balancers
    assert state.tags == {"ecsop:release": "api"}
    assert state.observed_at == T0 + timedelta(minutes=5)
    assert [e.id for e in state.events] == [f"e{i}" for i in range(29, 9, -1)]
    primary, old = state.deployments
    assert primary is state.primary
    assert primary.rollout_state is RolloutState.IN_PROGRESS
    assert primary.rollout_state_reason == "ECS deployment ecs-svc/2 in progress."
    assert (primary.desired_count, primary.running_count, primary.pending_count) == (4, 1, 2)
    assert primary.failed_tasks == 3
    assert primary.task_definition == f"{ARN}:task-definition/web:4"
    assert (primary.created_at, primary.updated_at) == (T0, T0 + timedelta(minutes=1))
    assert old.rollout_state is RolloutState.COMPLETED and old.failed_tasks == 0


@pytest.mark.parametrize(
    ("alarms", "expected"),
    [
        pytest.param({"alarmNames": ["a"], "enable": False, "rollback": False}, (), id="disabled"),
        # ECS neither watches nor rolls back on alarms it does not use.
        pytest.param({"alarmNames": ["a"], "enable": False, "rollback": True}, (), id="off"),
        pytest.param(None, (), id="absent"),
    ],
)
def test_alarms_count_only_when_enabled(
    stub: tuple[ecs.EcsGateway, Stubber], alarms: dict[str, Any] | None, expected: tuple[str, ...]
) -> None:
    gateway, stubber = stub
    config = {"alarms": alarms} if alarms else {}
    expect_describe(
        stubber, ["api"], {"services": [service("api", deploymentConfiguration=config)]}
    )
    state = gateway.describe_services("prod", ["api"])["api"]
    assert isinstance(state, ServiceState) and state.alarm_names == expected
    assert not state.alarm_rollback


def test_failures_and_draining_are_missing(stub: tuple[ecs.EcsGateway, Stubber]) -> None:
    gateway, stubber = stub
    expect_describe(
        stubber,
        ["old", "gone", f"{ARN}:service/prod/arn-named"],
        {
            "services": [service("old", status="DRAINING")],
            "failures": [
                {"arn": f"{ARN}:service/prod/gone", "reason": "MISSING", "detail": "deleted"},
                {"arn": f"{ARN}:service/prod/arn-named", "reason": "MISSING"},
            ],
        },
    )
    found = gateway.describe_services("prod", ["old", "gone", f"{ARN}:service/prod/arn-named"])
    assert found["old"] == ServiceMissing("prod", "old", "status DRAINING")
    assert found["gone"] == ServiceMissing("prod", "gone", "MISSING: deleted")
    assert isinstance(found[f"{ARN}:service/prod/arn-named"], ServiceMissing)


def test_a_deployment_without_created_at_is_an_error(stub: tuple[ecs.EcsGateway, Stubber]) -> None:
    gateway, stubber = stub
    broken = deployment("ecs-svc/1", "PRIMARY", 3)
    del broken["createdAt"]
    expect_describe(stubber, ["api"], {"services": [service("api", deployments=[broken])]})
    with pytest.raises(aws.AwsError, match="IncompleteResponse"):
        gateway.describe_services("prod", ["api"])


def test_update_service_sends_the_task_definition_only(
    stub: tuple[ecs.EcsGateway, Stubber],
) -> None:
    gateway, stubber = stub
    td = TaskDefinitionArn(f"{ARN}:task-definition/web:4")
    stubber.add_response(
        "update_service", {}, {"cluster": "prod", "service": "api", "taskDefinition": td}
    )
    assert gateway.update_service("prod", "api", td) == ""  # no deployments in the answer


def test_update_service_returns_the_deployment_it_started(
    stub: tuple[ecs.EcsGateway, Stubber],
) -> None:
    gateway, stubber = stub
    td = TaskDefinitionArn(f"{ARN}:task-definition/web:4")
    deployments = [
        {"id": "ecs-svc/222", "status": "PRIMARY", "taskDefinition": td},
        {"id": "ecs-svc/111", "status": "ACTIVE", "taskDefinition": f"{ARN}:task-definition/web:3"},
    ]
    stubber.add_response(
        "update_service",
        {"service": {"serviceName": "api", "deployments": deployments}},
        {"cluster": "prod", "service": "api", "taskDefinition": td},
    )
    assert gateway.update_service("prod", "api", td) == "ecs-svc/222"


def test_throttling_that_outlasts_retries_is_retryable(
    stub: tuple[ecs.EcsGateway, Stubber],
) -> None:
    gateway, stubber = stub
    stubber.add_client_error("update_service", "ThrottlingException", "Rate exceeded")
    with pytest.raises(aws.AwsError) as caught:
        gateway.update_service("prod", "api", TaskDefinitionArn("web:4"))
    assert caught.value.retryable
    assert (caught.value.code, caught.value.message) == ("ThrottlingException", "Rate exceeded")


def described(revision: int, content: str | None = None) -> dict[str, Any]:
    tags = [{"key": TAG_RELEASE, "value": "web"}, {"key": TAG_CONTENT, "value": content}]
    return {
        "taskDefinition": {
            "taskDefinitionArn": f"{ARN}:task-definition/web:{revision}",
            "family": "web",
            "revision": revision,
            "containerDefinitions": [{"name": "api", "image": f"api:{revision}"}],
        },
        "tags": tags if content else [],
    }


def wanted(content: str) -> PreparedClone:
    return PreparedClone("web", {}, RevisionMemory("web", Fingerprint("f"), content))


def test_find_revision_filters_longer_families_and_pages(
    stub: tuple[ecs.EcsGateway, Stubber],
) -> None:
    gateway, stubber = stub
    listing = {"familyPrefix": "web", "status": "ACTIVE", "sort": "DESC", "maxResults": 100}
    stubber.add_response(
        "list_task_definitions",
        {
            "taskDefinitionArns": [f"{ARN}:task-definition/web-worker:{r}" for r in (9, 8)],
            "nextToken": "page2",
        },
        listing,
    )
    stubber.add_response(
        "list_task_definitions",
        {"taskDefinitionArns": [f"{ARN}:task-definition/web:{r}" for r in (3, 2, 1)]},
        {**listing, "nextToken": "page2"},
    )
    for revision, fingerprint in ((3, "other"), (2, "wanted")):
        stubber.add_response(
            "describe_task_definition",
            described(revision, fingerprint),
            {"taskDefinition": f"{ARN}:task-definition/web:{revision}", "include": ["TAGS"]},
        )
    assert gateway.find_revision(wanted("wanted")) == f"{ARN}:task-definition/web:2"


def test_find_revision_looks_at_the_newest_fifty(stub: tuple[ecs.EcsGateway, Stubber]) -> None:
    gateway, stubber = stub
    revisions = range(120, 0, -1)
    stubber.add_response(
        "list_task_definitions",
        {"taskDefinitionArns": [f"{ARN}:task-definition/web:{r}" for r in revisions]},
        {"familyPrefix": "web", "status": "ACTIVE", "sort": "DESC", "maxResults": 100},
    )
    for revision in list(revisions)[: FIND_REVISION_LIMIT]:
        stubber.add_response(
            "describe_task_definition",
            described(revision),
            {"taskDefinition": f"{ARN}:task-definition/web:{revision}", "include": ["TAGS"]},
        )
    assert gateway.find_revision(wanted("old")) is None


def test_stopped_task_reasons(stub: tuple[ecs.EcsGateway, Stubber]) -> None:
    gateway, stubber = stub
    arns = [f"{ARN}:task/prod/t{i}" for i in range(2)]
    stubber.add_response(
        "list_tasks",
        {"taskArns": arns},
        {
            "cluster": "prod",
            "startedBy": "ecs-svc/2",
            "desiredStatus": "STOPPED",
            "maxResults": 5,
        },
    )
    stubber.add_response(
        "describe_tasks",
        {
            "tasks": [
                {
                    "taskArn": arns[0],
                    "lastStatus": "STOPPED",
                    "stopCode": "EssentialContainerExited",
                    "stoppedReason": "Essential container in task exited",
                    "stoppedAt": T0,
                    "containers": [{"name": "api", "exitCode": 137}, {"name": "otel"}],
                },
                {
                    "taskArn": arns[1],
                    "lastStatus": "STOPPED",
                    "stopCode": "TaskFailedToStart",
                    "stoppedReason": "CannotPullContainerError: pull image manifest retried",
                    "stoppedAt": T0 + timedelta(seconds=30),
                    "containers": [{"name": "api", "reason": "CannotPullContainerError"}],
                },
            ]
        },
        {"cluster": "prod", "tasks": arns},
    )
    lines = (
        "TaskFailedToStart: CannotPullContainerError: pull image manifest retried; "
        "container api: CannotPullContainerError",
        "EssentialContainerExited: Essential container in task exited; container api exit code 137",
    )
    assert gateway.stopped_tasks("prod", "ecs-svc/2", limit=5).lines == lines
    # A stopped task never changes: the next look lists, and describes nothing.
    stubber.add_response(
        "list_tasks",
        {"taskArns": arns},
        {"cluster": "prod", "startedBy": "ecs-svc/2", "desiredStatus": "STOPPED", "maxResults": 5},
    )
    assert gateway.stopped_tasks("prod", "ecs-svc/2", limit=5).lines == lines



def test_no_stopped_tasks_no_describe(stub: tuple[ecs.EcsGateway, Stubber]) -> None:
    gateway, stubber = stub
    stubber.add_response("list_tasks", {"taskArns": []})
    assert gateway.stopped_tasks("prod", "ecs-svc/2").lines == ()


def test_stopped_tasks_read_one_page_and_describe_by_hundred(
    stub: tuple[ecs.EcsGateway, Stubber],
) -> None:
    gateway, stubber = stub
    arns = [f"{ARN}:task/prod/t{i}" for i in range(100)]
    listing = {"cluster": "prod", "startedBy": "ecs-svc/2", "desiredStatus": "STOPPED"}
    stubber.add_response(
        "list_tasks", {"taskArns": arns, "nextToken": "n"}, {**listing, "maxResults": 100}
    )
    tasks = [
        {"taskArn": arn, "stoppedReason": "Scaling activity", "stoppedAt": T0} for arn in arns
    ]
    stubber.add_response("describe_tasks", {"tasks": tasks}, {"cluster": "prod", "tasks": arns})
    stopped = gateway.stopped_tasks("prod", "ecs-svc/2")
    assert len(stopped.lines) == 100 and not stopped.complete
