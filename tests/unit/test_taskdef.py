"""Task definition cloning: every accepted field survives, only the named images change."""

from __future__ import annotations

import copy
from typing import Any

import botocore.session
import botocore.validate
import pytest

from ecsop.aws import taskdef

ACCOUNT = "111122223333"
OLD_API = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/api@sha256:{'a' * 64}"
NEW_API = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/api@sha256:{'b' * 64}"
SIDECAR = "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db-password-AbCdEf"
PLAIN_SECRET = "hunter2-plaintext-in-env"

READ_ONLY = {
    "taskDefinitionArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/payments:7",
    "revision": 7,
    "status": "ACTIVE",
    "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.ecr-auth"}],
    "compatibilities": ["EC2", "FARGATE"],
    "registeredAt": "2024-05-01T12:00:00+00:00",
    "registeredBy": f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci",
    "deregisteredAt": "2024-06-01T12:00:00+00:00",
    "deleteRequestedAt": "2024-07-01T12:00:00+00:00",
}

ACCEPTED: dict[str, Any] = {
    "family": "payments",
    "taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/payments-task",
    "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/payments-exec",
    "networkMode": "awsvpc",
    "containerDefinitions": [
        {
            "name": "api",
            "image": OLD_API,
            "cpu": 256,
            "memory": 512,
            "essential": True,
            "portMappings": [{"containerPort": 8080, "protocol": "tcp", "name": "http"}],
            "environment": [{"name": "MODE", "value": PLAIN_SECRET}],
            "secrets": [{"name": "DB_PASSWORD", "valueFrom": SECRET_ARN}],
            "mountPoints": [{"sourceVolume": "cache", "containerPath": "/cache"}],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": "/ecs/payments", "awslogs-region": "us-east-1"},
                "secretOptions": [{"name": "token", "valueFrom": SECRET_ARN}],
            },
            "healthCheck": {
                "command": ["CMD-SHELL", "curl -f localhost:8080/health"],
                "interval": 10,
                "retries": 3,
            },
            "dependsOn": [{"containerName": "otel", "condition": "START"}],
            "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
            "dockerLabels": {"team": "payments"},
        },
        {
            "name": "otel",
            "image": SIDECAR,
            "essential": False,
            "firelensConfiguration": {
                "type": "fluentbit",
                "options": {"enable-ecs-log-metadata": "true"},
            },
        },
    ],
    "volumes": [
        {"name": "cache", "host": {}},
        {
            "name": "shared",
            "efsVolumeConfiguration": {
                "fileSystemId": "fs-12345678",
                "transitEncryption": "ENABLED",
                "authorizationConfig": {"accessPointId": "fsap-1234", "iam": "ENABLED"},
            },
        },
    ],
    "placementConstraints": [{"type": "memberOf", "expression": "attribute:ecs.os-type == linux"}],
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "512",
    "memory": "1024",
    "pidMode": "task",
    "ipcMode": "none",
    "proxyConfiguration": {
        "type": "APPMESH",
        "containerName": "envoy",
        "properties": [{"name": "AppPorts", "value": "8080"}],
    },
    "inferenceAccelerators": [{"deviceName": "device1", "deviceType": "eia2.medium"}],
    "ephemeralStorage": {"sizeInGiB": 40},
    "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
    "enableFaultInjection": False,
    "trustedExecutionConfiguration": {"isolationMode": "SHARED"},
}

TAGS = [{"key": "team", "value": "payments"}, {"key": "cost-center", "value": "42"}]


def described() -> dict[str, Any]:
    """A DescribeTaskDefinition ``taskDefinition`` member using every accepted field."""
    return {**copy.deepcopy(ACCEPTED), **copy.deepcopy(READ_ONLY)}


