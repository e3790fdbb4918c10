"""The reconcile decision, situation by situation (docs/design.md, "The reconcile decision")."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from builders import NOW, memory_tags, service, task_definition, td_arn
from builders import deployment as build_deployment
from builders import release as build_release
from ecsop.decision import actions
from ecsop.decision import decide as reconciler
from ecsop.decision.actions import (
    Deploy,
    ForgetRollout,
    LetGo,
    RecordFailure,
    RecordLastGood,
    Rollback,
    Wait,
)
from ecsop.decision.ecs_state import (
    Deployment,
    DeploymentStatus,
    RolloutState,
    ServiceEvent,
    TaskDefinition,
    TaskDefinitionArn,
)
from ecsop.decision.memory import TAG_RELEASE
from ecsop.decision.observation import (
    Health,
    Observation,
    Options,
    ServiceDeploymentRecord,
    SpecState,
)
from ecsop.decision.reasons import Failure, Phase, Reason
from ecsop.spec.model import ServiceRelease, fingerprint

OLD = "repo/api@sha256:" + "0" * 64
NEW = "repo/api@sha256:" + "1" * 64
OTHER = "repo/api@sha256:" + "2" * 64
SIDE = "repo/log@sha256:" + "9" * 64


def arn(revision: int) -> TaskDefinitionArn:
    return td_arn("api", revision)


TD_OLD = task_definition("api", 1, {"api": OLD, "log": SIDE})
TD_NEW = task_definition("api", 2, {"api": NEW, "log": SIDE}, {TAG_RELEASE: "api-prod"})
TD_OTHER = task_definition("api", 3, {"api": OTHER, "log": SIDE})
TDS = {td.arn: td for td in (TD_OLD, TD_NEW, TD_OTHER)}
FP_NEW = fingerprint({"api": NEW})
FP_OLD = fingerprint({"api": OLD})


def release(image: str = NEW, suspend: bool = False, **rollout: Any) -> ServiceRelease:
    return build_release(containers={"api": image}, suspend=suspend, rollout=rollout)


def deployment(
    td: TaskDefinition,
    state: RolloutState = RolloutState.COMPLETED,
    status: DeploymentStatus = DeploymentStatus.PRIMARY,
    age: float = 3600,
    updated_ago: float = 3000,
    failed: int = 0,
    reason: str = "",
) -> Deployment:
    return build_deployment(
        td,
        state,
        status,
        age=age,
        updated_ago=updated_ago,
        failed=failed,
        reason=reason,
        id=f"ecs-svc/{td.revision}{status.value}",
    )


def observe(
    *deployments: Deployment,
    health: Health | None = None,
    last_good: TaskDefinitionArn | None = None,
    failed: str | None = None,
    reason: str = "failed_tasks",
    deploying: str | None = None,
    carries: str | None = None,
) -> Observation:
    tags = memory_tags(
        last_good=last_good, failed=failed, reason=reason, deploying=deploying, carries=carries
    )
    if last_good is None and failed is None and deploying is None:
        tags = {}
    return Observation(
        service=service(*deployments, tags=tags), task_definitions=TDS, health=health or Health()
    )


def decide(rel: ServiceRelease, obs: Observation, *, self_heal: bool = True) -> actions.Action:
    return reconciler.decide(rel, obs, NOW, Options(self_heal=self_heal, active_poll_seconds=5))


STEADY_OLD = deployment(TD_OLD)
ROLLING_NEW = deployment(TD_NEW, RolloutState.IN_PROGRESS, age=60, updated_ago=10)
ACTIVE_OLD = deployment(TD_OLD, status=DeploymentStatus.ACTIVE)


@pytest.mark.parametrize(
    ("rel", "obs", "expected"),
    [
        # 1. suspended
        pytest.param(
            release(suspend=True),
            observe(STEADY_OLD, last_good=arn(1)),
            (Wait, Phase.SUSPENDED, Reason.SUSPENDED),
            id="suspended",
        ),
        # 2. rollout in progress, ours
        pytest.param(
            release(),
            observe(ROLLING_NEW, ACTIVE_OLD, last_good=arn(1)),
            (Wait, Phase.PROGRESSING, Reason.ROLLOUT_IN_PROGRESS),
            id="ours-healthy",
        ),
        pytest.param(
            release(),
            observe(replace(ROLLING_NEW, failed_tasks=2), ACTIVE_OLD, last_good=arn(1)),
            (Rollback, Phase.ROLLING_BACK, Reason.ROLLING_BACK),
            id="ours-failed-tasks",
        ),
        pytest.param(
            release(),
            observe(replace(ROLLING_NEW, failed_tasks=1), ACTIVE_OLD, last_good=arn(1)),
            (Wait, Phase.PROGRESSING, Reason.ROLLOUT_IN_PROGRESS),
            id="ours-at-threshold",
        ),
        pytest.param(
            release(),
            observe(
                replace(ROLLING_NEW, created_at=NOW - timedelta(seconds=601)),
                ACTIVE_OLD,
                last_good=arn(1),
            ),
            (Rollback, Phase.ROLLING_BACK, Reason.ROLLING_BACK),
            id="ours-timeout",
        ),
        pytest.param(
            release(),
            observe(
                replace(
                    ROLLING_NEW,
                    rollout_state=RolloutState.FAILED,
                    rollout_state_reason="circuit breaker",
                ),
                ACTIVE_OLD,
                last_good=arn(1),
            ),
            (Rollback, Phase.ROLLING_BACK, Reason.ROLLING_BACK),
            id="ours-breaker-failed",
        ),
        pytest.param(
            release(alarms=["api-5xx"]),
            observe(
                ROLLING_NEW,
                ACTIVE_OLD,
                last_good=arn(1),
                health=Health(alarms_in_alarm=("api-5xx",)),
            ),
            (Rollback, Phase.ROLLING_BACK, Reason.ROLLING_BACK),
            id="ours-alarm",
        ),
        pytest.param(
            release(alarms=["api-5xx"]),
            observe(
                ROLLING_NEW,
                ACTIVE_OLD,
                last_good=arn(1),
                health=Health(alarms_in_alarm=("unrelated",)),
            ),
            (Wait, Phase.PROGRESSING, Reason.ROLLOUT_IN_PROGRESS),
            id="ours-unwatched-alarm",
        ),
        pytest.param(
            release(targetHealth=True),
            observe(ROLLING_NEW, ACTIVE_OLD, last_good=arn(1), health=Health(unhealthy_targets=1)),
            (Rollback, Phase.ROLLING_BACK, Reason.ROLLING_BACK),
            id="ours-target-health",
        ),
        pytest.param(
            release(),
            observe(replace(ROLLING_NEW, failed_tasks=5), ACTIVE_OLD),
            (RecordFailure, Phase.DEGRADED, Reason.NO_LAST_GOOD),
            id="ours-failed-no-last-good",
        ),
        pytest.param(
            release(),
            observe(
                replace(ROLLING_NEW, failed_tasks=5),
                ACTIVE_OLD,
                failed=FP_NEW,
                reason="failed_tasks",
            ),
            (Wait, Phase.DEGRADED, Reason.NO_LAST_GOOD),
            id="ours-failed-no-last-good-recorded",
        ),
        pytest.param(
            release(),
            observe(ROLLING_NEW, ACTIVE_OLD, last_good=arn(1), failed=FP_NEW, reason="timeout"),
            (Rollback, Phase.ROLLING_BACK, Reason.ROLLING_BACK),
            id="resume-recorded-rollback",
        ),
        # 2. ECS's circuit breaker is rolling back our release
        pytest.param(
            release(),
            observe(
                deployment(TD_OLD, RolloutState.IN_PROGRESS, age=10),
                deployment(
                    TD_NEW,
                    RolloutState.FAILED,
                    DeploymentStatus.ACTIVE,
                    reason="tasks failed to start",
                ),
                last_good=arn(1),
            ),
            (RecordFailure, Phase.ROLLING_BACK, Reason.ECS_ROLLING_BACK),
            id="ecs-rollback",
        ),
        pytest.param(
            release(),
            observe(
                deployment(TD_OLD, RolloutState.IN_PROGRESS, age=10),
                deployment(TD_NEW, RolloutState.FAILED, DeploymentStatus.ACTIVE),
                last_good=arn(1),
                failed=FP_NEW,
                reason="ecs_rollback",
            ),
            (Wait, Phase.ROLLING_BACK, Reason.ECS_ROLLING_BACK),
            id="ecs-rollback-recorded",
        ),
        # 2. our own rollback in progress, and failing
        pytest.param(
            release(),
            observe(
                deployment(TD_OLD, RolloutState.IN_PROGRESS, age=10),
                deployment(TD_NEW, status=DeploymentStatus.ACTIVE),
                last_good=arn(1),
                failed=FP_NEW,
                reason="failed_tasks",
            ),
            (Wait, Phase.ROLLING_BACK, Reason.ROLLING_BACK),
            id="our-rollback",
        ),
        pytest.param(
            release(),
            observe(
                deployment(TD_OLD, RolloutState.IN_PROGRESS, age=10, failed=3),
                deployment(TD_NEW, status=DeploymentStatus.ACTIVE),
                last_good=arn(1),
                failed=FP_NEW,
                reason="failed_tasks",
            ),
            (RecordFailure, Phase.DEGRADED, Reason.ROLLBACK_FAILED),
            id="rollback-failing",
        ),
        pytest.param(
            release(),
            observe(
                deployment(TD_OLD, RolloutState.IN_PROGRESS, age=10, failed=3),
                deployment(TD_NEW, status=DeploymentStatus.ACTIVE),
                last_good=arn(1),
                failed=FP_NEW,
                reason="rollback_failed",
            ),
            (Wait, Phase.DEGRADED, Reason.ROLLBACK_FAILED),
            id="rollback-failed-recorded",
        ),
        # 2. someone else's deployment
        pytest.param(
            release(),
            observe(
                deployment(TD_OTHER, RolloutState.IN_PROGRESS, age=10), ACTIVE_OLD, last_good=arn(1)
            ),
            (Wait, Phase.PROGRESSING, Reason.FOREIGN_DEPLOYMENT),
            id="foreign",
        ),
        pytest.param(
            release(),
            observe(
                deployment(TD_OTHER, RolloutState.IN_PROGRESS, age=700),
                ACTIVE_OLD,
                last_good=arn(1),
            ),
            (Wait, Phase.DEGRADED, Reason.FOREIGN_DEPLOYMENT),
            id="foreign-stuck",
        ),
        # 3. steady on the desired fingerprint
        pytest.param(
            release(),
            observe(deployment(TD_NEW, updated_ago=30), last_good=arn(1)),
            (Wait, Phase.PROGRESSING, Reason.BAKING),
            id="baking",
        ),
        pytest.param(
            release(),
            observe(deployment(TD_NEW, updated_ago=61), last_good=arn(1)),
            (RecordLastGood, Phase.SYNCED, Reason.BAKED),
            id="baked",
        ),
        pytest.param(
            release(),
            observe(deployment(TD_NEW, updated_ago=30, failed=2), last_good=arn(1)),
            (Rollback, Phase.ROLLING_BACK, Reason.ROLLING_BACK),
            id="bake-failed-tasks",
        ),
        pytest.param(
            release(alarms=["api-5xx"]),
            observe(
                deployment(TD_NEW, updated_ago=30),
                last_good=arn(1),
                health=Health(alarms_in_alarm=("api-5xx",)),
            ),
            (Rollback, Phase.ROLLING_BACK, Reason.ROLLING_BACK),
            id="bake-alarm",
        ),
        pytest.param(
            release(),
            observe(deployment(TD_NEW, RolloutState.FAILED, failed=1), last_good=arn(1)),
            (Rollback, Phase.ROLLING_BACK, Reason.ROLLING_BACK),
            id="breaker-failed-no-rollback",
        ),
        pytest.param(
            release(),
            observe(deployment(TD_NEW), last_good=arn(2), carries=FP_NEW),
            (Wait, Phase.SYNCED, Reason.IN_SYNC),
            id="synced",
        ),
        pytest.param(
            release(),
            observe(deployment(TD_NEW), last_good=arn(2)),
            (RecordLastGood, Phase.SYNCED, Reason.IN_SYNC),
            id="synced-proven-by-an-earlier-ecsop",
        ),
        pytest.param(
            release(),
            observe(deployment(TD_NEW)),
            (RecordLastGood, Phase.SYNCED, Reason.ADOPTED),
            id="adopt-when-already-desired",
        ),
        pytest.param(
            release(),
            observe(
                deployment(TD_NEW, updated_ago=61),
                last_good=arn(1),
                failed=FP_NEW,
                reason="failed_tasks",
            ),
            (RecordLastGood, Phase.SYNCED, Reason.BAKED),
            id="retried-release-baked",
        ),
        # 4. steady elsewhere
        pytest.param(
            release(),
            observe(STEADY_OLD),
            (RecordLastGood, Phase.PROGRESSING, Reason.ADOPTED),
            id="adopt-first-sight",
        ),
        pytest.param(
            release(),
            observe(STEADY_OLD, last_good=arn(1)),
            (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
            id="deploy",
        ),
        pytest.param(
            release(),
            observe(STEADY_OLD, last_good=arn(1), failed=FP_NEW, reason="failed_tasks"),
            (Wait, Phase.DEGRADED, Reason.RELEASE_FAILED),
            id="failed-not-retried",
        ),
        pytest.param(
            release(OTHER),
            observe(STEADY_OLD, last_good=arn(1), failed=FP_NEW, reason="timeout"),
            (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
            id="spec-changed-after-failure",
        ),
        pytest.param(
            release(OLD),
            observe(STEADY_OLD, last_good=arn(1), failed=FP_NEW, carries=FP_OLD),
            (Wait, Phase.SYNCED, Reason.IN_SYNC),
            id="reverted-to-last-good",
        ),
        pytest.param(
            release(OLD),
            observe(deployment(TD_OTHER), last_good=arn(1)),
            (Deploy, Phase.PROGRESSING, Reason.SELF_HEAL),
            id="drift-self-heal",
        ),
        pytest.param(
            release(OLD),
            observe(deployment(TD_NEW), last_good=arn(1)),
            (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
            id="running-our-older-revision",
        ),
        pytest.param(
            release("repo/x@sha256:" + "3" * 64),
            observe(STEADY_OLD, last_good=arn(1), failed=FP_OLD, reason="rollback_failed"),
            (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
            id="new-spec-after-rollback-failed",
        ),
    ],
)
def test_decision(
    rel: ServiceRelease,
    obs: Observation,
    expected: tuple[type[actions.Action], Phase, Reason],
) -> None:
    action = decide(rel, obs)
    assert (type(action), action.phase, action.reason) == expected, action.message
    if isinstance(action, Rollback):
        assert action.to == arn(1) and action.memory.failed is not None
        assert action.memory.failed.fingerprint == action.failed_fingerprint
    if isinstance(action, Deploy):
        assert action.memory.deploying == action.fingerprint
    if isinstance(action, RecordLastGood):
        assert action.memory.last_good == action.task_definition
    if isinstance(action, RecordFailure):
        assert action.memory.failed is not None
        assert action.memory.failed.fingerprint == action.failed_fingerprint


def test_drift_without_self_heal_is_reported_only() -> None:
    action = decide(release(OLD), observe(deployment(TD_OTHER), last_good=arn(1)), self_heal=False)
    assert (type(action), action.phase, action.reason) == (
        actions.Wait,
        Phase.DEGRADED,
        Reason.DRIFTED,
    )


def test_deploy_carries_images_and_base() -> None:
    action = decide(release(), observe(STEADY_OLD, last_good=arn(1)))
    assert isinstance(action, actions.Deploy)
    assert (action.fingerprint, dict(action.images), action.base) == (FP_NEW, {"api": NEW}, arn(1))
    assert action.requeue_after == 5


def test_rollback_targets_last_good_and_records_the_failure() -> None:
    obs = observe(replace(ROLLING_NEW, failed_tasks=2), ACTIVE_OLD, last_good=arn(1))
    action = decide(release(), obs)
    assert isinstance(action, actions.Rollback)
    assert (action.to, action.failed_fingerprint, action.failure) == (
        arn(1),
        FP_NEW,
        Failure.FAILED_TASKS,
    )
    assert "2 failed tasks" in action.detail


def test_no_automatic_rollback_records_failure_only() -> None:
    rel = release()
    rel = rel.model_copy(
        update={
            "spec": rel.spec.model_copy(
                update={"rollback": rel.spec.rollback.model_copy(update={"automatic": False})}
            )
        }
    )
    obs = observe(replace(ROLLING_NEW, failed_tasks=2), ACTIVE_OLD, last_good=arn(1))
    action = decide(rel, obs)
    assert isinstance(action, actions.RecordFailure) and action.phase is Phase.DEGRADED
    recorded = observe(
        replace(ROLLING_NEW, failed_tasks=2),
        ACTIVE_OLD,
        last_good=arn(1),
        failed=FP_NEW,
        reason="failed_tasks",
    )
    assert isinstance(decide(rel, recorded), actions.Wait)


def test_unknown_container_is_invalid_not_deployed() -> None:
    rel = ServiceRelease.model_validate(
        {
            "apiVersion": "ecsop.dev/v1",
            "kind": "ServiceRelease",
            "metadata": {"name": "api-prod"},
            "spec": {"cluster": "prod", "service": "api", "containers": {"app": NEW}},
        }
    )
    action = decide(rel, observe(STEADY_OLD, last_good=arn(1)))
    assert (action.phase, action.reason) == (Phase.INVALID, Reason.UNKNOWN_CONTAINER)
    assert "app" in action.message and "api, log" in action.message


def test_bake_requeues_when_bake_ends() -> None:
    action = decide(
        release(bakeSeconds=60), observe(deployment(TD_NEW, updated_ago=58), last_good=arn(1))
    )
    assert action.reason is Reason.BAKING and action.requeue_after == pytest.approx(2)


def test_decide_is_pure() -> None:
    obs = observe(replace(ROLLING_NEW, failed_tasks=2), ACTIVE_OLD, last_good=arn(1))
    assert decide(release(), obs) == decide(release(), obs)


def test_self_heal_back_to_last_good_reuses_it() -> None:
    action = decide(release(OLD), observe(deployment(TD_OTHER), last_good=arn(1)))
    assert isinstance(action, actions.Deploy)
    assert action.reuse == arn(1)


def test_new_images_do_not_reuse_last_good() -> None:
    action = decide(release(), observe(STEADY_OLD, last_good=arn(1)))
    assert isinstance(action, actions.Deploy) and action.reuse is None


TD_OURS_OTHER = TaskDefinition(
    arn(4),
    "api",
    4,
    {"api": OTHER, "log": SIDE},
    {TAG_RELEASE: "api-prod", "ecsop:fingerprint": fingerprint({"api": OTHER})},
)


def observe_with(extra: TaskDefinition, *deployments: Deployment, **tags: str) -> Observation:
    obs = observe(*deployments, **tags)
    return replace(obs, task_definitions={**TDS, extra.arn: extra})


def test_superseded_rollout_that_fails_is_rolled_back_not_waited_on() -> None:
    """A fix pushed while ecsop's previous rollout crash-loops must not wait forever."""
    rolling_other = deployment(TD_OURS_OTHER, RolloutState.IN_PROGRESS, age=60, failed=2)
    obs = observe_with(TD_OURS_OTHER, rolling_other, ACTIVE_OLD, last_good=arn(1))
    action = decide(release(NEW), obs)
    assert isinstance(action, actions.Rollback)
    assert action.to == arn(1)
    assert action.failed_fingerprint == fingerprint({"api": OTHER}), "the superseded release failed"


