"""Notification events come from decisions: one per happening, none again after a restart.

Through ``controller_world.World`` with a ``NotificationEmitter`` whose events
land in a list (the receivers' side of things is ``tests/notifications``).
``World.start`` is a daemon restart: a new process with empty status over the
same ECS and spec directory.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from controller_world import CRASH, V1, V2, World

from ecsop.controller.notifications import NotificationEmitter
from ecsop.decision.reasons import Phase
from ecsop.notify.events import Event, EventType, event_id
from ecsop.spec.model import fingerprint


class Sink:
    """What receivers would get: every event published, in order, across restarts."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emitter(self, world_clock: object) -> NotificationEmitter:
        return NotificationEmitter(self.events.append, world_clock)  # type: ignore[arg-type]

    def types(self) -> list[EventType]:
        return [e.type for e in self.events]


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def world(tmp_path: Path, sink: Sink) -> World:
    world = World(tmp_path)
    world.start(sink.emitter(world.clock))
    return world


def restart(world: World, sink: Sink) -> None:
    world.start(sink.emitter(world.clock))


def git_commit(world: World, message: str) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(world.specs), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    if not (world.specs / ".git").exists():
        git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", message)
    world.controller.reload_specs()
    return git("rev-parse", "HEAD")


def bake(world: World) -> None:
    world.ecs.complete("shop")
    world.clock.advance(30)
    world.reconcile()
    world.clock.advance(61)
    world.reconcile()


def test_adoption_tells_no_one(world: World, sink: Sink) -> None:
    world.adopted()
    world.reconcile()
    assert sink.events == []


def test_a_deploy_is_started_then_succeeded_on_its_commit(world: World, sink: Sink) -> None:
    world.adopted()
    world.write("shop", V2)
    commit = git_commit(world, "shop v2")
    world.reconcile()
    bake(world)
    assert world.phase() is Phase.SYNCED
    started, succeeded = sink.events
    primary = world.ecs.services["shop"].primary
    assert primary is not None
    assert (started.type, started.deployment, started.commit) == (
        EventType.DEPLOY_STARTED,
        primary.id,
        commit,
    )
    assert started.source is not None and started.source.images == {"app": V1}
    assert started.target is not None and started.target.images == {"app": V2}
    assert started.target.fingerprint == fingerprint({"app": V2})
    assert (succeeded.type, succeeded.deployment, succeeded.commit) == (
        EventType.DEPLOY_SUCCEEDED,
        primary.id,
        commit,
    )
    assert succeeded.target is not None and succeeded.target.images == {"app": V2}
    assert succeeded.source is not None and succeeded.source.images == {"app": V1}


def test_a_rollback_is_told_once_and_its_degraded_tail_is_not(world: World, sink: Sink) -> None:
    world.deploying(CRASH)
    world.ecs.fail_tasks("shop", 2)
    world.clock.advance(10)
    for _ in range(3):
        world.reconcile()
    world.ecs.complete("shop")
    for _ in range(3):
        world.reconcile()
    assert world.phase() is Phase.DEGRADED
    assert sink.types() == [EventType.DEPLOY_STARTED, EventType.DEPLOY_ROLLED_BACK]
    rolled_back = sink.events[1]
    assert rolled_back.rolled_back_by == "ecsop"
    assert rolled_back.failure == "failed_tasks"
    assert rolled_back.deployment == sink.events[0].deployment
    assert rolled_back.source is not None and rolled_back.source.images == {"app": CRASH}
    assert rolled_back.target is not None and rolled_back.target.images == {"app": V1}


def test_a_restart_between_a_deploy_and_its_outcome_sends_nothing_twice(
    world: World, sink: Sink
) -> None:
    world.adopted()
    world.write("shop", CRASH)
    commit = git_commit(world, "crash")
    world.reconcile()
    assert sink.types() == [EventType.DEPLOY_STARTED]
    restart(world, sink)  # the new process's first pass: empty status
    world.reconcile()
    world.ecs.fail_tasks("shop", 2)
    world.clock.advance(10)
    world.reconcile()
    restart(world, sink)  # and once more while it rolls back, and while Degraded
    world.reconcile()
    world.ecs.complete("shop")
    world.reconcile()
    restart(world, sink)
    world.reconcile()
    assert world.phase() is Phase.DEGRADED
    assert sink.types() == [EventType.DEPLOY_STARTED, EventType.DEPLOY_ROLLED_BACK]
    started, rolled_back = sink.events
    assert rolled_back.deployment == started.deployment
    assert rolled_back.commit == commit, "read back from ecsop:commit on the revision"