def clone(
    images: dict[str, str] | None = None,
    extra_tags: dict[str, str] | None = None,
    source: dict[str, Any] | None = None,
    tags: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return taskdef.register_request_from(
        source if source is not None else described(),
        TAGS if tags is None else tags,
        images if images is not None else {"api": NEW_API},
        extra_tags or {},
    )


def test_a_clone_carries_only_the_ecsop_tags_set_for_it() -> None:
    base_tags = [
        *TAGS,
        {"key": "ecsop:release", "value": "payments"},
        {"key": "ecsop:fingerprint", "value": "0123456789abcdef"},
        {"key": "ecsop:commit", "value": "a" * 40},
    ]
    request = clone(extra_tags={"ecsop:fingerprint": "fedcba9876543210"}, tags=base_tags)
    # Outside a git work tree there is no commit to claim: the base's is not kept.
    assert taskdef.tags_of(request["tags"]) == {
        "team": "payments",
        "cost-center": "42",
        "ecsop:fingerprint": "fedcba9876543210",
    }


def test_the_example_exercises_every_accepted_field() -> None:
    # If botocore grows a field, this test asks for it to be added to the example.
    assert set(ACCEPTED) | {"tags"} == taskdef.accepted_fields()


def test_clone_is_a_valid_register_request() -> None:
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    botocore.validate.validate_parameters(clone(extra_tags={"ecsop:release": "p"}), shape)


@pytest.mark.parametrize("field", sorted(set(ACCEPTED) - {"containerDefinitions"}))
def test_every_accepted_field_round_trips(field: str) -> None:
    assert clone()[field] == ACCEPTED[field]


@pytest.mark.parametrize("field", sorted(READ_ONLY))
def test_read_only_fields_are_dropped(field: str) -> None:
    assert field not in clone()


@pytest.mark.parametrize(
    ("images", "expected"),
    [
        pytest.param({"api": NEW_API}, {"api": NEW_API, "otel": SIDECAR}, id="one-of-two"),
        pytest.param({}, {"api": OLD_API, "otel": SIDECAR}, id="none"),
        pytest.param(
            {"api": NEW_API, "otel": SIDECAR + "-x"},
            {"api": NEW_API, "otel": SIDECAR + "-x"},
            id="both",
        ),
    ],
)
def test_only_the_named_images_change(images: dict[str, str], expected: dict[str, str]) -> None:
    request = clone(images=images)
    assert taskdef.images_of(request) == expected
    for before, after in zip(
        ACCEPTED["containerDefinitions"], request["containerDefinitions"], strict=True
    ):
        assert {k: v for k, v in after.items() if k != "image"} == {
            k: v for k, v in before.items() if k != "image"
        }


def test_the_described_input_is_not_mutated() -> None:
    source = described()
    clone(source=source, extra_tags={"ecsop:release": "p"})
    assert source == described()


@pytest.mark.parametrize(
    ("path", "junk"),
    [
        pytest.param(("containerDefinitions", 0), {"simulatorOnly": 1}, id="container"),
        pytest.param(("volumes", 1, "efsVolumeConfiguration"), {"legacy": "x"}, id="volume"),
        pytest.param(("runtimePlatform",), {"extra": "x"}, id="top-level-structure"),
        pytest.param((), {"someReadOnlyFieldOfTheFuture": "x"}, id="top-level"),
    ],
)
def test_members_the_input_shape_lacks_are_dropped_at_any_depth(
    path: tuple[Any, ...], junk: dict[str, Any]
) -> None:
    source = described()
    dig(source, path).update(junk)
    kept = dig(clone(source=source), path)
    assert kept and not set(junk) & set(kept)


def dig(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def test_none_members_are_dropped() -> None:
    source = described()
    source["pidMode"] = None
    source["containerDefinitions"][1]["memory"] = None
    request = clone(source=source)
    assert "pidMode" not in request
    assert "memory" not in request["containerDefinitions"][1]


def test_unknown_container_names_the_missing_and_the_present() -> None:
    with pytest.raises(ValueError, match="no container named 'web', 'worker'") as caught:
        clone(images={"web": NEW_API, "worker": NEW_API, "api": NEW_API})
    message = str(caught.value)
    assert "'api', 'otel'" in message
    assert PLAIN_SECRET not in message and SECRET_ARN not in message


@pytest.mark.parametrize(
    ("existing", "extra", "expected"),
    [
        pytest.param(TAGS, {}, {"team": "payments", "cost-center": "42"}, id="kept"),
        pytest.param(
            TAGS,
            {"team": "platform", "ecsop:fingerprint": "f1"},
            {"team": "platform", "cost-center": "42", "ecsop:fingerprint": "f1"},
            id="ecsop-overwrites",
        ),
        pytest.param(
            [*TAGS, {"key": "aws:cloudformation:stack-name", "value": "s"}],
            {},
            {"team": "payments", "cost-center": "42"},
            id="aws-reserved-dropped",
        ),
        pytest.param([], {}, None, id="no-tags-no-member"),
    ],
)
def test_tags_merge(
    existing: list[dict[str, str]], extra: dict[str, str], expected: dict[str, str] | None
) -> None:
    request = clone(tags=existing, extra_tags=extra)
    if expected is None:
        assert "tags" not in request
    else:
        assert taskdef.tags_of(request["tags"]) == expected


def test_tag_cap_counts_user_tags_only() -> None:
    existing = [{"key": f"k{i}", "value": "v"} for i in range(48)]
    existing.append({"key": "aws:cloudformation:stack-id", "value": "x"})
    request = clone(tags=existing, extra_tags={"ecsop:release": "p", "ecsop:fingerprint": "f"})
    assert len(request["tags"]) == taskdef.MAX_TAGS


def test_tag_cap_exceeded_is_a_clear_error() -> None:
    existing = [{"key": f"k{i}", "value": "v"} for i in range(48)]
    extra = {"ecsop:release": "p", "ecsop:fingerprint": "f", "ecsop:commit": "c"}
    with pytest.raises(ValueError, match="51 tags, over AWS's limit of 50"):
        clone(tags=existing, extra_tags=extra)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        pytest.param({"k": "v" * 257}, "value of tag 'k' is over 256", id="long-value"),
        pytest.param({"k" * 129: "v"}, "must be 1-128 characters", id="long-key"),
        pytest.param({"aws:x": "v"}, "reserved by AWS", id="reserved"),
    ],
)
def test_invalid_ecsop_tags_are_refused(extra: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        clone(extra_tags=extra)


def test_images_of_lists_every_container() -> None:
    assert taskdef.images_of(described()) == {"api": OLD_API, "otel": SIDECAR}
    assert taskdef.images_of({"family": "empty"}) == {}
