"""The branches of ``decide`` while a deployment is in flight: judge it, or wait for it.

A rollout of ecsop's own is judged every pass (gates, test traffic, analysis)
and rolled back when a verdict fails; a rollback, ECS's own or ecsop's, is
waited for and declared failed when it cannot finish; a deployment someone
else started is waited for, never fought. None of these branches starts a new
release: that is ``deploying``.
"""

from __future__ import annotations

from ecsop.decision import gates, rollback, strategy
from ecsop.decision.actions import Action, Continue, RecordFailure, Revert, Wait
from ecsop.decision.ecs_state import Deployment, Fingerprint, RolloutState, short_name
from ecsop.decision.gates import Verdict
from ecsop.decision.observation import Traffic, fingerprint_of
from ecsop.decision.pass_inputs import PassInputs
from ecsop.decision.reasons import Failure, Phase, Reason
from ecsop.decision.rollback import FailedRollout


def rolling_out(p: PassInputs) -> Action:
    deployment, traffic = p.view.judged, p.observed.traffic
    assert deployment is not None
    if traffic is not None and traffic.rolling_back:
        return traffic_returning(p, traffic)
    acted, waits, left_to_ecs = _judged(p, deployment, p.view.desired)
    if acted is not None:
        return acted
    age = int(gates.age(deployment, p.now))
    where = strategy.progress(p.release, p.observed, p.now)
    where = _joined(where, left_to_ecs)
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


def _judged(
    p: PassInputs, deployment: Deployment, rollout: Fingerprint
) -> tuple[Action | None, float, str]:
    """Every gate on ``deployment``, the rollout of ``rollout``: a Continue at ecsop's
    test-traffic pause or a rollback on failure (None while it goes on), the waits the
    strategy adds to its timeout, and what is left to ECS (for the message)."""
    traffic = p.observed.traffic
    waits = strategy.waits_seconds(p.release.spec.rollout.strategy, p.observed.service)
    verdict = _unless_cleaning_up(
        gates.rollout_failure(p.release, p.observed, deployment, p.now, waits), traffic
    )
    left_to_ecs = gates.left_to_ecs(p.observed, deployment, p.now)
    judged = _at_test_traffic_pause(p, verdict, left_to_ecs, rollout)
    if isinstance(judged, Continue):
        return judged, waits, left_to_ecs
    if judged is not None:
        failed = FailedRollout(rollout, judged, deployment.id)
        acted = rollback.on_failure(p.release, p.view, failed, p.memory, p.poll, traffic)
        return acted, waits, left_to_ecs
    return None, waits, left_to_ecs


def _unless_cleaning_up(verdict: Verdict | None, traffic: Traffic | None) -> Verdict | None:
    """``verdict``, but no timeout while ECS scales blue in (CLEAN_UP, every production
    request on green, which passed every bake): blue's tasks drain and stop, and a
    rollback would send production back to a blue that may have no task left."""
    if (
        verdict is not None
        and verdict.failure is Failure.TIMEOUT
        and traffic is not None
        and traffic.stage == "CLEAN_UP"
        and traffic.production_on_green == 100.0
        and not traffic.rolling_back
    ):
        return None
    return verdict


def _at_test_traffic_pause(
    p: PassInputs, verdict: Verdict | None, left_to_ecs: str, rollout: str
) -> Verdict | Continue | None:
    """``verdict``, or, with no gate failing while ECS waits at ecsop's test-traffic
    pause, what the test traffic says: a failure, or a Continue once every check passed."""
    traffic = p.observed.traffic
    if (
        verdict is not None
        or left_to_ecs  # an alarm is firing: production traffic stays on blue
        or not strategy.paused_for_test_traffic(p.release, traffic)
    ):
        return verdict
    assert traffic is not None and traffic.paused is not None
    judged = strategy.judge_test_traffic(p.release, p.observed)
    if isinstance(judged, Verdict):
        return judged
    if not judged:
        return None
    return Continue(
        Phase.PROGRESSING,
        Reason.TEST_TRAFFIC_PASSED,
        f"rolling out {rollout}: every test-traffic check passed on green; "
        "ECS may move production traffic",
        p.poll,
        service_deployment=traffic.service_deployment,
        hook_id=traffic.paused.hook_id,
    )