def test_superseded_rollout_that_is_healthy_finishes_first() -> None:
    rolling_other = deployment(TD_OURS_OTHER, RolloutState.IN_PROGRESS, age=60)
    obs = observe_with(TD_OURS_OTHER, rolling_other, ACTIVE_OLD, last_good=arn(1))
    action = decide(release(NEW), obs)
    assert (type(action), action.reason) == (actions.Wait, Reason.ROLLOUT_IN_PROGRESS)
    assert "before deploying" in action.message


def test_release_rolled_back_while_ecsop_was_not_looking_is_not_redeployed() -> None:
    """ECS's breaker failed and rolled back between two looks (or while ecsop was down)."""
    obs = observe(STEADY_OLD, last_good=arn(1), deploying=FP_NEW)
    event = ServiceEvent("e1", NOW, "(service api) (deployment ecs-svc/9) deployment failed: x.")
    obs = replace(obs, service=replace(obs.service, events=(event,)))
    action = decide(release(), obs)
    assert isinstance(action, actions.RecordFailure)
    assert (action.phase, action.failed_fingerprint, action.failure) == (
        Phase.DEGRADED,
        FP_NEW,
        Failure.ECS_ROLLBACK,
    )
    assert action.rolled_back_by_ecs and action.counted


def record(status: str, td: TaskDefinition, ago: float) -> ServiceDeploymentRecord:
    return ServiceDeploymentRecord(
        f"arn:sd/{td.revision}-{ago}", status, td.arn, NOW - timedelta(seconds=ago)
    )


