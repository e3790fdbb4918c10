"""The release flow through the controller: proofs written before last-good, holds and wake-ups.

The executor's order (the proof before the service's last-good, a failed proof
never stopping it), and whole stories through ``controller_world.World`` with
the release-flow gatherer wired to fake ECR and IAM clients: a promotion held
until staging proves the digest, a worker held until its API is Synced, each
woken by the pass that records last-good.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog
from controller_world import CLUSTER, V1, V2, World
from test_executor import SERVICE, RecordingGateway

from builders import deployment as build_deployment
from builders import image, memory_tags, task_definition, td_arn
from builders import release as build_release
from builders import service as build_service
from ecsop.aws.clients import AwsError
from ecsop.aws.proofs import ProofReader
from ecsop.controller.executor import AwsExecutor, WriteLog
from ecsop.controller.manager import Controller, ControllerSettings
from ecsop.decision.actions import LetGo, RecordLastGood
from ecsop.decision.ecs_state import TaskDefinition, TaskDefinitionArn
from ecsop.decision.memory import TAG_APPROVAL, TAG_LAST_GOOD, ServiceMemory, proof_tags, proves
from ecsop.decision.reasons import Phase, Reason
from ecsop.spec import images as image_refs

PROVEN = td_arn("api", 2)


class ProvingGateway(RecordingGateway):
    def __init__(self, proof_error: AwsError | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.proof_error = proof_error

    def tag_task_definition(self, arn: str, tags: Mapping[str, str]) -> None:
        self.calls.append(("tag_task_definition", dict(tags)))
        if self.proof_error is not None:
            raise self.proof_error


def baked(memory: ServiceMemory) -> RecordLastGood:
    return RecordLastGood(
        Phase.SYNCED,
        Reason.BAKED,
        "baked",
        None,
        task_definition=PROVEN,
        memory=memory.proven(SERVICE.arn, "api-prod", PROVEN, fingerprint=None),
        proof=proof_tags("api-prod", PROVEN),
    )


def test_the_proof_is_written_before_last_good() -> None:
    gateway = ProvingGateway()
    AwsExecutor(WriteLog()).execute(
        baked(ServiceMemory.read(SERVICE.tags)), gateway, SERVICE, "api-prod", None
    )
    assert [name for name, _ in gateway.calls] == ["tag_task_definition", "tag_service"]
    assert proves(gateway.calls[0][1], "api-prod", PROVEN)  # type: ignore[arg-type]


def test_a_proof_that_cannot_be_written_never_stops_last_good() -> None:
    gateway = ProvingGateway(AwsError("AccessDeniedException", "no", "TagResource"))
    with structlog.testing.capture_logs() as logs:
        AwsExecutor(WriteLog()).execute(
            baked(ServiceMemory.read(SERVICE.tags)), gateway, SERVICE, "api-prod", None
        )
    assert [name for name, _ in gateway.calls] == ["tag_task_definition", "tag_service"]
    assert any("releases promoted from it will wait" in entry["event"] for entry in logs)


def test_a_throttled_proof_is_retried_with_the_pass() -> None:
    gateway = ProvingGateway(AwsError("ThrottlingException", "slow", "TagResource", retryable=True))
    with pytest.raises(AwsError):
        AwsExecutor(WriteLog()).execute(
            baked(ServiceMemory.read(SERVICE.tags)), gateway, SERVICE, "api-prod", None
        )
    assert [name for name, _ in gateway.calls] == ["tag_task_definition"], "last-good not yet"


@pytest.mark.xfail(
    strict=True,
    reason="the proof is written before last-good: when the last-good write is lost "
    "(throttled, kill -9 between the two), the retried pass may judge the bake failed and "
    "roll back, and the revision keeps a proof of a bake that never passed",
)
def test_a_proof_never_stands_for_a_bake_whose_last_good_was_not_written() -> None:
    """The proof tag is written; the service's last-good write is throttled, so the pass
    is retried. By then an alarm fires: the retried pass (still BAKING, last-good not
    recorded) rolls the revision back. Its ``ecsop:proven`` tag stays (a proof is never
    withdrawn, and the reader keeps it), so a release promoted from this one deploys the
    digests whose bake failed. Mitigated: the reader voids a proof of the fingerprint the
    upstream's failed record names (next test), until a later failure replaces that
    record. Fix: write the proof after the last-good record, and have the next steady
    pass write a proof a crash left unwritten (it needs to know that last-good came from
    a bake: a word in ``ecsop:state``)."""
    throttled = AwsError("ThrottlingException", "slow", "TagResource", retryable=True)
    gateway = ProvingGateway(tag_error=throttled)
    with pytest.raises(AwsError):
        AwsExecutor(WriteLog()).execute(
            baked(ServiceMemory.read(SERVICE.tags)), gateway, SERVICE, "api-prod", None
        )
    proofs = [tags for name, tags in gateway.calls if name == "tag_task_definition"]
    assert not any(proves(tags, "api-prod", PROVEN) for tags in proofs), (  # type: ignore[arg-type]
        "the revision is proven while its last-good record was never written"
    )


class ProofGateway:
    """Revisions of family api with their tags, as ``ProofReader`` reads them."""

    def __init__(self, *revisions: TaskDefinition) -> None:
        self.revisions = {td.arn: td for td in revisions}

    def task_definition(self, arn: str) -> TaskDefinition:
        return self.revisions[TaskDefinitionArn(arn)]

    def newest_revisions(self, family: str) -> list[TaskDefinitionArn]:
        return sorted(self.revisions, reverse=True)

    def resource_tags(self, arn: str) -> dict[str, str]:
        return dict(self.revisions[TaskDefinitionArn(arn)].tags)


def test_a_revision_whose_bake_failed_proves_nothing_even_with_a_proof_tag() -> None:
    """The race the xfail above describes, seen from the release promoted from it: the
    upstream's failed record names the fingerprint of a revision tagged proven (proof
    written, last-good write lost, the retried pass rolled it back). Its digests are
    not promotable, whether or not this process already saw the proof."""
    staged = {"api": image("v1")}, {"api": image("v2")}
    good = task_definition("api", 1, staged[0], proof_tags("api-staging", td_arn("api", 1)))
    bad = task_definition("api", 2, staged[1], proof_tags("api-staging", td_arn("api", 2)))
    gateway = ProofGateway(good, bad)
    spec = build_release("api-staging", staged[1])
    memory = memory_tags("api-staging", last_good=good.arn)
    digests = {image_refs.digest_of(image("v1")), image_refs.digest_of(image("v2"))}
    reader = ProofReader()
    upstream = build_service(build_deployment(good), tags=memory)
    assert reader.proven(gateway, upstream, "api-staging", digests, spec) == digests  # type: ignore[arg-type]
    failed = memory_tags("api-staging", last_good=good.arn, failed=spec.fingerprint())
    upstream = build_service(build_deployment(good), tags=failed)
    assert reader.proven(gateway, upstream, "api-staging", digests, spec) == {  # type: ignore[arg-type]
        image_refs.digest_of(image("v1"))
    }


def test_letting_go_removes_the_approval_too() -> None:
    tags = {**SERVICE.tags, TAG_APPROVAL: "fp=0123456789abcdef at=t by=me"}
    service = replace(SERVICE, tags=tags)
    gateway = ProvingGateway()
    action = LetGo(Phase.PROGRESSING, Reason.REMOVED, "gone", None, untag=True)
    AwsExecutor(WriteLog()).execute(action, gateway, service, "api-prod", None)
    (call,) = [args for name, args in gateway.calls if name != "tag_service"]
    assert TAG_APPROVAL in call  # type: ignore[operator]


# --- stories through the controller ---------------------------------------------------------


class FakeEcr:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.missing: set[str] = set()

    def batch_get_image(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request["repositoryName"])
        ids = request["imageIds"]
        return {
            "images": [{"imageId": i} for i in ids if i["imageDigest"] not in self.missing],
            "failures": [
                {"imageId": i, "failureCode": "ImageNotFound", "failureReason": "not found"}
                for i in ids
                if i["imageDigest"] in self.missing
            ],
        }

    def get_role(self, RoleName: str) -> dict[str, Any]:
        return {"Role": {"RoleName": RoleName}}


@pytest.fixture
def flow_world(tmp_path: Path) -> tuple[World, FakeEcr]:
    """A World whose controller gathers the release flow's inputs (fake ECR and IAM)."""
    world = World(tmp_path)
    ecr = FakeEcr()
    settings = ControllerSettings(
        specs=world.specs, default_region="us-east-1", active_poll_seconds=5.0
    )
    world.controller = Controller(
        settings,
        lambda region, role: world.ecs,
        world.metrics,
        clock=world.clock,
        client_for=lambda service, region, role: ecr,
    )
    return world, ecr


