"""EcsGateway against moto over HTTP: batching, caching, cloning, tags, errors."""

from __future__ import annotations

import collections
from datetime import UTC
from typing import Any

import pytest

from ecsop.aws import clients as aws
from ecsop.aws import ecs
from ecsop.decision.ecs_state import (
    DeploymentStatus,
    ServiceMissing,
    ServiceState,
    TaskDefinition,
    TaskDefinitionArn,
)
from ecsop.decision.memory import TAG_COMMIT, TAG_CONTENT, TAG_FINGERPRINT, TAG_RELEASE

REGION = "us-east-1"
ACCOUNT = "123456789012"

SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db-AbCdEf"
TD_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition"


def register(setup: Any, family: str = "payments", image: str = "api:1", **extra: Any) -> str:
    response = setup.register_task_definition(
        family=family,
        containerDefinitions=[
            {
                "name": "api",
                "image": image,
                "memory": 256,
                "secrets": [{"name": "DB_PASSWORD", "valueFrom": SECRET_ARN}],
                "mountPoints": [{"sourceVolume": "cache", "containerPath": "/cache"}],
                "environment": [{"name": "MODE", "value": "prod"}],
            },
            {"name": "otel", "image": "otel:1", "memory": 64, "essential": False},
        ],
        volumes=[{"name": "cache", "host": {"sourcePath": "/var/cache"}}],
        **extra,
    )
    return str(response["taskDefinition"]["taskDefinitionArn"])


def create_services(setup: Any, count: int, cluster: str = "prod") -> list[str]:
    setup.create_cluster(clusterName=cluster)
    arn = register(setup)
    names = [f"svc-{i:02d}" for i in range(count)]
    for name in names:
        setup.create_service(
            cluster=cluster,
            serviceName=name,
            taskDefinition=arn,
            desiredCount=2,
            deploymentConfiguration={
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            },
            tags=[{"key": "ecsop:release", "value": name}],
        )
    return names


def test_describe_services_batches_ten_per_call(
    gateway: ecs.EcsGateway, setup: Any, calls: collections.Counter[str]
) -> None:
    names = create_services(setup, 25)
    found = gateway.describe_services("prod", names)
    assert calls["DescribeServices"] == 3
    assert list(found) == names
    assert all(isinstance(state, ServiceState) for state in found.values())


def test_describe_services_maps_the_service(gateway: ecs.EcsGateway, setup: Any) -> None:
    create_services(setup, 1)
    state = gateway.describe_services("prod", ["svc-00"])["svc-00"]
    assert isinstance(state, ServiceState)
    assert state.arn == f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/prod/svc-00"
    assert (state.cluster, state.name, state.status) == ("prod", "svc-00", "ACTIVE")
    assert state.task_definition == f"{TD_ARN}/payments:1"
    assert state.desired_count == 2
    assert state.tags == {"ecsop:release": "svc-00"}
    # moto drops deploymentConfiguration; the breaker and alarms are covered with
    # botocore's Stubber in test_ecs_mapping.py.
    assert not state.has_load_balancers
    primary = state.primary
    assert primary is not None and primary.status is DeploymentStatus.PRIMARY
    assert primary.id.startswith("ecs-svc/")
    assert primary.task_definition == f"{TD_ARN}/payments:1"
    assert primary.created_at.tzinfo is UTC and primary.updated_at.tzinfo is UTC


def test_short_task_definition_names_become_arns(gateway: ecs.EcsGateway, setup: Any) -> None:
    # moto answers UpdateService's "family:revision" back verbatim; ECS gives ARNs.
    create_services(setup, 1)
    register(setup, image="api:2")
    setup.update_service(cluster="prod", service="svc-00", taskDefinition="payments:2")
    state = gateway.describe_services("prod", ["svc-00"])["svc-00"]
    assert isinstance(state, ServiceState)
    assert state.task_definition == f"{TD_ARN}/payments:2"


def test_missing_and_deleted_services_are_reported(gateway: ecs.EcsGateway, setup: Any) -> None:
    create_services(setup, 2)
    setup.delete_service(cluster="prod", service="svc-01", force=True)
    found = gateway.describe_services("prod", ["svc-00", "svc-01", "ghost"])
    assert isinstance(found["svc-00"], ServiceState)
    assert found["svc-01"] == ServiceMissing("prod", "svc-01", "status INACTIVE")
    assert found["ghost"] == ServiceMissing("prod", "ghost", "MISSING")