@pytest.mark.parametrize(
    ("history", "expected", "by_ecs"),
    [
        pytest.param(
            (record("ROLLBACK_SUCCESSFUL", TD_NEW, 300),),
            RecordFailure,
            True,
            id="ecs-rolled-back",
        ),
        pytest.param(
            (record("SUCCESSFUL", TD_OLD, 100), record("STOPPED", TD_NEW, 300)),
            RecordFailure,
            False,
            id="someone-returned-to-last-good",
        ),
        pytest.param(None, RecordFailure, False, id="no-record-back-on-last-good"),
    ],
)
def test_what_became_of_a_rollout_ecsop_no_longer_sees(
    history: tuple[ServiceDeploymentRecord, ...] | None,
    expected: type[actions.Action],
    by_ecs: bool,
) -> None:
    obs = replace(observe(STEADY_OLD, last_good=arn(1), deploying=FP_NEW), history=history)
    action = decide(release(), obs)
    assert isinstance(action, expected)
    assert isinstance(action, RecordFailure)
    assert (action.rolled_back_by_ecs, action.counted) == (by_ecs, by_ecs)


def test_a_rollout_replaced_by_someone_elses_deployment_is_not_a_failure() -> None:
    """A manual UpdateService mid-rollout is someone else's deployment (issue 21, #16)."""
    history = (record("SUCCESSFUL", TD_OTHER, 100), record("STOPPED", TD_NEW, 300))
    obs = replace(
        observe(deployment(TD_OTHER), last_good=arn(1), deploying=FP_NEW), history=history
    )
    action = decide(release(), obs)
    assert isinstance(action, ForgetRollout)
    assert action.memory.deploying is None and action.memory.failed is None
    # The next pass, with the record cleared, treats it as drift: put back.
    cleared = observe(deployment(TD_OTHER), last_good=arn(1))
    assert type(decide(release(), cleared)) is Deploy


