"""Classify once, then decide: the situation of a release, computed once per pass.

Argo Rollouts builds one context naming every observed object's role before
it dispatches; ecsop does the same with ``View``: which deployment is judged,
which fingerprints are desired and running, which last-good is trusted, and
one ``Situation``. ``decide`` dispatches on it, and ``probes_for`` reads from
the same value which health signals the pass must gather, so "what is
judged" and "what is probed" cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from ecsop.decision.ecs_state import (
    Deployment,
    DeploymentStatus,
    Fingerprint,
    RolloutState,
    TaskDefinition,
    TaskDefinitionArn,
    short_name,
)
from ecsop.decision.memory import RevisionMemory, ServiceMemory
from ecsop.decision.observation import Observation, Options, fingerprint_of, in_progress
from ecsop.spec.model import ServiceRelease


class Situation(StrEnum):
    """Where a release stands, as far as the next action is concerned."""

    SUSPENDED = "suspended"
    """``spec.suspend``: observe only."""
    ANOTHER_INSTANCE = "another_instance"
    """Another ecsop instance wrote this service's memory after this one did."""
    NO_PRIMARY = "no_primary"
    """ECS reported no PRIMARY deployment (a transient read)."""
    ROLLING_OUT = "rolling_out"
    """The PRIMARY deployment runs the desired release and is in progress: judged."""
    RESUMING_ROLLBACK = "resuming_rollback"
    """A failure of the desired release is recorded but its rollback was not issued."""
    ECS_ROLLING_BACK = "ecs_rolling_back"
    """ECS marked a deployment of the desired release FAILED and rolls back."""
    ROLLING_BACK = "rolling_back"
    """A rollback to last-good (ecsop's, or ECS's to the same revision) is in progress."""
    SUPERSEDED = "superseded"
    """ecsop's rollout of an earlier spec is still in progress: judged, then the new one."""
    FOREIGN = "foreign"
    """Someone else's deployment is in progress: wait for it."""
    UNKNOWN_CONTAINER = "unknown_container"
    """Steady, but the spec names containers the running revision lacks."""
    FIRST_SIGHT = "first_sight"
    """Steady, and no trusted last-good: adopt the running revision."""
    BAKING = "baking"
    """Steady on the desired release, not yet proven: judged through the bake."""
    SYNCED = "synced"
    """Steady on the desired release, proven."""
    FAILED_BEFORE = "failed_before"
    """Steady elsewhere; the desired release failed before: wait for a change or a retry."""
    GONE_UNSEEN = "gone_unseen"
    """Steady elsewhere; ecsop rolled the desired release out and it is no longer there."""
    OUT_OF_DATE = "out_of_date"
    """Steady on ecsop's own revision (or last-good); the spec moved on: deploy."""
    DRIFTED = "drifted"
    """Steady on a revision changed outside ecsop."""


class Probe(StrEnum):
    """A signal a pass gathers only when its situation needs it."""

    GATES = "gates"
    """Alarms, target health, HTTP checks (``ecsop.probes.health``)."""
    STOPPED_TASKS = "stopped_tasks"
    """The judged deployment's stopped tasks (ECS's reasons, ecsop's own failure count)."""
    ROLLOUT_FATE = "rollout_fate"
    """What became of a rollout ecsop no longer sees (the service deployments' history)."""
    TRAFFIC = "traffic"
    """Where a traffic-shifting rollout is: its stage, pauses, and the listener weights."""
    STEPS = "steps"
    """The release's steps: pre-deploy before a deploy, verify in the bake
    (``ecsop.decision.steps.query`` says which, if the spec has any)."""


JUDGED = frozenset({Situation.ROLLING_OUT, Situation.SUPERSEDED, Situation.BAKING})
"""Situations whose rollout is judged by every gate."""
IN_FLIGHT = JUDGED | {
    Situation.RESUMING_ROLLBACK,
    Situation.ECS_ROLLING_BACK,
    Situation.ROLLING_BACK,
}
"""Situations a removed release is still watched through before ecsop lets go."""


@dataclass(frozen=True)
class View:
    """One pass's reading of the observation: every role named once."""

    situation: Situation
    desired: Fingerprint
    memory: ServiceMemory
    last_good: TaskDefinitionArn | None
    """``memory.last_good`` if ecsop vouches for it, else None."""
    distrusted: str
    """Why a tagged last-good is not followed ("" when it is, or when there is none)."""
    primary: Deployment | None
    judged: Deployment | None
    """The deployment whose failure is judged or explained in this situation."""
    judged_fingerprint: Fingerprint
    running: TaskDefinition | None
    """The revision the service points at, as described this pass; None when ecsop's
    record settled the pass without describing it (``running_fingerprint`` still holds)."""
    running_fingerprint: Fingerprint
    shifts_traffic: bool = False
    """The service deploys with blue/green, canary or linear: ECS moves its traffic."""