def test_a_rollback_issued_again_after_a_crash_has_the_same_id(world: World, sink: Sink) -> None:
    world.deploying(CRASH)
    failed = world.ecs.services["shop"].primary
    assert failed is not None
    world.ecs.fail_tasks("shop", 2)
    world.clock.advance(10)
    real = world.ecs.update_service

    def lost(*args: object) -> str:
        raise ConnectionError("killed after the failure record, before UpdateService")

    world.ecs.update_service = lost  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        world.reconcile()
    world.ecs.update_service = real  # type: ignore[method-assign]
    restart(world, sink)
    world.reconcile()
    assert sink.types() == [EventType.DEPLOY_STARTED, EventType.DEPLOY_ROLLED_BACK]
    crash = fingerprint({"app": CRASH})
    assert sink.events[1].id == event_id(
        EventType.DEPLOY_ROLLED_BACK, "shop", crash, "failed_tasks", failed.id
    )


def test_ecs_rolling_back_is_told_as_ecs_s_rollback(world: World, sink: Sink) -> None:
    world.deploying(CRASH)
    world.ecs.breaker_rolls_back("shop")
    world.reconcile()
    world.reconcile()
    assert sink.types() == [EventType.DEPLOY_STARTED, EventType.DEPLOY_ROLLED_BACK]
    assert sink.events[1].rolled_back_by == "ecs"
    assert sink.events[1].failure == "ecs_rollback"


def test_a_failure_without_rollback_is_failed_not_degraded(world: World, sink: Sink) -> None:
    world.deploying(CRASH, rollback={"automatic": False})
    world.ecs.fail_tasks("shop", 2)
    world.clock.advance(10)
    world.reconcile()
    world.reconcile()
    assert world.phase() is Phase.DEGRADED
    assert sink.types() == [EventType.DEPLOY_STARTED, EventType.DEPLOY_FAILED]


def test_degraded_then_recovered(world: World, sink: Sink) -> None:
    world.adopted()
    del world.ecs.services["shop"]
    world.reconcile()
    world.reconcile()
    assert world.phase() is Phase.DEGRADED
    assert sink.types() == [EventType.RELEASE_DEGRADED]
    assert sink.events[0].reason == "ServiceNotFound"
    world.ecs.add_service("shop")
    world.reconcile()
    assert world.phase() is Phase.SYNCED
    assert sink.types() == [EventType.RELEASE_DEGRADED, EventType.RELEASE_RECOVERED]


def test_a_degraded_release_found_at_start_is_not_told_again_but_its_recovery_is(
    world: World, sink: Sink
) -> None:
    world.adopted()
    del world.ecs.services["shop"]
    world.reconcile()
    world.reconcile()
    restart(world, sink)
    world.reconcile()
    assert sink.types() == [EventType.RELEASE_DEGRADED]
    world.ecs.add_service("shop")
    world.reconcile()
    assert sink.types() == [EventType.RELEASE_DEGRADED, EventType.RELEASE_RECOVERED]


def test_an_invalid_spec_is_told_once_and_its_fix_recovers(world: World, sink: Sink) -> None:
    world.adopted()
    world.write_raw(
        "shop.yaml", (world.specs / "shop.yaml").read_text().replace("cluster", "clustr")
    )
    for _ in range(2):
        world.reconcile()
    assert world.phase() is Phase.INVALID
    assert sink.types() == [EventType.SPEC_INVALID]
    assert "spec.cluster: required field is missing" in sink.events[0].message
    world.write("shop", V1)
    world.reconcile()
    assert sink.types() == [EventType.SPEC_INVALID, EventType.RELEASE_RECOVERED]


def test_a_fix_deployed_after_a_rollback_is_a_new_rollout_not_a_recovery(
    world: World, sink: Sink
) -> None:
    world.deploying(CRASH)
    world.ecs.fail_tasks("shop", 2)
    world.clock.advance(10)
    world.reconcile()
    world.ecs.complete("shop")
    world.reconcile()
    world.write("shop", V2)
    world.reconcile()
    bake(world)
    assert sink.types() == [
        EventType.DEPLOY_STARTED,
        EventType.DEPLOY_ROLLED_BACK,
        EventType.DEPLOY_STARTED,
        EventType.DEPLOY_SUCCEEDED,
    ]


def test_labels_travel_with_events(world: World, sink: Sink) -> None:
    world.adopted()
    text = (world.specs / "shop.yaml").read_text()
    world.write_raw("shop.yaml", text.replace("name: shop", "name: shop\n  labels: {team: pay}"))
    world.write_raw("shop.yaml", (world.specs / "shop.yaml").read_text().replace(V1, V2))
    world.reconcile()
    assert sink.events[0].labels == {"team": "pay"}


def test_a_failure_to_tell_never_fails_the_pass(tmp_path: Path) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("receiver side exploded")

    world = World(tmp_path)
    world.start(NotificationEmitter(broken, world.clock))
    world.deploying(V2)
    assert world.phase() is Phase.PROGRESSING