def test_drift_after_a_proven_release_is_still_self_healed() -> None:
    """The rollout record is cleared once the release is last-good, so drift is drift."""
    action = decide(release(NEW), observe(deployment(TD_OTHER), last_good=arn(2)))
    assert (type(action), action.reason) == (actions.Deploy, Reason.SELF_HEAL)


def test_a_newer_spec_deploys_despite_an_older_rollout_record() -> None:
    obs = observe(STEADY_OLD, last_good=arn(1), deploying=fingerprint({"api": OTHER}))
    assert isinstance(decide(release(NEW), obs), actions.Deploy)


# --- what a hostile test found (issue 21) ------------------------------------------------


def test_a_release_that_never_ran_a_task_is_not_proven() -> None:
    """#7: completed with desiredCount 0, it has proven nothing, however long it waits."""
    idle = replace(deployment(TD_NEW, updated_ago=6000), running_count=0, desired_count=0)
    obs = observe(idle, last_good=arn(1))
    obs = replace(obs, service=replace(obs.service, desired_count=0, running_count=0))
    action = decide(release(), obs)
    assert (type(action), action.reason) == (Wait, Reason.AWAITING_TASKS)
    # Scaled up later, the bake starts only once every task runs.
    starting = replace(deployment(TD_NEW, updated_ago=6000), running_count=1, desired_count=4)
    action = decide(release(), observe(starting, last_good=arn(1)))
    assert (type(action), action.reason) == (Wait, Reason.BAKING)