def classify(release: ServiceRelease, observed: Observation, options: Options) -> View:
    """The situation of ``release`` in ``observed``."""
    service = observed.service
    memory = observed.memory
    desired = Fingerprint(release.fingerprint())
    trusted = memory.vouches_for_last_good(service.arn, release.name)
    last_good = memory.last_good if trusted else None
    distrusted = ""
    if memory.last_good is not None and not trusted:
        distrusted = (
            f"ecsop:last-good {short_name(memory.last_good)} was not written by ecsop for "
            "this service and release, so it is not followed"
        )
    running = observed.task_definitions.get(service.task_definition)
    primary = service.primary
    base = View(
        situation=Situation.SUSPENDED,
        desired=desired,
        memory=memory,
        last_good=last_good,
        distrusted=distrusted,
        primary=primary,
        judged=None,
        judged_fingerprint=Fingerprint(""),
        running=running,
        running_fingerprint=observed.running_fingerprint(release),
        shifts_traffic=service.strategy in ("BLUE_GREEN", "CANARY", "LINEAR"),
    )

    def view(situation: Situation, judged: Deployment | None = None, fp: str = "") -> View:
        return replace(base, situation=situation, judged=judged, judged_fingerprint=Fingerprint(fp))

    if release.spec.suspend:
        return view(Situation.SUSPENDED)
    if memory.writer and memory.writer != options.instance_id and observed.written_by_this_instance:
        return view(Situation.ANOTHER_INSTANCE)
    if primary is None:
        return view(Situation.NO_PRIMARY)
    if in_progress(service, primary):
        primary_td = observed.task_definitions.get(primary.task_definition)
        primary_fp = fingerprint_of(release, primary_td)
        if primary_fp == desired:
            failed = memory.failed
            if (
                failed is not None
                and failed.fingerprint == desired
                and release.spec.rollback.automatic
                and last_good
                and last_good != primary.task_definition
            ):
                return view(Situation.RESUMING_ROLLBACK, primary, desired)
            return view(Situation.ROLLING_OUT, primary, desired)
        ecs_failed = failed_ecs_deployment(observed, release, desired)
        if ecs_failed is not None:
            return view(Situation.ECS_ROLLING_BACK, ecs_failed, desired)
        if last_good and primary.task_definition == last_good and memory.failed:
            return view(Situation.ROLLING_BACK, primary, memory.failed.fingerprint)
        ours = RevisionMemory.read(primary_td.tags) if primary_td is not None else None
        if ours is not None and ours.release == release.name:
            return view(Situation.SUPERSEDED, primary, ours.fingerprint or primary_fp)
        return view(Situation.FOREIGN, primary)

    if running is not None and set(release.spec.containers) - set(running.images):
        return view(Situation.UNKNOWN_CONTAINER)
    if last_good is None:
        return view(Situation.FIRST_SIGHT)
    if base.running_fingerprint == desired:
        failed_desired = memory.failed is not None and memory.failed.fingerprint == desired
        if last_good == service.task_definition and not failed_desired:
            return view(Situation.SYNCED)
        return view(Situation.BAKING, primary, desired)
    if memory.failed is not None and memory.failed.fingerprint == desired:
        return view(Situation.FAILED_BEFORE)
    if memory.deploying == desired:
        return view(Situation.GONE_UNSEEN)
    on_ours = service.task_definition == last_good or (
        running is not None and RevisionMemory.read(running.tags).release == release.name
    )
    return view(Situation.OUT_OF_DATE if on_ours else Situation.DRIFTED)


def probes_for(view: View) -> frozenset[Probe]:
    """The signals this pass must gather before deciding: none while steady, but the
    release's steps before a deploy."""
    return _probes(view) | (
        {Probe.TRAFFIC} if view.shifts_traffic and view.situation in _MOVING else frozenset()
    )


_MOVING = {
    Situation.ROLLING_OUT,
    Situation.SUPERSEDED,
    Situation.RESUMING_ROLLBACK,
    Situation.ECS_ROLLING_BACK,
    Situation.ROLLING_BACK,
}
"""Situations where traffic may be moving: a rollout, or a rollback, under way."""


def _probes(view: View) -> frozenset[Probe]:
    if view.situation is Situation.BAKING:
        return frozenset({Probe.GATES, Probe.STOPPED_TASKS, Probe.STEPS})
    if view.situation in JUDGED:
        return frozenset({Probe.GATES, Probe.STOPPED_TASKS})
    if view.situation in (Situation.OUT_OF_DATE, Situation.DRIFTED):
        return frozenset({Probe.STEPS})
    if view.situation is Situation.ECS_ROLLING_BACK:
        failed = view.memory.failed
        recorded = failed is not None and failed.fingerprint == view.desired
        return frozenset() if recorded else frozenset({Probe.STOPPED_TASKS})
    if view.situation is Situation.GONE_UNSEEN:
        return frozenset({Probe.ROLLOUT_FATE})
    return frozenset()


def failed_ecs_deployment(
    observed: Observation, release: ServiceRelease, desired: Fingerprint
) -> Deployment | None:
    """An older deployment of the desired release that ECS marked FAILED."""
    for deployment in observed.service.deployments:
        if deployment.status is DeploymentStatus.PRIMARY:
            continue
        td = observed.task_definitions.get(deployment.task_definition)
        if (
            deployment.rollout_state is RolloutState.FAILED
            and fingerprint_of(release, td) == desired
        ):
            return deployment
    return None
