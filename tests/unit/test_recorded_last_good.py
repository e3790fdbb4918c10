"""A fresh process knows a steady, proven release is in sync without describing its revision.

Issue 22: a restart over 10,000 releases described 10,000 revisions (500 s at
ECS's documented DescribeTaskDefinition rate) before it called any release
Synced. ecsop now records, bound to the service, release and revision, the
fingerprint it computed from last-good's images (``lgf`` in ``ecsop:state``),
and ``controller.revision_reads`` trusts that record only when the pass is
SYNCED with it. Everything else describes, as before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from builders import NOW, deployment, release, service, service_arn, task_definition
from ecsop.controller import revision_reads
from ecsop.decision.actions import RecordLastGood, Wait
from ecsop.decision.decide import decide
from ecsop.decision.ecs_state import (
    Deployment,
    DeploymentStatus,
    Fingerprint,
    RolloutState,
    TaskDefinition,
)
from ecsop.decision.memory import TAG_LAST_GOOD, TAG_STATE, ServiceMemory
from ecsop.decision.observation import Observation, Options
from ecsop.decision.reasons import Failure, Phase, Reason
from ecsop.decision.situation import Situation, classify
from ecsop.spec.model import fingerprint

V1 = "repo/api@sha256:" + "1" * 64
V2 = "repo/api@sha256:" + "2" * 64
SIDE = "repo/log@sha256:" + "9" * 64
TD1 = task_definition("api", 1, {"api": V1, "log": SIDE})
TD2 = task_definition("api", 2, {"api": V2, "log": SIDE})
FP1 = Fingerprint(fingerprint({"api": V1}))
SERVICE = service_arn()
OPTIONS = Options(active_poll_seconds=5)


def proven(fp: str | None = FP1, revision: TaskDefinition = TD1) -> ServiceMemory:
    return ServiceMemory(release="api-prod").proven(
        SERVICE, "api-prod", revision.arn, fingerprint=Fingerprint(fp) if fp else None
    )


def steady(memory: ServiceMemory, *deployments: Deployment) -> Observation:
    deployed = deployments or (deployment(TD1),)
    return Observation(service(*deployed, tags=memory.tags()), task_definitions={})


# --- the record -------------------------------------------------------------------------


def test_the_record_is_read_back_from_the_tags_it_writes() -> None:
    memory = ServiceMemory.read(proven().tags())
    assert "lgf=" in proven().tags()[TAG_STATE]
    assert memory.last_good_carries(SERVICE, "api-prod", FP1)
    assert not memory.last_good_carries(SERVICE, "api-prod", Fingerprint(fingerprint({"api": V2})))


@pytest.mark.parametrize(
    "tags",
    [
        pytest.param(
            ServiceMemory(release="api-prod")
            .proven(service_arn(name="other"), "api-prod", TD1.arn, fingerprint=FP1)
            .tags(),
            id="copied-from-another-service",
        ),
        pytest.param(
            {**proven().tags(), TAG_LAST_GOOD: TD2.arn},
            id="last-good-edited-by-hand",
        ),
        pytest.param(
            {
                TAG_LAST_GOOD: TD1.arn,
                TAG_STATE: proven().tags()[TAG_STATE].replace("lgf=", "lgf=0"),
            },
            id="binding-edited-by-hand",
        ),
        pytest.param(proven(None).tags(), id="written-without-a-fingerprint"),
        pytest.param(
            proven().proven(SERVICE, "api-prod", TD2.arn, fingerprint=None).tags(),
            id="left-from-an-older-last-good",
        ),
        pytest.param(
            ServiceMemory(release="api-prod")
            .proven(SERVICE, "api-prod", TD1.arn, fingerprint=None)
            .tags(),
            id="earlier-ecsop",
        ),
    ],
)
def test_a_record_not_bound_to_this_service_release_and_revision_counts_for_nothing(
    tags: dict[str, str],
) -> None:
    memory = ServiceMemory.read(tags)
    assert not memory.last_good_carries(SERVICE, "api-prod", FP1)
    assert not memory.last_good_carries(SERVICE, "api-web", FP1)


# --- the decision with no revision described -------------------------------------------


def test_a_steady_service_on_its_recorded_last_good_is_synced_from_the_record() -> None:
    observed = steady(proven())
    action = decide(release(containers={"api": V1}), observed, NOW, OPTIONS)
    assert (type(action), action.phase, action.reason) == (Wait, Phase.SYNCED, Reason.IN_SYNC)
    assert observed.running_fingerprint(release(containers={"api": V1})) == FP1
    assert observed.running_images(release(containers={"api": V1})) == {"api": V1}


ROLLING = deployment(TD2, RolloutState.IN_PROGRESS, age=60, updated_ago=10)
OLD_ACTIVE = deployment(TD1, status=DeploymentStatus.ACTIVE)


@pytest.mark.parametrize(
    ("containers", "memory", "deployments"),
    [
        pytest.param({"api": V2}, proven(), (), id="spec-moved-on"),
        pytest.param({"api": V1, "log": SIDE}, proven(), (), id="spec-gained-a-container"),
        pytest.param({"api": V1}, proven(), (ROLLING, OLD_ACTIVE), id="a-rollout-under-way"),
        pytest.param({"api": V1}, proven(), (deployment(TD2),), id="service-edited-by-hand"),
        pytest.param(
            {"api": V1},
            proven().failed_with(FP1, Failure.FAILED_TASKS),
            (),
            id="the-release-failed-before",
        ),
        pytest.param({"api": V1}, proven(None), (), id="no-record"),
        pytest.param(
            {"api": V1},
            replace(proven(), release="api-prod", last_good_check="0" * 12),
            (),
            id="last-good-not-vouched-for",
        ),
    ],
)
def test_everything_but_in_sync_describes_the_revisions(
    containers: dict[str, str], memory: ServiceMemory, deployments: tuple[Deployment, ...]
) -> None:
    rel = release(containers=containers)
    observed = steady(memory, *deployments)
    assert classify(rel, observed, OPTIONS).situation is not Situation.SYNCED
    gateway = CountingGateway()
    read = revision_reads.read(gateway, rel, observed, OPTIONS)
    assert gateway.described, "the record alone settles nothing but in sync"
    assert observed.service.task_definition in read.task_definitions


def test_a_pass_in_sync_from_the_record_describes_nothing() -> None:
    gateway = CountingGateway()
    rel = release(containers={"api": V1})
    read = revision_reads.read(gateway, rel, steady(proven()), OPTIONS)
    assert not gateway.described and read.task_definitions == {}
    assert classify(rel, read, OPTIONS).situation is Situation.SYNCED


def test_a_described_revision_outweighs_the_record() -> None:
    """A revision read this pass is the truth: the record never overrides its images."""
    rel = release(containers={"api": V1})
    observed = replace(steady(proven()), task_definitions={TD1.arn: replace(TD1, images={})})
    assert observed.running_fingerprint(rel) == ""
    assert classify(rel, observed, OPTIONS).situation is not Situation.SYNCED


class CountingGateway:
    """The one gateway method ``revision_reads`` calls, counted."""

    def __init__(self) -> None:
        self.described: Counter[str] = Counter()

    def task_definition(self, arn: str) -> TaskDefinition:
        self.described[arn] += 1
        return {td.arn: td for td in (TD1, TD2)}[arn]


def test_a_suspended_release_or_another_instance_is_never_synced_from_the_record() -> None:
    rel = release(containers={"api": V1})
    assert (
        classify(release(containers={"api": V1}, suspend=True), steady(proven()), OPTIONS).situation
        is Situation.SUSPENDED
    )
    other = replace(proven(), writer="someone-else")
    observed = replace(steady(other), written_by_this_instance=True)
    assert (
        classify(rel, observed, replace(OPTIONS, instance_id="me")).situation
        is Situation.ANOTHER_INSTANCE
    )


@pytest.mark.parametrize(
    "memory",
    [
        pytest.param(proven(None), id="written-by-an-earlier-ecsop"),
        pytest.param(
            proven(fingerprint({"api": V1, "log": SIDE})), id="spec-listed-one-more-container"
        ),
    ],
)
def test_a_described_pass_in_sync_records_the_fingerprint_once(memory: ServiceMemory) -> None:
    rel = release(containers={"api": V1})
    described = replace(steady(memory), task_definitions={TD1.arn: TD1})
    action = decide(rel, described, NOW, OPTIONS)
    assert isinstance(action, RecordLastGood)
    assert (action.phase, action.reason, action.task_definition) == (
        Phase.SYNCED,
        Reason.IN_SYNC,
        TD1.arn,
    )
    assert action.memory.last_good_carries(SERVICE, "api-prod", FP1)
    assert action.memory.vouches_for_last_good(SERVICE, "api-prod")
    assert (action.memory.deploying, action.memory.failed) == (memory.deploying, memory.failed)
    # Written, the next pass is in sync from the record and writes nothing.
    after = steady(ServiceMemory.read(action.memory.tags()))
    assert type(decide(rel, after, NOW, OPTIONS)) is Wait


def test_memory_kept_in_process_is_not_rewritten_for_the_record() -> None:
    """Memory this process could not write is written by its own path, not this one."""
    rel = release(containers={"api": V1})
    described = replace(
        steady(proven(None)), task_definitions={TD1.arn: TD1}, unwritten=proven(None)
    )
    assert type(decide(rel, described, NOW, OPTIONS)) is Wait