def test_no_names_no_calls(gateway: ecs.EcsGateway, calls: collections.Counter[str]) -> None:
    assert gateway.describe_services("prod", []) == {}
    assert not calls


@pytest.mark.parametrize(
    ("act", "code", "operation"),
    [
        pytest.param(
            lambda gw: gw.describe_services("nowhere", ["svc"]),
            "ClusterNotFoundException",
            "DescribeServices",
            id="cluster",
        ),
        pytest.param(
            lambda gw: gw.update_service("prod", "ghost", TaskDefinitionArn("payments:1")),
            "ServiceNotFoundException",
            "UpdateService",
            id="service",
        ),
        pytest.param(
            lambda gw: gw.task_definition("nothing:9"),
            "ClientException",
            "DescribeTaskDefinition",
            id="task-definition",
        ),
    ],
)
def test_aws_errors_carry_code_message_and_operation(
    gateway: ecs.EcsGateway, setup: Any, act: Any, code: str, operation: str
) -> None:
    create_services(setup, 1)
    with pytest.raises(aws.AwsError) as caught:
        act(gateway)
    assert (caught.value.code, caught.value.operation) == (code, operation)
    assert caught.value.message
    assert not caught.value.retryable
    assert code in str(caught.value)


def test_task_definitions_are_described_once(
    gateway: ecs.EcsGateway, setup: Any, calls: collections.Counter[str]
) -> None:
    arn = register(setup, tags=[{"key": "team", "value": "payments"}])
    first = gateway.task_definition(arn)
    again = gateway.task_definition(arn)
    assert calls["DescribeTaskDefinition"] == 1
    assert first is again
    assert (first.arn, first.family, first.revision) == (arn, "payments", 1)
    assert first.images == {"api": "api:1", "otel": "otel:1"}
    assert first.tags == {"team": "payments"}


def test_family_without_revision_is_not_cached_as_such(
    gateway: ecs.EcsGateway, setup: Any, calls: collections.Counter[str]
) -> None:
    register(setup)
    assert gateway.task_definition("payments").revision == 1
    register(setup, image="api:2")
    assert gateway.task_definition("payments").revision == 2
    gateway.task_definition(f"{TD_ARN}/payments:1")  # cached by its ARN on the first call
    assert calls["DescribeTaskDefinition"] == 2


def clone(
    gateway: ecs.EcsGateway, base: str, image: str, release: str = "pay", commit: str = ""
) -> TaskDefinition:
    prepared = gateway.prepare_clone(
        TaskDefinitionArn(base), {"api": image}, release, f"fp-{image}", commit
    )
    return gateway.register(prepared)