def traffic_returning(p: PassInputs, traffic: Traffic) -> Action:
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


def resuming_rollback(p: PassInputs) -> Action:
    # We recorded the failure but did not get to UpdateService (crash,
    # throttling): finish the rollback without judging health again.
    recorded = p.view.memory.failed
    assert recorded is not None and p.view.judged is not None
    traffic = p.observed.traffic
    if traffic is not None and traffic.rolling_back:
        # Issued: ECS shows ROLLBACK_REQUESTED until its scheduler acts on the stop,
        # while the deployments still look like the rollout. A second stop is a second
        # request for what is already under way.
        return traffic_returning(p, traffic)
    verdict = Verdict(recorded.failure, "resuming a rollback that was recorded but not yet issued")
    failed = FailedRollout(p.view.desired, verdict, p.view.judged.id)
    return rollback.roll_back(p.view, failed, p.memory, p.poll, p.observed.traffic)


def ecs_rolling_back(p: PassInputs) -> Action:
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


def rolling_back(p: PassInputs) -> Action:
    primary, recorded = p.view.judged, p.view.memory.failed
    assert primary is not None and recorded is not None and p.view.last_good is not None
    rollout = p.release.spec.rollout
    traffic = p.observed.traffic
    # ECS returning traffic within its service deployment makes blue PRIMARY again with
    # its own creation time (its deploy, maybe days ago): that age says nothing about
    # this rollback. ECS bounds it itself (ROLLBACK_FAILED); ecsop bounds each of its
    # stages by timeoutSeconds too, so a rollback held at a hook says so in time.
    returning = traffic is not None and traffic.rolling_back
    stuck = (
        returning
        and traffic is not None
        and traffic.stage_since is not None
        and (p.now - traffic.stage_since).total_seconds() > rollout.timeout_seconds
    )
    if (
        primary.rollout_state is RolloutState.FAILED
        or primary.failed_tasks > rollout.max_failed_tasks
        or (traffic is not None and traffic.status == "ROLLBACK_FAILED")
        or stuck
        or (not returning and gates.age(primary, p.now) > rollout.timeout_seconds)
    ):
        return rollback.rollback_failed(p.view, primary, p.memory, p.poll)
    if returning:
        assert traffic is not None
        return traffic_returning(p, traffic)
    return Wait(
        Phase.ROLLING_BACK,
        Reason.ROLLING_BACK,
        f"rolling back to {short_name(p.view.last_good)} after {recorded.failure.value} of "
        f"{recorded.fingerprint}: {primary.running_count}/{primary.desired_count} running",
        p.poll,
    )


def superseded(p: PassInputs) -> Action:
    # ecsop's own earlier rollout, superseded by a spec change. It is judged
    # like any of ours: a fix pushed while the previous release crash-loops
    # must not wait forever behind it. Healthy, it finishes first: one change
    # at a time.
    deployment, traffic = p.view.judged, p.observed.traffic
    assert deployment is not None
    if traffic is not None and traffic.rolling_back:
        return traffic_returning(p, traffic)
    last_good = p.view.last_good
    if (
        last_good is not None
        and p.observed.task_definitions.get(last_good) is not None
        and (fingerprint_of(p.release, p.observed.task_definitions[last_good]) == p.view.desired)
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
    # At the test-traffic pause nobody but ecsop lets green go on: judged, not left waiting.
    acted, _, left_to_ecs = _judged(p, deployment, p.view.judged_fingerprint)
    if acted is not None:
        return acted
    message = (
        f"finishing the rollout of {p.view.judged_fingerprint} before deploying {p.view.desired}"
    )
    return Wait(
        Phase.PROGRESSING, Reason.ROLLOUT_IN_PROGRESS, _joined(message, left_to_ecs), p.poll
    )


def foreign(p: PassInputs) -> Action:
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


def no_primary(p: PassInputs) -> Action:
    # ECS always has a PRIMARY; treat its absence as a transient read.
    return Wait(
        Phase.PROGRESSING,
        Reason.FOREIGN_DEPLOYMENT,
        "service has no PRIMARY deployment yet",
        p.poll,
    )


def _joined(*parts: str) -> str:
    """The non-empty parts of a status message, in order."""
    return "; ".join(part for part in parts if part)
