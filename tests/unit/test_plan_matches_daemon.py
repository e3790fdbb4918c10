"""``ecsop plan`` and a daemon pass take the same decision on the same world (issue 12).

Both run ``ReleaseReconciler``: plan with the dry-run executor and a recorder
that keeps the decision, the daemon with the real executor and its recorder.
The world holds what once made them disagree: an alarm in ALARM, an alarm that
cannot be read, an invalid spec, a release that is baking.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from controller_world import CRASH, V2, World

from ecsop.aws.service_cache import ServiceCache
from ecsop.controller.executor import Applied, AwsExecutor, DryRunExecutor, WriteLog
from ecsop.controller.reconciler import ReleaseReconciler, ReleaseTarget
from ecsop.decision.actions import Action, Rollback, Wait
from ecsop.decision.observation import Health, Observation, Options, SpecState


class Prober:
    """Health as the probes would read it: one alarm firing, another unreadable."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def probe(self, *args: Any) -> Health:
        return self.health

    def idle(self, name: str) -> None:
        pass


class Kept:
    def __init__(self) -> None:
        self.action: Action | None = None

    def decided(
        self,
        loaded: Any,
        commit: str | None,
        action: Action,
        observation: Observation | None,
        applied: Applied | None = None,
        now: datetime | None = None,
    ) -> None:
        self.action = action


def decide_both(world: World, health: Health, spec: SpecState) -> tuple[Action, Action]:
    entry = world.controller.specs.entry("shop")
    assert entry is not None and entry.loaded is not None
    target = ReleaseTarget(entry.loaded, None, spec)
    results = []
    for executor in (DryRunExecutor(), AwsExecutor(WriteLog())):
        kept = Kept()
        reconciler = ReleaseReconciler(
            ServiceCache(lambda region, role: world.ecs, max_age_seconds=0),  # type: ignore[arg-type,return-value]
            lambda region, role: world.ecs,  # type: ignore[arg-type,return-value]
            executor,
            kept,
            Options(active_poll_seconds=5),
            prober=Prober(health),  # type: ignore[arg-type]
            clock=world.clock,
        )
        reconciler.reconcile(target)
        assert kept.action is not None
        results.append(kept.action)
    return results[0], results[1]


@pytest.mark.parametrize(
    ("story", "health", "spec", "expected"),
    [
        pytest.param(
            "rolling", Health(alarms_in_alarm=("shop-5xx",)), SpecState(), Rollback, id="alarm"
        ),
        pytest.param(
            "baked",
            Health(unknown=("alarm shop-5xx (AccessDenied: not allowed)",)),
            SpecState(),
            Wait,
            id="unreadable-alarm",
        ),
        pytest.param("baking", Health(), SpecState(), Wait, id="baking"),
        pytest.param(
            "steady-new-spec",
            Health(),
            SpecState(problems=("shop.yaml:4: spec.bogus: unknown field",)),
            Wait,
            id="invalid-spec",
        ),
    ],
)
def test_plan_and_a_daemon_pass_decide_the_same(
    world: World, story: str, health: Health, spec: SpecState, expected: type[Action]
) -> None:
    alarms = {"alarms": ["shop-5xx"]}
    if story == "steady-new-spec":
        world.adopted()
        world.write("shop", V2, rollout=alarms)
    else:
        world.deploying(CRASH if story == "rolling" else V2, rollout=alarms)
        if story != "rolling":
            world.ecs.complete("shop")
            world.clock.advance(120 if story == "baked" else 10)
    planned, done = decide_both(world, health, spec)
    assert type(planned) is expected, planned.message
    assert (type(planned), planned.phase, planned.reason, planned.message) == (
        type(done),
        done.phase,
        done.reason,
        done.message,
    )
