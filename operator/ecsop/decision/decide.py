"""The reconcile decision: (release, observed service, recorded history, now) -> one action.

This is the whole of ecsop's judgement, and it is a pure function: no I/O, no
clock reads, no globals. Everything it knows arrives as frozen values (the
observation, with ecsop's memory read from its tags, the probes' signals, and
how the release stands in the spec directory), so the same inputs always give
the same decision, every branch is a table-driven unit test, and a daemon
killed at any instant resumes correctly.

It classifies first (``situation.classify``: one ``View`` naming every role),
then dispatches on the situation; ``docs/design.md`` ("The reconcile
decision") walks through every branch. Last, the spec's own state applies:
an invalid spec never deploys, and a removed release is watched until its
rollout in flight has finished, then let go.

Callers: ``ecsop.controller.reconciler.ReleaseReconciler`` (the daemon's
passes and ``ecsop plan`` alike).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from ecsop.decision import candidate, gates, rollback, steps, strategy
from ecsop.decision.actions import (
    Action,
    Continue,
    Deploy,
    ForgetRollout,
    LetGo,
    RecordFailure,
    RecordLastGood,
    Revert,
    RunStep,
    Wait,
)
from ecsop.decision.ecs_state import RolloutState, short_name
from ecsop.decision.fate import Fate, fate_of
from ecsop.decision.gates import Verdict
from ecsop.decision.memory import (
    MAX_TAGS,
    SERVICE_KEYS,
    proof_tags,
    room_for_memory,
    user_tag_count,
)
from ecsop.decision.observation import Observation, Options, SpecState, Traffic, fingerprint_of
from ecsop.decision.reasons import Failure, Phase, Reason
from ecsop.decision.release_flow import hold as release_flow
from ecsop.decision.rollback import FailedRollout
from ecsop.decision.situation import IN_FLIGHT, Situation, View, classify
from ecsop.spec.model import ServiceRelease


def decide(
    release: ServiceRelease,
    observed: Observation,
    now: datetime,
    options: Options,
    spec: SpecState | None = None,
) -> Action:
    """Choose the one action this pass takes for ``release``."""
    view = classify(release, observed, options)
    pass_ = _Pass(release, observed, view, now, options)
    action = _BRANCHES[view.situation](pass_)
    return _as_the_spec_stands(action, view, spec or SpecState())


class _Pass:
    """The inputs of one decision, so each branch reads them by name."""

    def __init__(
        self,
        release: ServiceRelease,
        observed: Observation,
        view: View,
        now: datetime,
        options: Options,
    ) -> None:
        self.release = release
        self.observed = observed
        self.view = view
        self.now = now
        self.options = options
        self.poll = options.active_poll_seconds
        self.memory = view.memory.stamped(release.name, options.instance_id)
        """The memory any record of this pass is built on."""


# --- in progress -----------------------------------------------------------------------


def _rolling_out(p: _Pass) -> Action:
    deployment, traffic = p.view.judged, p.observed.traffic
    assert deployment is not None
    if traffic is not None and traffic.rolling_back:
        return _traffic_returning(p, traffic)
    waits = strategy.waits_seconds(p.release.spec.rollout.strategy, p.observed.service)
    verdict = gates.rollout_failure(p.release, p.observed, deployment, p.now, waits)
    if verdict is None and strategy.paused_for_test_traffic(p.release, traffic):
        assert traffic is not None and traffic.paused is not None
        judged = strategy.judge_test_traffic(p.release, p.observed)
        if isinstance(judged, Verdict):
            verdict = judged
        elif judged:
            return Continue(
                Phase.PROGRESSING,
                Reason.TEST_TRAFFIC_PASSED,
                f"rolling out {p.view.desired}: every test-traffic check passed on green; "
                "ECS may move production traffic",
                p.poll,
                service_deployment=traffic.service_deployment,
                hook_id=traffic.paused.hook_id,
            )
    if verdict is not None:
        failed = FailedRollout(p.view.desired, verdict, deployment.id)
        return rollback.on_failure(p.release, p.view, failed, p.memory, p.poll, traffic)
    age = int(gates.age(deployment, p.now))
    where = strategy.progress(p.release, p.observed, p.now)
    return Wait(
        Phase.PROGRESSING,
        Reason.ROLLOUT_IN_PROGRESS,
        f"rolling out {p.view.desired}: "
        + (f"{where}; " if where else "")
        + f"{deployment.running_count}/{deployment.desired_count} running, "
        f"{deployment.failed_tasks} failed, {age}s of "
        f"{p.release.spec.rollout.timeout_seconds + int(waits)}s",
        p.poll,
    )


def _traffic_returning(p: _Pass, traffic: Traffic) -> Action:
    """ECS is rolling the service deployment back (asked by ecsop, or on its own): wait.

    Between StopServiceDeployment and ECS making blue the PRIMARY again, the
    deployments still look like a rollout; acting on them would start a second
    deployment.
    """
    where = traffic.production_on_green
    share = f"{where:g}% of production still on green" if where else "production back on blue"
    return Wait(
        Phase.ROLLING_BACK,
        Reason.ROLLING_BACK,
        f"ECS is rolling the service deployment back ({traffic.status}): {share}",
        p.poll,
    )


def _resuming_rollback(p: _Pass) -> Action:
    # We recorded the failure but did not get to UpdateService (crash,
    # throttling): finish the rollback without judging health again.
    recorded = p.view.memory.failed
    assert recorded is not None and p.view.judged is not None
    traffic = p.observed.traffic
    if traffic is not None and traffic.rolling_back:
        # Issued: ECS shows ROLLBACK_REQUESTED until its scheduler acts on the stop,
        # while the deployments still look like the rollout. A second stop is a second
        # request for what is already under way.
        return _traffic_returning(p, traffic)
    verdict = Verdict(recorded.failure, "resuming a rollback that was recorded but not yet issued")
    failed = FailedRollout(p.view.desired, verdict, p.view.judged.id)
    return rollback.roll_back(p.view, failed, p.memory, p.poll, p.observed.traffic)


def _ecs_rolling_back(p: _Pass) -> Action:
    deployment = p.view.judged
    assert deployment is not None
    recorded = p.view.memory.failed
    if recorded is not None and recorded.fingerprint == p.view.desired:
        detail = deployment.rollout_state_reason or "ECS circuit breaker failed the deployment"
        return Wait(
            Phase.ROLLING_BACK,
            Reason.ECS_ROLLING_BACK,
            f"ECS is rolling back {p.view.desired}: {detail}",
            p.poll,
        )
    verdict = gates.explained(
        gates.ecs_failure(p.observed, deployment, Failure.ECS_ROLLBACK), p.release, p.observed
    )
    return RecordFailure(
        Phase.ROLLING_BACK,
        Reason.ECS_ROLLING_BACK,
        f"ECS is rolling back {p.view.desired}: {verdict.detail}",
        p.poll,
        failed_fingerprint=p.view.desired,
        failure=verdict.failure,
        detail=verdict.detail,
        memory=p.memory.failed_with(p.view.desired, verdict.failure),
        deployment_id=deployment.id,
        stop_reason=verdict.stop_reason,
        rolled_back_by_ecs=True,
    )


def _rolling_back(p: _Pass) -> Action:
    primary, recorded = p.view.judged, p.view.memory.failed
    assert primary is not None and recorded is not None and p.view.last_good is not None
    rollout = p.release.spec.rollout
    if (
        primary.rollout_state is RolloutState.FAILED
        or primary.failed_tasks > rollout.max_failed_tasks
        or gates.age(primary, p.now) > rollout.timeout_seconds
    ):
        return rollback.rollback_failed(p.view, primary, p.memory, p.poll)
    return Wait(
        Phase.ROLLING_BACK,
        Reason.ROLLING_BACK,
        f"rolling back to {short_name(p.view.last_good)} after {recorded.failure.value} of "
        f"{recorded.fingerprint}: {primary.running_count}/{primary.desired_count} running",
        p.poll,
    )


def _superseded(p: _Pass) -> Action:
    # ecsop's own earlier rollout, superseded by a spec change. It is judged
    # like any of ours: a fix pushed while the previous release crash-loops
    # must not wait forever behind it. Healthy, it finishes first: one change
    # at a time.
    deployment, traffic = p.view.judged, p.observed.traffic
    assert deployment is not None
    if traffic is not None and traffic.rolling_back:
        return _traffic_returning(p, traffic)
    last_good = p.view.last_good
    if last_good is not None and p.observed.task_definitions.get(last_good) is not None and (
        fingerprint_of(p.release, p.observed.task_definitions[last_good]) == p.view.desired
    ):
        # The spec went back to last-good while this rollout runs: a revert
        # means "go back now", not "finish, then deploy back".
        return Revert(
            Phase.ROLLING_BACK,
            Reason.REVERTING,
            f"the spec went back to {short_name(last_good)} while {p.view.judged_fingerprint} "
            "rolls out: stopping that rollout now (not a failure of it)",
            p.poll,
            to=last_good,
            memory=p.memory.without_rollout(),
            service_deployment=traffic.service_deployment if traffic and traffic.ongoing else "",
        )
    waits = strategy.waits_seconds(p.release.spec.rollout.strategy, p.observed.service)
    verdict = gates.rollout_failure(p.release, p.observed, deployment, p.now, waits)
    if verdict is not None:
        failed = FailedRollout(p.view.judged_fingerprint, verdict, deployment.id)
        return rollback.on_failure(p.release, p.view, failed, p.memory, p.poll, traffic)
    return Wait(
        Phase.PROGRESSING,
        Reason.ROLLOUT_IN_PROGRESS,
        f"finishing the rollout of {p.view.judged_fingerprint} before deploying {p.view.desired}",
        p.poll,
    )


def _foreign(p: _Pass) -> Action:
    primary = p.view.primary
    assert primary is not None
    what = f"deployment {primary.id} ({short_name(primary.task_definition)})"
    if gates.age(primary, p.now) > p.release.spec.rollout.timeout_seconds:
        return Wait(
            Phase.DEGRADED,
            Reason.FOREIGN_DEPLOYMENT,
            f"{what}, not started by ecsop for this spec, has not settled after "
            f"{int(gates.age(primary, p.now))}s",
            p.poll,
        )
    return Wait(
        Phase.PROGRESSING,
        Reason.FOREIGN_DEPLOYMENT,
        f"waiting for {what}, not started by ecsop for this spec, to settle",
        p.poll,
    )


def _no_primary(p: _Pass) -> Action:
    # ECS always has a PRIMARY; treat its absence as a transient read.
    return Wait(
        Phase.PROGRESSING,
        Reason.FOREIGN_DEPLOYMENT,
        "service has no PRIMARY deployment yet",
        p.poll,
    )


# --- steady ----------------------------------------------------------------------------


def _unknown_container(p: _Pass) -> Action:
    running = p.view.running
    assert running is not None
    unknown = sorted(set(p.release.spec.containers) - set(running.images))
    return Wait(
        Phase.INVALID,
        Reason.UNKNOWN_CONTAINER,
        f"spec.containers names {', '.join(unknown)}, not in the service's task definition "
        f"{short_name(running.arn)} (containers: {', '.join(sorted(running.images))})",
        None,
    )


def _first_sight(p: _Pass) -> Action:
    service = p.observed.service
    blocked = _memory_blocked(p)
    if blocked is not None:
        return blocked
    why = f" ({p.view.distrusted})" if p.view.distrusted else ""
    memory = p.memory.proven(service.arn, p.release.name, service.task_definition)
    if p.view.running_fingerprint == p.view.desired:
        failed = p.view.memory.failed
        if failed is not None and failed.fingerprint == p.view.desired:
            memory = memory.without_failure()
        return RecordLastGood(
            Phase.SYNCED,
            Reason.ADOPTED,
            f"first sight of the service, already running {p.view.desired}: adopted as "
            f"last-good{why}",
            None,
            task_definition=service.task_definition,
            memory=memory,
        )
    return RecordLastGood(
        Phase.PROGRESSING,
        Reason.ADOPTED,
        f"first sight of the service: adopting {short_name(service.task_definition)} as "
        f"last-good{why}",
        0,
        task_definition=service.task_definition,
        memory=memory,
    )


def _synced(p: _Pass) -> Action:
    return Wait(Phase.SYNCED, Reason.IN_SYNC, f"running {p.view.desired}", None)


def _baking(p: _Pass) -> Action:
    primary, service = p.view.judged, p.observed.service
    assert primary is not None
    verdict = gates.bake_failure(p.release, p.observed, primary)
    if verdict is not None and p.view.last_good != service.task_definition:
        failed = FailedRollout(p.view.desired, verdict, primary.id)
        return rollback.on_failure(p.release, p.view, failed, p.memory, p.poll)
    rollout = p.release.spec.rollout
    if primary.running_count == 0 or service.desired_count == 0:
        # A revision that never ran a task has proven nothing.
        return Wait(
            Phase.PROGRESSING,
            Reason.AWAITING_TASKS,
            f"running {p.view.desired} with no task (desiredCount {service.desired_count}): "
            "not proven until tasks run healthy for the bake",
            None,
        )
    if primary.running_count < primary.desired_count:
        return Wait(
            Phase.PROGRESSING,
            Reason.BAKING,
            f"running {p.view.desired}; {primary.running_count}/{primary.desired_count} tasks "
            "running, the bake starts when all are",
            p.poll,
        )
    verifying = steps.during_bake(p.release, p.observed, p.view, p.memory, p.now, p.poll)
    if verifying is not None:
        return verifying
    baked = (p.now - primary.updated_at).total_seconds()
    if baked < rollout.bake_seconds:
        remaining = rollout.bake_seconds - baked
        return Wait(
            Phase.PROGRESSING,
            Reason.BAKING,
            f"running {p.view.desired}; baking, {int(remaining)}s of {rollout.bake_seconds}s left",
            min(p.poll, max(remaining, 0.1)),
        )
    if p.observed.health.unknown:
        # Every gate must be seen green before the release is called good.
        return Wait(
            Phase.PROGRESSING,
            Reason.BAKING,
            f"running {p.view.desired}; baked, waiting to judge {p.observed.health.unknown[0]}",
            p.poll,
        )
    memory = p.memory.proven(service.arn, p.release.name, service.task_definition)
    recorded = p.view.memory.failed
    if recorded is not None and recorded.fingerprint == p.view.desired:
        memory = memory.without_failure()
    return RecordLastGood(
        Phase.SYNCED,
        Reason.BAKED,
        f"running {p.view.desired}; healthy for {rollout.bake_seconds}s, recorded as last-good",
        None,
        task_definition=service.task_definition,
        memory=memory,
        proof=proof_tags(p.release.name, service.task_definition),
    )


def _failed_before(p: _Pass) -> Action:
    failed = p.view.memory.failed
    assert failed is not None
    if failed.failure is Failure.ROLLBACK_FAILED:
        reason, what = Reason.ROLLBACK_FAILED, "its rollback failed too"
    else:
        reason, what = Reason.RELEASE_FAILED, f"it failed ({failed.failure.value})"
    return Wait(
        Phase.DEGRADED,
        reason,
        f"release {p.view.desired} is not deployed again: {what}; change the spec or run "
        f"`ecsop retry {p.release.name}`",
        None,
    )


def _gone_unseen(p: _Pass) -> Action:
    fate = fate_of(p.release, p.observed, p.view)
    if fate.fate is Fate.REPLACED:
        return ForgetRollout(
            Phase.PROGRESSING,
            Reason.FOREIGN_DEPLOYMENT,
            f"the rollout of {p.view.desired} was {fate.detail}: someone else's deployment, "
            "not a failure of the release",
            0,
            memory=p.memory.without_rollout(),
        )
    by_ecs = fate.fate is Fate.ROLLED_BACK_BY_ECS
    if by_ecs:
        detail = (
            f"ecsop deployed it and ECS rolled it back while ecsop was not looking ({fate.detail})"
        )
    else:
        detail = (
            f"ecsop deployed it, it never became last-good, and {fate.detail}: "
            "returned to last-good by ecsop before a restart, or by a person"
        )
    return RecordFailure(
        Phase.DEGRADED,
        Reason.RELEASE_FAILED,
        f"release {p.view.desired} failed: {detail}",
        p.poll,
        failed_fingerprint=p.view.desired,
        failure=Failure.ECS_ROLLBACK,
        detail=detail,
        memory=p.memory.failed_with(p.view.desired, Failure.ECS_ROLLBACK),
        rolled_back_by_ecs=by_ecs,
        counted=by_ecs,
    )


def _out_of_date(p: _Pass) -> Action:
    return _deploy(p, Reason.DEPLOYING)


def _drifted(p: _Pass) -> Action:
    if p.options.self_heal:
        return _deploy(p, Reason.SELF_HEAL)
    return Wait(
        Phase.DEGRADED,
        Reason.DRIFTED,
        f"service runs {short_name(p.observed.service.task_definition)}, changed outside "
        "ecsop; self-heal is off, so it is reported only",
        None,
    )


def _another_instance(p: _Pass) -> Action:
    return Wait(
        Phase.DEGRADED,
        Reason.ANOTHER_INSTANCE,
        f"ecsop instance {p.view.memory.writer} wrote this service's memory after this "
        f"instance ({p.options.instance_id}) did: two instances act on it, so this one "
        "refuses to; run a single replica (or --coordination) and restart it",
        None,
    )


def _suspended(p: _Pass) -> Action:
    return Wait(Phase.SUSPENDED, Reason.SUSPENDED, "spec.suspend is true: observing only", None)


def _deploy(p: _Pass, reason: Reason) -> Action:
    blocked = _memory_blocked(p) or _unsupported(p) or _held(p, reason)
    if blocked is not None:
        return blocked
    return _deploy_action(p, reason)


def _deploy_action(p: _Pass, reason: Reason) -> Deploy:
    service = p.observed.service
    verb = "self-healing drift" if reason is Reason.SELF_HEAL else "deploying"
    source = candidate.clone_source(p.release, p.observed, p.view)
    return Deploy(
        Phase.PROGRESSING,
        reason,
        f"{verb}: {short_name(service.task_definition)} -> {p.view.desired}",
        p.poll,
        fingerprint=p.view.desired,
        images=dict(p.release.spec.containers),
        base=source.base,
        memory=p.memory.rolling_out(p.view.desired),
        reuse=source.reuse,
        deployment_configuration=strategy.configuration(p.release, service),
    )


def _unsupported(p: _Pass) -> Action | None:
    """A strategy the service cannot run is a clear error, never a half-done deploy."""
    why = strategy.problem(p.release, p.observed.service)
    if why is None:
        return None
    return Wait(Phase.INVALID, Reason.STRATEGY_UNSUPPORTED, f"not deploying: {why}", None)


def _held(p: _Pass, reason: Reason) -> Action | None:
    """What must pass before a deploy of a new release starts, in this order.

    Each check is a module of its own and answers a ``Wait`` naming what it
    waits for, or None. Only new releases are held: this function is not on
    the path of rollbacks, which are never held.

    - ``release_flow.held``: pre-flight (images exist, the execution role
      exists), promotion, ordering (``dependsOn``), approval, deploy windows;
    - then ``steps.before_deploy``: every pre-deploy step (migrations) succeeded
      on the revision the deploy will point the service at. Last, so a
      migration never runs for a deploy that something else still holds.
    """
    held = release_flow.held(
        p.release, p.observed, p.view, p.now, self_heal=reason is Reason.SELF_HEAL
    )
    if held is not None:
        return held
    return steps.before_deploy(
        p.release, p.observed, p.view, p.now, p.poll, _deploy_action(p, reason)
    )


def _memory_blocked(p: _Pass) -> Action | None:
    """Nothing new is deployed (or adopted) while ecsop cannot keep its memory.

    Without the rollout record, a release ECS rolls back while ecsop is not
    looking would be deployed again, in a loop; rollbacks still happen.
    """
    tags = p.observed.service.tags
    if room_for_memory(tags) and p.observed.unwritten is None:
        return None
    if p.observed.unwritten is not None:
        why = "ecsop could not write its memory to the service's tags (see the log)"
    else:
        used = user_tag_count(tags)
        why = (
            f"the service has {used} tags of ECS's {MAX_TAGS}; ecsop needs "
            f"{len(SERVICE_KEYS)} ({', '.join(SERVICE_KEYS)}): remove "
            f"{used + len(SERVICE_KEYS) - MAX_TAGS}"
        )
    return Wait(
        Phase.DEGRADED,
        Reason.MEMORY_UNAVAILABLE,
        f"not deploying {p.view.desired}: {why}; rollbacks still happen",
        None,
    )


_BRANCHES: dict[Situation, Callable[[_Pass], Action]] = {
    Situation.SUSPENDED: _suspended,
    Situation.ANOTHER_INSTANCE: _another_instance,
    Situation.NO_PRIMARY: _no_primary,
    Situation.ROLLING_OUT: _rolling_out,
    Situation.RESUMING_ROLLBACK: _resuming_rollback,
    Situation.ECS_ROLLING_BACK: _ecs_rolling_back,
    Situation.ROLLING_BACK: _rolling_back,
    Situation.SUPERSEDED: _superseded,
    Situation.FOREIGN: _foreign,
    Situation.UNKNOWN_CONTAINER: _unknown_container,
    Situation.FIRST_SIGHT: _first_sight,
    Situation.BAKING: _baking,
    Situation.SYNCED: _synced,
    Situation.FAILED_BEFORE: _failed_before,
    Situation.GONE_UNSEEN: _gone_unseen,
    Situation.OUT_OF_DATE: _out_of_date,
    Situation.DRIFTED: _drifted,
}


# --- the spec's own state --------------------------------------------------------------


def _as_the_spec_stands(action: Action, view: View, spec: SpecState) -> Action:
    """An invalid spec never deploys; a removed release is let go once nothing is in flight."""
    if spec.removed:
        if view.situation in IN_FLIGHT:
            note = "release removed from the spec directory; finishing its rollout first: "
            return replace(action, message=note + action.message)
        if view.situation is Situation.ANOTHER_INSTANCE:
            return action
        return LetGo(
            Phase.PROGRESSING,
            Reason.REMOVED,
            "release removed from the spec directory: no longer managed"
            + ("" if spec.claimed_elsewhere else "; ecsop's tags are removed from the service"),
            None,
            untag=not spec.claimed_elsewhere,
        )
    if not spec.problems:
        return action
    problem = spec.problems[0]
    if isinstance(action, Deploy | RunStep):
        return Wait(
            Phase.INVALID, Reason.INVALID_SPEC, f"spec is invalid, not deploying: {problem}", None
        )
    if isinstance(action, Wait) and action.phase in (Phase.SYNCED, Phase.PROGRESSING):
        return Wait(
            Phase.INVALID,
            Reason.INVALID_SPEC,
            f"spec is invalid (last valid spec still watched): {problem}",
            action.requeue_after,
        )
    if action.phase in (Phase.SYNCED, Phase.PROGRESSING):
        return replace(action, phase=Phase.INVALID, message=f"{action.message}; spec is invalid")
    return action