def test_a_last_good_ecsop_did_not_write_is_never_followed() -> None:
    """#12: a hand-tagged last-good (any revision, any family) is not rolled back to."""
    foreign = service(
        replace(ROLLING_NEW, failed_tasks=3),
        ACTIVE_OLD,
        tags={"ecsop:last-good": td_arn("admin-tools", 7), "ecsop:state": "v=1 release=api-prod"},
    )
    action = decide(release(), Observation(foreign, TDS))
    assert isinstance(action, RecordFailure) and action.reason is Reason.NO_LAST_GOOD
    assert "not written by ecsop" in action.message
    # Copied from another service, the check fails too.
    copied = memory_tags(last_good=arn(1), name="other-service")
    obs = Observation(service(replace(ROLLING_NEW, failed_tasks=3), ACTIVE_OLD, tags=copied), TDS)
    assert isinstance(decide(release(), obs), RecordFailure)


def test_no_room_for_ecsops_tags_blocks_deploys_not_rollbacks() -> None:
    """#6: with 49 user tags ecsop cannot remember a rollout, so it starts none."""
    crowded = {f"team-{i}": "x" for i in range(49)}
    obs = observe(STEADY_OLD, last_good=arn(1))
    obs = replace(obs, service=replace(obs.service, tags={**obs.service.tags, **crowded}))
    action = decide(release(), obs)
    assert (type(action), action.phase, action.reason) == (
        Wait,
        Phase.DEGRADED,
        Reason.MEMORY_UNAVAILABLE,
    )
    assert "remove 1" in action.message
    failing = observe(replace(ROLLING_NEW, failed_tasks=3), ACTIVE_OLD, last_good=arn(1))
    failing = replace(
        failing, service=replace(failing.service, tags={**failing.service.tags, **crowded})
    )
    assert isinstance(decide(release(), failing), Rollback)


