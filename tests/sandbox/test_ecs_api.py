"""The ECS API surface the daemon relies on: task definitions, tags, limits."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sandbox_harness import GOOD, Harness

pytestmark = pytest.mark.sandbox

FULL_TASK_DEFINITION: dict[str, Any] = {
    "family": "everything",
    "taskRoleArn": "arn:aws:iam::111122223333:role/task",
    "executionRoleArn": "arn:aws:iam::111122223333:role/exec",
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "512",
    "memory": "1024",
    "pidMode": "task",
    "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
    "ephemeralStorage": {"sizeInGiB": 30},
    "enableFaultInjection": True,
    "volumes": [
        {"name": "scratch"},
        {
            "name": "shared",
            "efsVolumeConfiguration": {"fileSystemId": "fs-1234", "rootDirectory": "/data"},
        },
    ],
    "placementConstraints": [],
    "proxyConfiguration": {
        "type": "APPMESH",
        "containerName": "envoy",
        "properties": [{"name": "AppPorts", "value": "8000"}],
    },
    "containerDefinitions": [
        {
            "name": "api",
            "image": GOOD,
            "essential": True,
            "cpu": 256,
            "memoryReservation": 256,
            "portMappings": [{"containerPort": 8000, "protocol": "tcp", "name": "http"}],
            "environment": [{"name": "A", "value": "1"}],
            "secrets": [{"name": "DB", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/db"}],
            "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/tmp/s"}],
            "volumesFrom": [],
            "dependsOn": [{"containerName": "envoy", "condition": "HEALTHY"}],
            "healthCheck": {"command": ["CMD", "true"], "interval": 10, "retries": 3},
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": "/x", "awslogs-region": "us-east-1"},
                "secretOptions": [
                    {"name": "k", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/k"}
                ],
            },
            "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
            "linuxParameters": {"initProcessEnabled": True},
            "stopTimeout": 30,
            "readonlyRootFilesystem": True,
            "dockerLabels": {"team": "x"},
        },
        {
            "name": "envoy",
            "image": GOOD,
            "essential": True,
            "environment": [],
            "mountPoints": [],
            "volumesFrom": [],
            "portMappings": [],
            "cpu": 0,
            "user": "1337",
        },
    ],
}


def test_register_task_definition_returns_every_field(sandbox: Harness) -> None:
    request = copy.deepcopy(FULL_TASK_DEFINITION)
    response = sandbox.ecs.register_task_definition(
        **request, tags=[{"key": "ecsop:release", "value": "api"}]
    )
    described = sandbox.ecs.describe_task_definition(
        taskDefinition=response["taskDefinition"]["taskDefinitionArn"], include=["TAGS"]
    )
    definition = described["taskDefinition"]
    for field, value in FULL_TASK_DEFINITION.items():
        assert definition[field] == value, field
    assert definition["taskDefinitionArn"].endswith(":task-definition/everything:1")
    assert definition["revision"] == 1
    assert definition["status"] == "ACTIVE"
    assert described["tags"] == [{"key": "ecsop:release", "value": "api"}]
    assert response["tags"] == described["tags"]


def test_container_defaults_are_filled_like_ecs(sandbox: Harness) -> None:
    sandbox.ecs.register_task_definition(
        family="min", memory="512", containerDefinitions=[{"name": "a", "image": GOOD}]
    )
    container = sandbox.ecs.describe_task_definition(taskDefinition="min")["taskDefinition"][
        "containerDefinitions"
    ][0]
    assert container["essential"] is True
    assert container["environment"] == container["mountPoints"] == []


def test_memory_is_required(sandbox: Harness) -> None:
    with pytest.raises(ClientError) as caught:
        sandbox.ecs.register_task_definition(
            family="x", containerDefinitions=[{"name": "a", "image": GOOD}]
        )
    assert caught.value.response["Error"]["Code"] == "ClientException"


def test_task_definition_resolution(sandbox: Harness) -> None:
    arn = sandbox.register(GOOD)
    for reference in ("api", "api:2", arn):
        found = sandbox.ecs.describe_task_definition(taskDefinition=reference)
        assert found["taskDefinition"]["taskDefinitionArn"] == arn
    sandbox.ecs.deregister_task_definition(taskDefinition=arn)
    latest = sandbox.ecs.describe_task_definition(taskDefinition="api")["taskDefinition"]
    assert latest["revision"] == 1
    listed = sandbox.ecs.list_task_definitions(familyPrefix="api", status="INACTIVE")
    assert listed["taskDefinitionArns"] == [arn]


@pytest.mark.parametrize(
    "kind", [pytest.param("service", id="service"), pytest.param("task-definition", id="taskdef")]
)
def test_tags_round_trip(sandbox: Harness, kind: str) -> None:
    service = sandbox.service()
    arn = service["serviceArn"] if kind == "service" else service["taskDefinition"]
    long_value = "arn:aws:ecs:us-east-1:123456789012:task-definition/" + "x" * 190
    sandbox.ecs.tag_resource(
        resourceArn=arn,
        tags=[{"key": "ecsop:last-good", "value": long_value}, {"key": "b", "value": "2"}],
    )
    sandbox.ecs.untag_resource(resourceArn=arn, tagKeys=["b"])
    tags = sandbox.ecs.list_tags_for_resource(resourceArn=arn)["tags"]
    assert tags == [{"key": "ecsop:last-good", "value": long_value}]
    if kind == "service":
        described = sandbox.ecs.describe_services(
            cluster="prod", services=["api"], include=["TAGS"]
        )["services"][0]
        assert described["tags"] == tags
        assert "tags" not in sandbox.service()
    else:
        described = sandbox.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        assert described["tags"] == tags


def test_tag_limits(sandbox: Harness) -> None:
    arn = sandbox.service()["serviceArn"]
    with pytest.raises(ClientError) as caught:
        sandbox.ecs.tag_resource(resourceArn=arn, tags=[{"key": "k", "value": "v" * 257}])
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"


def test_describe_services_limits_and_failures(sandbox: Harness) -> None:
    found = sandbox.ecs.describe_services(cluster="prod", services=["api", "nope"])
    assert [s["serviceName"] for s in found["services"]] == ["api"]
    assert found["failures"] == [
        {"arn": "arn:aws:ecs:us-east-1:123456789012:service/prod/nope", "reason": "MISSING"}
    ]
    with pytest.raises(ClientError) as caught:
        sandbox.ecs.describe_services(cluster="prod", services=[f"s{i}" for i in range(11)])
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as caught:
        sandbox.ecs.describe_services(cluster="nope", services=["api"])
    assert caught.value.response["Error"]["Code"] == "ClusterNotFoundException"


def test_create_and_delete_service_through_the_api(sandbox: Harness) -> None:
    arn = sandbox.register(GOOD, family="other")
    created = sandbox.ecs.create_service(
        cluster="prod",
        serviceName="other",
        taskDefinition="other",
        desiredCount=1,
        launchType="FARGATE",
        tags=[{"key": "team", "value": "x"}],
    )["service"]
    assert created["taskDefinition"] == arn
    assert created["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    sandbox.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED", name="other")
    with pytest.raises(ClientError):
        sandbox.ecs.delete_service(cluster="prod", service="other")
    sandbox.ecs.delete_service(cluster="prod", service="other", force=True)
    sandbox.run_until(lambda s: s["status"] == "INACTIVE", name="other")
    assert all(
        not a.endswith("/other") for a in sandbox.ecs.list_services(cluster="prod")["serviceArns"]
    )


def test_list_tasks_filters(sandbox: Harness) -> None:
    deployment = sandbox.service()["deployments"][0]["id"]
    by_service = sandbox.ecs.list_tasks(cluster="prod", serviceName="api")["taskArns"]
    by_deployment = sandbox.ecs.list_tasks(cluster="prod", startedBy=deployment)["taskArns"]
    assert len(by_service) == 2
    assert sorted(by_service) == sorted(by_deployment)
    assert sandbox.ecs.list_tasks(cluster="prod", desiredStatus="STOPPED")["taskArns"] == []


def test_unsupported_operation_is_named(sandbox: Harness) -> None:
    with pytest.raises(ClientError) as caught:
        sandbox.ecs.list_container_instances(cluster="prod")
    assert caught.value.response["Error"]["Code"] == "UnsupportedFeatureException"
    assert "ListContainerInstances" in caught.value.response["Error"]["Message"]
