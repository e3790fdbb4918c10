"""The release flow's AWS edge against moto: ECR and IAM pre-flight lookups, proofs on revisions.

Contract tests over HTTP (moto's server), counting calls as the daemon's
metrics do: one BatchGetImage per repository, cached while found; proofs read
from a revision's tags and kept once found.
"""

from __future__ import annotations

import collections
import hashlib
import json

import boto3
import pytest

from ecsop.aws import clients as aws
from ecsop.aws import ecs
from ecsop.aws.preflight import Preflight
from ecsop.aws.proofs import ProofReader
from ecsop.decision.ecs_state import ServiceMissing, TaskDefinitionArn
from ecsop.decision.memory import ServiceMemory, proof_tags
from ecsop.decision.release_flow.inputs import Found

REGION = "us-east-1"
ACCOUNT = "123456789012"
"""moto's default account."""

REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"


def digest(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def push(ecr: object, repository: str, label: str) -> str:
    """An image in moto's ECR; its reference pinned by digest."""
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": digest(label)},
            "layers": [],
        }
    )
    getattr(ecr, "put_image")(  # noqa: B009
        repositoryName=repository, imageManifest=manifest, imageDigest=digest(label)
    )
    return f"{REGISTRY}/{repository}@{digest(label)}"


@pytest.fixture
def ecr(aws_env: str) -> object:
    client = boto3.client("ecr", region_name=REGION)
    client.create_repository(repositoryName="shop")
    client.create_repository(repositoryName="team/worker")
    return client


def test_images_one_batch_per_repository_found_cached_missing_not(
    ecr: object, factory: aws.ClientFactory, calls: collections.Counter[str]
) -> None:
    v1, v2 = push(ecr, "shop", "v1"), push(ecr, "shop", "v2")
    worker = push(ecr, "team/worker", "w1")
    gone = f"{REGISTRY}/shop@{digest('never-pushed')}"
    no_repo = f"{REGISTRY}/nosuch@{digest('x')}"
    public = "public.ecr.aws/nginx/nginx:1.27@" + digest("nginx")
    preflight = Preflight(factory.client)
    found = preflight.images([v1, v2, worker, gone, no_repo, public], None)
    assert {ref: lookup.found for ref, lookup in found.items()} == {
        v1: Found.FOUND,
        v2: Found.FOUND,
        worker: Found.FOUND,
        gone: Found.MISSING,
        no_repo: Found.MISSING,
    }
    assert "ImageNotFound" in found[gone].detail
    assert "RepositoryNotFoundException" in found[no_repo].detail
    assert calls["BatchGetImage"] == 3, "one call per repository"
    again = preflight.images([v1, v2, worker, gone], None)
    assert again[gone].found is Found.MISSING
    assert calls["BatchGetImage"] == 4, "found images are cached; a missing one is asked again"


def test_a_deleted_image_is_seen_once_the_cache_expires(
    ecr: object, factory: aws.ClientFactory
) -> None:
    v1 = push(ecr, "shop", "v1")
    clock = [0.0]
    preflight = Preflight(factory.client, monotonic=lambda: clock[0])
    assert preflight.images([v1], None)[v1].found is Found.FOUND
    ecr.batch_delete_image(repositoryName="shop", imageIds=[{"imageDigest": digest("v1")}])
    assert preflight.images([v1], None)[v1].found is Found.FOUND
    clock[0] += 601
    assert preflight.images([v1], None)[v1].found is Found.MISSING


def test_execution_role(aws_env: str, factory: aws.ClientFactory) -> None:
    iam = boto3.client("iam", region_name=REGION)
    iam.create_role(RoleName="app-execution", AssumeRolePolicyDocument="{}", Path="/app/")
    preflight = Preflight(factory.client)
    here = f"arn:aws:iam::{ACCOUNT}:role/app/app-execution"
    assert preflight.role(here, ACCOUNT, REGION, None).found is Found.FOUND
    missing = preflight.role(f"arn:aws:iam::{ACCOUNT}:role/nosuch", ACCOUNT, REGION, None)
    assert missing.found is Found.MISSING and "NoSuchEntity" in missing.detail
    elsewhere = preflight.role("arn:aws:iam::999999999999:role/x", ACCOUNT, REGION, None)
    assert elsewhere.found is Found.SKIPPED


def test_proofs_are_read_from_revision_tags_and_survive_moving_on(
    aws_env: str, factory: aws.ClientFactory, calls: collections.Counter[str]
) -> None:
    setup = boto3.client("ecs", region_name=REGION)
    gateway = ecs.EcsGateway(factory.client("ecs", REGION))

    def register(label: str) -> TaskDefinitionArn:
        td = setup.register_task_definition(
            family="api-staging",
            containerDefinitions=[
                {"name": "api", "image": f"{REGISTRY}/shop@{digest(label)}", "memory": 64}
            ],
        )["taskDefinition"]
        return TaskDefinitionArn(td["taskDefinitionArn"])

    setup.create_cluster(clusterName="staging")
    v1 = register("v1")
    gateway.task_definition(v1)  # cached before it is proven, as a rollout would
    gateway.tag_task_definition(v1, proof_tags("api-staging", v1))
    register("v2")  # not proven: it failed, or it is still baking
    v3 = register("v3")
    gateway.tag_task_definition(v3, proof_tags("api-staging", v3))
    service = setup.create_service(
        cluster="staging", serviceName="api", taskDefinition=v3, desiredCount=0
    )["service"]
    memory = ServiceMemory(release="api-staging").proven(
        service["serviceArn"], "api-staging", v3, fingerprint=None
    )
    setup.tag_resource(
        resourceArn=service["serviceArn"],
        tags=[{"key": k, "value": v} for k, v in memory.tags().items()],
    )
    state = gateway.describe_services("staging", ["api"])["api"]
    assert not isinstance(state, ServiceMissing)
    reader = ProofReader()
    wanted = {digest("v1"), digest("v2"), digest("v3")}
    assert reader.proven(gateway, state, "api-staging", wanted) == {digest("v1"), digest("v3")}
    assert reader.proven(gateway, state, "api-prod", wanted) == frozenset(), (
        "proofs are per release"
    )
    listed = calls["ListTagsForResource"]
    assert listed >= 1, "v1's proof postdates its cached description"
    reader.proven(gateway, state, "api-staging", {digest("v1")})
    assert calls["ListTagsForResource"] == listed + 0, "a proof found is kept"