def bake(world: World, name: str) -> None:
    """The rollout of ``name`` completes and bakes: last-good recorded (proof included)."""
    world.reconcile(name)
    world.ecs.complete(name)
    world.clock.advance(61)
    world.reconcile(name)
    assert world.status(name).reason == "Baked", world.status(name).message


def test_promotion_waits_for_the_proof_and_is_woken_by_it(
    flow_world: tuple[World, FakeEcr],
) -> None:
    world, ecr = flow_world
    world.adopted("staging")
    world.adopted("prod")
    world.write("prod", V2, promotion={"from": ["staging"]})
    world.reconcile("prod")
    assert world.status("prod").reason == "PromotionBlocked"
    assert "not yet proven by staging" in world.status("prod").message
    assert world.sample("ecsop_release_held", release="prod", reason="PromotionBlocked") == 1
    assert world.ecs.calls.count("UpdateService") == 0

    world.write("staging", V2)
    world.reconcile("staging")  # deploys v2 to staging
    queue = world.controller.queue
    while (item := queue.get(timeout=0)) is not None:  # what spec changes queued
        queue.done(item)
    bake(world, "staging")
    revision = world.ecs.services["staging"].task_definition
    assert proves(world.ecs.tds[revision].tags, "staging", revision)
    assert queue.get(timeout=0) == "prod", "woken by staging's last-good"
    world.reconcile("prod")
    assert world.status("prod").reason == "Deploying"
    assert world.sample("ecsop_release_held", release="prod", reason="PromotionBlocked") == 0
    assert ecr.calls, "the pre-flight looked in ECR"