def test_another_instance_writing_after_this_one_stops_it() -> None:
    """#9: two daemons on one directory must not both act."""
    tags = memory_tags(last_good=arn(1), writer="other")
    obs = Observation(service(STEADY_OLD, tags=tags), TDS, written_by_this_instance=True)
    action = reconciler.decide(release(), obs, NOW, Options(instance_id="me"))
    assert (type(action), action.reason) == (Wait, Reason.ANOTHER_INSTANCE)
    # A predecessor's writes (this process wrote nothing yet) are not another instance.
    fresh = replace(obs, written_by_this_instance=False)
    assert type(reconciler.decide(release(), fresh, NOW, Options(instance_id="me"))) is Deploy


@pytest.mark.parametrize(
    ("obs", "expected"),
    [
        pytest.param(
            observe(replace(ROLLING_NEW, failed_tasks=3), ACTIVE_OLD, last_good=arn(1)),
            Rollback,
            id="failing-rollout-is-rolled-back-first",
        ),
        pytest.param(
            observe(ROLLING_NEW, ACTIVE_OLD, last_good=arn(1)), Wait, id="rolling-watched"
        ),
        pytest.param(observe(STEADY_OLD, last_good=arn(1)), LetGo, id="steady-let-go"),
        pytest.param(observe(deployment(TD_NEW), last_good=arn(2)), LetGo, id="synced-let-go"),
    ],
)
def test_a_removed_release_finishes_its_rollout_then_lets_go(
    obs: Observation, expected: type[actions.Action]
) -> None:
    """#10: deleting a spec mid-rollout must not leave a failing rollout running."""
    action = reconciler.decide(release(), obs, NOW, Options(), SpecState(removed=True))
    assert type(action) is expected
    if isinstance(action, LetGo):
        assert action.untag
    claimed = reconciler.decide(
        release(), obs, NOW, Options(), SpecState(removed=True, claimed_elsewhere=True)
    )
    assert not isinstance(claimed, LetGo) or not claimed.untag


def test_an_invalid_spec_still_rolls_back_and_never_deploys() -> None:
    """#5: a file that stops parsing mid-rollout must not abandon the rollout."""
    broken = SpecState(problems=("shop.yaml:3: YAML syntax error",))
    failing = observe(replace(ROLLING_NEW, failed_tasks=3), ACTIVE_OLD, last_good=arn(1))
    assert isinstance(reconciler.decide(release(), failing, NOW, Options(), broken), Rollback)
    steady = observe(STEADY_OLD, last_good=arn(1))
    action = reconciler.decide(release(), steady, NOW, Options(), broken)
    assert (type(action), action.phase, action.reason) == (Wait, Phase.INVALID, Reason.INVALID_SPEC)
