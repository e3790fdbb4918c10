"""Time to restore: when production is back on last-good, per strategy."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from builders import NOW, deployment, memory_tags, service, task_definition
from ecsop.controller.restore import RestoreClock, restored
from ecsop.decision.actions import Rollback, Wait
from ecsop.decision.ecs_state import DeploymentStatus, RolloutState
from ecsop.decision.memory import ServiceMemory
from ecsop.decision.observation import Observation, Traffic
from ecsop.decision.reasons import Failure, Phase, Reason

GOOD = task_definition("web", 1, {"web": "repo/web@sha256:" + "0" * 64})
BAD = task_definition("web", 2, {"web": "repo/web@sha256:" + "1" * 64})
TDS = {td.arn: td for td in (GOOD, BAD)}
SD = "arn:aws:ecs:us-east-1:111122223333:service-deployment/prod/web/abc"


def observe(*deployments: object, traffic: Traffic | None = None) -> Observation:
    state = service(*deployments, tags=memory_tags(last_good=GOOD.arn))
    return Observation(state, TDS, traffic=traffic)


def test_a_rolling_rollback_restores_once_no_bad_task_runs_not_once_they_drained() -> None:
    starting = observe(
        deployment(GOOD, RolloutState.IN_PROGRESS, running=1),
        deployment(BAD, RolloutState.FAILED, DeploymentStatus.ACTIVE),
    )
    assert not restored(starting), "last-good is not at full count yet"
    draining = observe(
        deployment(GOOD, RolloutState.IN_PROGRESS),
        deployment(BAD, RolloutState.FAILED, DeploymentStatus.ACTIVE, running=0),
    )
    assert restored(draining), "bad tasks deregistered (DEACTIVATING): production is back"


def test_a_traffic_shifting_rollback_restores_when_production_weight_is_back_on_blue() -> None:
    bad, blue = deployment(BAD, RolloutState.IN_PROGRESS), deployment(GOOD)
    shifting = Traffic(SD, "ROLLBACK_IN_PROGRESS", "PRODUCTION_TRAFFIC_SHIFT", "CANARY", "tg", 10.0)
    assert not restored(observe(bad, blue, traffic=shifting))
    assert restored(observe(bad, blue, traffic=replace(shifting, production_on_green=0.0)))


def test_the_clock_runs_from_the_failure_seen_to_production_restored() -> None:
    clock = RestoreClock()
    failing = observe(deployment(BAD, RolloutState.IN_PROGRESS), deployment(GOOD))
    rollback = Rollback(
        Phase.ROLLING_BACK,
        Reason.ROLLING_BACK,
        "rolling back",
        5,
        to=GOOD.arn,
        failed_fingerprint="f" * 16,
        failure=Failure.HTTP_CHECK,
        detail="HTTP 500",
        memory=ServiceMemory(),
    )
    assert clock.passed("web", rollback, failing, NOW) is None
    wait = Wait(Phase.ROLLING_BACK, Reason.ROLLING_BACK, "x", 5)
    back = observe(deployment(GOOD), deployment(BAD, status=DeploymentStatus.ACTIVE, running=0))
    assert clock.passed("web", wait, back, NOW + timedelta(seconds=12)) == (12.0, "ROLLING")
    assert clock.passed("web", wait, back, NOW + timedelta(seconds=20)) is None, "measured once"