def test_register_clone_changes_only_the_images(
    gateway: ecs.EcsGateway, setup: Any, calls: collections.Counter[str]
) -> None:
    base = register(
        setup,
        tags=[{"key": "team", "value": "payments"}],
        runtimePlatform={"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
    )
    made = clone(gateway, base, "api:2", commit="abc")
    assert (made.family, made.revision) == ("payments", 2)
    assert made.images == {"api": "api:2", "otel": "otel:1"}
    assert {k: v for k, v in made.tags.items() if k != TAG_CONTENT} == {
        "team": "payments",
        TAG_RELEASE: "pay",
        TAG_FINGERPRINT: "fp-api:2",
        TAG_COMMIT: "abc",
    }
    assert made.content == made.tags[TAG_CONTENT]

    # The clone is cached: looking at it costs nothing.
    assert gateway.task_definition(made.arn) == made
    assert calls["DescribeTaskDefinition"] == 1

    described = setup.describe_task_definition(taskDefinition=made.arn, include=["TAGS"])
    before = setup.describe_task_definition(taskDefinition=base)["taskDefinition"]
    after = described["taskDefinition"]
    assert (
        after["containerDefinitions"][0]["secrets"] == before["containerDefinitions"][0]["secrets"]
    )
    assert after["volumes"] == before["volumes"]
    assert after["runtimePlatform"] == before["runtimePlatform"]
    for old, new in zip(before["containerDefinitions"], after["containerDefinitions"], strict=True):
        old.pop("image"), new.pop("image")
        assert old == new
    assert {t["key"]: t["value"] for t in described["tags"]} == made.tags


def test_register_clone_refuses_an_unknown_container(gateway: ecs.EcsGateway, setup: Any) -> None:
    base = register(setup)
    with pytest.raises(ValueError, match=r"no container named 'web'.*'api', 'otel'"):
        gateway.prepare_clone(TaskDefinitionArn(base), {"web": "web:2"}, "pay", "f", None)


def test_find_revision_finds_what_the_clone_would_duplicate(
    gateway: ecs.EcsGateway, setup: Any, calls: collections.Counter[str]
) -> None:
    base = register(setup)
    wanted = clone(gateway, base, "api:2")
    clone(gateway, base, "api:3")
    register(setup, image="api:4")  # untagged, newest

    fresh = ecs.EcsGateway(setup)  # a restarted daemon: nothing cached
    again = fresh.prepare_clone(TaskDefinitionArn(base), {"api": "api:2"}, "pay", "fp-api:2", None)
    assert fresh.find_revision(again) == wanted.arn
    other = fresh.prepare_clone(TaskDefinitionArn(base), {"api": "api:9"}, "pay", "fp-api:9", None)
    assert fresh.find_revision(other) is None
    elsewhere = fresh.prepare_clone(TaskDefinitionArn(base), {"api": "api:2"}, "stg", "fp", None)
    assert fresh.find_revision(elsewhere) is None, "another release's revision is never reused"

    calls.clear()
    assert gateway.find_revision(again) == wanted.arn
    assert calls == {"ListTaskDefinitions": 1, "DescribeTaskDefinition": 1}  # only api:4 unseen


def test_a_revision_with_other_content_is_not_reused_for_the_same_images(
    gateway: ecs.EcsGateway, setup: Any
) -> None:
    """Issue 21, #1: production must never run staging's revision of a shared family."""
    role = f"arn:aws:iam::{ACCOUNT}:role"
    staging_base = register(setup, family="shared", taskRoleArn=f"{role}/stg")
    prod_base = register(setup, family="shared", taskRoleArn=f"{role}/prod")
    staging = clone(gateway, staging_base, "api:2", release="pay")
    prepared = gateway.prepare_clone(
        TaskDefinitionArn(prod_base), {"api": "api:2"}, "pay", "fp-api:2", None
    )
    assert not gateway.reusable(staging.arn, prepared)
    assert gateway.find_revision(prepared) is None
    assert gateway.register(prepared).arn != staging.arn


def test_find_revision_ignores_deregistered_revisions(gateway: ecs.EcsGateway, setup: Any) -> None:
    base = register(setup)
    made = clone(gateway, base, "api:2")
    setup.deregister_task_definition(taskDefinition=made.arn)
    prepared = gateway.prepare_clone(TaskDefinitionArn(base), {"api": "api:2"}, "pay", "f", None)
    assert gateway.find_revision(prepared) is None


def test_tag_and_untag_round_trip(gateway: ecs.EcsGateway, setup: Any) -> None:
    create_services(setup, 1)
    state = gateway.describe_services("prod", ["svc-00"])["svc-00"]
    assert isinstance(state, ServiceState)
    gateway.tag_service(state.arn, {"ecsop:last-good": f"{TD_ARN}/payments:1", "a": "1"})
    gateway.untag_service(state.arn, ["a", "ecsop:release"])
    again = gateway.describe_services("prod", ["svc-00"])["svc-00"]
    assert isinstance(again, ServiceState)
    assert again.tags == {"ecsop:last-good": f"{TD_ARN}/payments:1"}


def test_update_service_points_the_service_at_the_revision(
    gateway: ecs.EcsGateway, setup: Any
) -> None:
    create_services(setup, 1)
    arn = register(setup, image="api:2")
    started = gateway.update_service("prod", "svc-00", TaskDefinitionArn(arn))
    service = setup.describe_services(cluster="prod", services=["svc-00"])["services"][0]
    primary = [d for d in service["deployments"] if d["status"] == "PRIMARY"]
    assert started == primary[0]["id"]
    assert service["taskDefinition"].endswith("payments:2")
    assert service["desiredCount"] == 2
