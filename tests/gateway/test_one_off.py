"""The step half of EcsGateway against botocore's Stubber: exact requests, ECS's answers.

RunTask must repeat how the service launches tasks (launch type or capacity
provider strategy, network configuration, platform version) and override
only the step container's command; a step's tasks are found again by
``startedBy`` among running and stopped tasks; records go to the revision's
tags, read fresh. The Stubber checks every request and canned response
against ECS's service model, so these are contract tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ecsop.aws import clients as aws
from ecsop.aws import ecs, ecs_mapping
from ecsop.decision.ecs_state import AwsVpc, CapacityProviderItem, ContainerLogs, TaskLaunch
from ecsop.decision.memory import StepRecord, StepState, step_records

ARN = "arn:aws:ecs:eu-west-1:111122223333"
REVISION = f"{ARN}:task-definition/api:7"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NETWORK = {
    "awsvpcConfiguration": {
        "subnets": ["subnet-1", "subnet-2"],
        "securityGroups": ["sg-1"],
        "assignPublicIp": "DISABLED",
    }
}


@pytest.fixture
def stub() -> Iterator[tuple[ecs.EcsGateway, Stubber]]:
    client = boto3.client(
        "ecs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield ecs.EcsGateway(client), stubber
        stubber.assert_no_pending_responses()


def task(id_: str, status: str, *, exit_code: int | None = None, age: float = 60) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "api", "lastStatus": status}
    if exit_code is not None:
        container["exitCode"] = exit_code
    raw: dict[str, Any] = {
        "taskArn": f"{ARN}:task/prod/{id_}",
        "lastStatus": status,
        "desiredStatus": "STOPPED" if status == "STOPPED" else "RUNNING",
        "createdAt": T0 - timedelta(seconds=age),
        "containers": [container, {"name": "proxy", "exitCode": 143}],
    }
    if status == "STOPPED":
        raw |= {
            "stoppedAt": T0,
            "stopCode": "EssentialContainerExited",
            "stoppedReason": "Essential container in task exited",
        }
    return raw


@pytest.mark.parametrize(
    ("service", "launch"),
    [
        pytest.param(
            {"launchType": "FARGATE", "platformVersion": "1.4.0", "networkConfiguration": NETWORK},
            {"launchType": "FARGATE", "platformVersion": "1.4.0", "networkConfiguration": NETWORK},
            id="fargate-in-a-vpc",
        ),
        pytest.param(
            {
                "capacityProviderStrategy": [
                    {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0},
                    {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
                ],
                "platformVersion": "LATEST",
                "networkConfiguration": NETWORK,
            },
            {
                "capacityProviderStrategy": [
                    {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0},
                    {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
                ],
                "platformVersion": "LATEST",
                "networkConfiguration": NETWORK,
            },
            id="capacity-providers-never-with-a-launch-type",
        ),
        pytest.param({"launchType": "EC2"}, {"launchType": "EC2"}, id="ec2-bridge"),
    ],
)
def test_a_step_is_launched_as_the_service_launches_its_tasks(
    stub: tuple[ecs.EcsGateway, Stubber], service: dict[str, Any], launch: dict[str, Any]
) -> None:
    gateway, stubber = stub
    stubber.add_response(
        "run_task",
        {"tasks": [task("t1", "PROVISIONING", age=0)], "failures": []},
        {
            "cluster": "prod",
            "taskDefinition": REVISION,
            "count": 1,
            "startedBy": "ecsop-0123456789abcdef-1a2b3c4d-1",
            "clientToken": "ecsop-step-abc",
            "overrides": {
                "containerOverrides": [
                    {
                        "name": "api",
                        "command": ["python", "manage.py", "migrate"],
                        "environment": [{"name": "DRY_RUN", "value": "0"}],
                    }
                ]
            },
            "tags": [{"key": "ecsop:step", "value": "migrate try=1"}],
            **launch,
        },
    )
    started = gateway.run_step(
        "prod",
        REVISION,
        ecs_mapping.task_launch(service),
        container="api",
        command=("python", "manage.py", "migrate"),
        environment={"DRY_RUN": "0"},
        started_by="ecsop-0123456789abcdef-1a2b3c4d-1",
        client_token="ecsop-step-abc",
        tags={"ecsop:step": "migrate try=1"},
    )
    assert started.task_id == "t1" and not started.stopped


def test_a_runtask_that_places_nothing_is_an_error(stub: tuple[ecs.EcsGateway, Stubber]) -> None:
    gateway, stubber = stub
    stubber.add_response(
        "run_task",
        {"tasks": [], "failures": [{"reason": "RESOURCE:CPU", "detail": "no instance"}]},
    )
    with pytest.raises(aws.AwsError) as raised:
        gateway.run_step(
            "prod",
            REVISION,
            TaskLaunch(launch_type="EC2"),
            container="api",
            command=("x",),
            environment={},
            started_by="s",
            client_token="t",
            tags={},
        )
    assert raised.value.code == "RunTaskFailed"
    assert "RESOURCE:CPU: no instance" in raised.value.message


def test_a_steps_tasks_are_found_running_and_stopped_by_started_by(
    stub: tuple[ecs.EcsGateway, Stubber],
) -> None:
    gateway, stubber = stub
    for desired, arns in (("RUNNING", ["t2"]), ("STOPPED", ["t1"])):
        stubber.add_response(
            "list_tasks",
            {"taskArns": [f"{ARN}:task/prod/{a}" for a in arns]},
            {"cluster": "prod", "startedBy": "sb", "desiredStatus": desired, "maxResults": 100},
        )
    stubber.add_response(
        "describe_tasks",
        {"tasks": [task("t2", "RUNNING", age=10), task("t1", "STOPPED", exit_code=3, age=400)]},
        {"cluster": "prod", "tasks": [f"{ARN}:task/prod/t2", f"{ARN}:task/prod/t1"]},
    )
    first, second = gateway.step_tasks("prod", "sb", "api")
    assert (first.task_id, first.stopped, first.exit_code) == ("t1", True, 3), "oldest first"
    assert first.stop_code == "EssentialContainerExited"
    assert (second.task_id, second.stopped) == ("t2", False)


def test_records_are_read_fresh_and_written_on_the_revision(
    stub: tuple[ecs.EcsGateway, Stubber],
) -> None:
    gateway, stubber = stub
    described = {
        "taskDefinitionArn": REVISION,
        "family": "api",
        "revision": 7,
        "containerDefinitions": [
            {
                "name": "api",
                "image": "repo/api@sha256:" + "1" * 64,
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": "/api", "awslogs-stream-prefix": "app"},
                },
            }
        ],
    }
    started = StepRecord(StepState.STARTED, 1, 1714564800)
    stubber.add_response(
        "list_tags_for_resource",
        {
            "tags": [
                {"key": "team", "value": "x"},
                {"key": "ecsop:step:migrate", "value": started.value()},
            ]
        },
        {"resourceArn": REVISION},
    )
    stubber.add_response(
        "describe_task_definition",
        {"taskDefinition": described, "tags": [{"key": "team", "value": "x"}]},
        {"taskDefinition": REVISION, "include": ["TAGS"]},
    )
    fresh = gateway.fresh_revision(REVISION)
    assert step_records(fresh.tags) == {"migrate": started}
    assert fresh.logs == {"api": ContainerLogs("awslogs", "/api", "app")}

    done = started.finished(True, "t1", 0, "EssentialContainerExited", "")
    stubber.add_response(
        "tag_resource",
        {},
        {"resourceArn": REVISION, "tags": [{"key": "ecsop:step:migrate", "value": done.value()}]},
    )
    gateway.record_step(REVISION, "migrate", done)
    cached = gateway.task_definition(REVISION)  # no DescribeTaskDefinition: cached, tags followed
    assert step_records(cached.tags) == {"migrate": done}
    assert cached.tags["team"] == "x"


@pytest.mark.parametrize(
    ("container", "expected", "where"),
    [
        pytest.param(
            {
                "logDriver": "awslogs",
                "options": {"awslogs-group": "/g", "awslogs-stream-prefix": "p"},
            },
            ContainerLogs("awslogs", "/g", "p"),
            "CloudWatch Logs group /g, stream p/api/t1",
            id="awslogs",
        ),
        pytest.param(
            {
                "logDriver": "awsfirelens",
                "options": {
                    "Name": "cloudwatch_logs",
                    "log_group_name": "/f",
                    "log_stream_prefix": "api/",
                },
            },
            ContainerLogs("awsfirelens", "/f", "api/"),
            "CloudWatch Logs group /f, stream api/api-firelens-t1 (FireLens)",
            id="firelens-to-cloudwatch",
        ),
        pytest.param(
            {"logDriver": "splunk", "options": {"splunk-url": "https://s"}},
            ContainerLogs("splunk"),
            "log driver splunk",
            id="another-driver",
        ),
    ],
)
def test_where_a_steps_logs_are(
    container: dict[str, Any], expected: ContainerLogs, where: str
) -> None:
    logs = ecs_mapping.container_logs(
        {"containerDefinitions": [{"name": "api", "logConfiguration": container}, {"name": "x"}]}
    )
    assert logs == {"api": expected}
    assert logs["api"].where("api", "t1") == where


def test_the_service_launch_is_read_from_describe_services() -> None:
    launch = ecs_mapping.task_launch(
        {
            "capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}],
            "platformVersion": "1.4.0",
            "networkConfiguration": NETWORK,
        }
    )
    assert launch == TaskLaunch(
        "",
        (CapacityProviderItem("FARGATE", 1, 0),),
        "1.4.0",
        AwsVpc(("subnet-1", "subnet-2"), ("sg-1",), "DISABLED"),
    )
