"""The scenario's ECR images in moto's ECR, and taking them away at run time.

ECR answers by digest as API_DescribeImages / API_BatchGetImage and
API_ImageFailure document: the image, or ``ImageNotFoundException`` /
a ``failures`` entry ``ImageNotFound`` naming the requested ``imageId``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from sandbox_harness import IMAGES, Harness, scenario, service_spec

pytestmark = pytest.mark.sandbox

REPOSITORY = "111122223333.dkr.ecr.us-east-1.amazonaws.com/taskboard-api"
V1 = f"{REPOSITORY}@sha256:" + "3" * 64
V2 = f"{REPOSITORY}:v2@sha256:" + "4" * 64
MIGRATOR = "111122223333.dkr.ecr.us-east-1.amazonaws.com/tools/migrate@sha256:" + "5" * 64
NEVER_PUSHED = f"{REPOSITORY}@sha256:" + "6" * 64


@pytest.fixture
def sb(start_sandbox: Callable[..., Harness]) -> Harness:
    images = {**IMAGES, V1: {"behavior": "healthy"}, V2: {"behavior": "healthy"}}
    return start_sandbox(
        scenario(
            {"api": service_spec(image=V1)},
            images=images,
            commands=[{"image": MIGRATOR, "command": ["migrate"]}],
        )
    )


def ecr(sb: Harness) -> Any:
    return boto3.client(
        "ecr",
        endpoint_url=sb.server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def digest(reference: str) -> str:
    return reference.rsplit("@", 1)[1]


def repository(reference: str) -> str:
    return reference.split("/", 1)[1].split("@")[0].split(":")[0]


def control(sb: Harness, method: str, body: dict[str, Any] | None = None) -> requests.Response:
    return requests.request(method, f"{sb.server.endpoint_url}/_sandbox/ecr", json=body, timeout=5)


@pytest.mark.parametrize(
    ("reference", "tags"),
    [
        pytest.param(V1, [], id="digest-only"),
        pytest.param(V2, ["v2"], id="tag-and-digest"),
        pytest.param(MIGRATOR, [], id="command-image"),
    ],
)
def test_every_ecr_image_of_the_scenario_is_in_ecr_with_its_digest(
    sb: Harness, reference: str, tags: list[str]
) -> None:
    client = ecr(sb)
    found = client.describe_images(
        registryId="111122223333",
        repositoryName=repository(reference),
        imageIds=[{"imageDigest": digest(reference)}],
    )["imageDetails"]
    assert [(d["imageDigest"], d.get("imageTags", []), d["registryId"]) for d in found] == [
        (digest(reference), tags, "111122223333")
    ]
    got = client.batch_get_image(
        registryId="111122223333",
        repositoryName=repository(reference),
        imageIds=[{"imageDigest": digest(reference)}],
    )
    assert [i["imageId"]["imageDigest"] for i in got["images"]] == [digest(reference)]
    assert got["failures"] == []


def test_a_digest_ecr_never_held_is_not_found(sb: Harness) -> None:
    client = ecr(sb)
    wanted = {"imageDigest": digest(NEVER_PUSHED)}
    with pytest.raises(ClientError) as caught:
        client.describe_images(
            registryId="111122223333", repositoryName="taskboard-api", imageIds=[wanted]
        )
    assert caught.value.response["Error"]["Code"] == "ImageNotFoundException"
    got = client.batch_get_image(
        registryId="111122223333", repositoryName="taskboard-api", imageIds=[wanted]
    )
    assert got["images"] == []
    assert got["failures"] == [
        {
            "imageId": wanted,
            "failureCode": "ImageNotFound",
            "failureReason": "Requested image not found",
        }
    ]


def test_non_ecr_images_stay_out_of_ecr(sb: Harness) -> None:
    names = [r["repositoryName"] for r in ecr(sb).describe_repositories()["repositories"]]
    assert sorted(names) == ["taskboard-api", "tools/migrate"]


def test_removing_a_digest_makes_ecr_and_ecs_lose_it_until_it_is_added_back(sb: Harness) -> None:
    assert control(sb, "POST", {"remove": [V2]}).json()["images"] == [V1, MIGRATOR]
    client = ecr(sb)
    with pytest.raises(ClientError):
        client.describe_images(
            registryId="111122223333",
            repositoryName="taskboard-api",
            imageIds=[{"imageDigest": digest(V2)}],
        )
    # ECS cannot pull it either: the deployment's tasks fail to start.
    sb.deploy(V2)
    sb.advance(6)
    (stopped, *_) = sb.tasks(desired="STOPPED")
    assert stopped["stopCode"] == "TaskFailedToStart"
    assert stopped["stoppedReason"].startswith("CannotPullContainerError:")

    assert control(sb, "POST", {"add": [V2]}).status_code == 200
    assert (
        client.batch_get_image(
            registryId="111122223333",
            repositoryName="taskboard-api",
            imageIds=[{"imageDigest": digest(V2)}],
        )["failures"]
        == []
    )
    sb.deploy(V2)
    sb.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED", limit=600)


def test_images_added_at_run_time_are_pushed_to_ecr(sb: Harness) -> None:
    requests.post(
        f"{sb.server.endpoint_url}/_sandbox/images",
        json={"images": {NEVER_PUSHED: {"behavior": "healthy"}}},
        timeout=5,
    ).raise_for_status()
    assert NEVER_PUSHED in control(sb, "GET").json()["images"]
    assert (
        ecr(sb).batch_get_image(
            registryId="111122223333",
            repositoryName="taskboard-api",
            imageIds=[{"imageDigest": digest(NEVER_PUSHED)}],
        )["failures"]
        == []
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"remove": ["registry.example/api@sha256:" + "a" * 64]}, 400, id="not-ecr"),
        pytest.param({"remove": [NEVER_PUSHED]}, 404, id="not-held"),
        pytest.param({"delete": [V1]}, 400, id="unknown-verb"),
    ],
)
def test_the_ecr_route_refuses_what_it_cannot_do(
    sb: Harness, body: dict[str, Any], status: int
) -> None:
    assert control(sb, "POST", body).status_code == status


def test_a_one_off_task_of_a_removed_image_fails_to_pull(sb: Harness) -> None:
    control(sb, "POST", {"remove": [MIGRATOR]}).raise_for_status()
    body = {
        "family": "migrate",
        "networkMode": "bridge",
        "memory": "512",
        "containerDefinitions": [{"name": "migrate", "image": MIGRATOR, "command": ["migrate"]}],
    }
    arn = sb.ecs.register_task_definition(**body)["taskDefinition"]["taskDefinitionArn"]
    task = sb.ecs.run_task(cluster="prod", taskDefinition=arn)["tasks"][0]
    sb.advance(5)
    (done,) = sb.ecs.describe_tasks(cluster="prod", tasks=[task["taskArn"]])["tasks"]
    assert done["stopCode"] == "TaskFailedToStart"
    assert done["stoppedReason"].startswith("CannotPullContainerError:")