def test_a_worker_waits_for_its_api(flow_world: tuple[World, FakeEcr]) -> None:
    world, _ = flow_world
    world.adopted("api")
    world.adopted("worker")
    world.write("api", V2)
    world.write("worker", V2, dependsOn=["api"])
    world.reconcile("api")  # the API rolls out
    world.reconcile("worker")
    status = world.status("worker")
    assert (status.phase, status.reason) == (Phase.PROGRESSING, "WaitingForDependency")
    assert "api (rolling out)" in status.message
    bake(world, "api")
    world.reconcile("worker")
    assert world.status("worker").reason == "Deploying"


def test_an_image_ecr_does_not_hold_is_never_registered(flow_world: tuple[World, FakeEcr]) -> None:
    world, ecr = flow_world
    world.adopted("shop")
    ecr.missing.add("sha256:" + V2.split("@sha256:")[1])
    world.write("shop", V2)
    world.reconcile("shop")
    status = world.status("shop")
    assert (status.phase, status.reason) == (Phase.DEGRADED, "ImageNotFound")
    assert "RegisterTaskDefinition" not in world.ecs.calls
    assert "UpdateService" not in world.ecs.calls
    ecr.missing.clear()  # pushed after all: seen on the next pass, nothing cached
    world.reconcile("shop")
    assert world.status("shop").reason == "Deploying"


def test_a_steady_release_gathers_nothing(flow_world: tuple[World, FakeEcr]) -> None:
    world, ecr = flow_world
    world.adopted("shop")
    world.write("shop", V1, promotion={"from": ["other"]}, dependsOn=["other"])
    world.adopted("other")
    calls = len(world.ecs.calls)
    world.reconcile("shop")
    assert world.status("shop").reason == "InSync"
    assert world.ecs.calls[calls:] == ["DescribeServices"], "one describe, nothing more"
    assert not ecr.calls
    assert TAG_LAST_GOOD in world.ecs.tags("shop") and CLUSTER


def test_an_upstream_is_read_with_its_own_role(flow_world: tuple[World, FakeEcr]) -> None:
    """An upstream in another account: its proofs are read with its ``roleArn``."""
    world, _ = flow_world
    asked: list[tuple[str, str | None]] = []
    gateway_for = world.controller.flow._gateway_for  # type: ignore[union-attr]

    def recording(region: str, role: str | None) -> Any:
        asked.append((region, role))
        return gateway_for(region, role)

    world.controller.flow._gateway_for = recording  # type: ignore[union-attr]
    role = "arn:aws:iam::444455556666:role/ecsop-deployer"
    world.ecs.add_service("staging")
    world.write("staging", V1, roleArn=role)
    world.reconcile("staging")
    world.adopted("prod")
    world.write("prod", V2, promotion={"from": ["staging"]})
    world.reconcile("prod")
    assert world.status("prod").reason == "PromotionBlocked"
    assert ("us-east-1", role) in asked
