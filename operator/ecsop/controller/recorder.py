"""Telling people what each decision was: status, metrics and one log line.

The controller decides and acts; this module is where the outcome becomes
visible. Kept apart so the control loop reads as a loop, and so the rules
that operators rely on live in one place:

- One log line per decision, not per poll: a ``Wait`` is logged only when
  the phase or reason changes, every other action always.
- Counters move once per event, never per pass: a rollback increments
  ``ecsop_rollbacks_total`` on the pass that issues it, a success when the
  release is recorded as last-good after baking (not when adopted).
- ``synced`` is true only when the service has settled on the desired
  fingerprint, not as soon as UpdateService points it there.

A ``DecisionListener`` (``ecsop.controller.notifications``) hears every
decision after it is recorded: notifications come from decisions, not polls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Protocol

import structlog

from ecsop.aws.clients import AwsError
from ecsop.controller.executor import Applied
from ecsop.controller.restore import RestoreClock
from ecsop.decision.actions import (
    Action,
    RecordFailure,
    RecordLastGood,
    RecordStep,
    Rollback,
    RunStep,
    StepRunning,
    StopStep,
    Wait,
)
from ecsop.decision.ecs_state import ServiceState
from ecsop.decision.observation import Observation, in_progress
from ecsop.decision.reasons import Outcome, Phase, Reason
from ecsop.observability.metrics import Metrics
from ecsop.observability.status import (
    AnalysisStatus,
    ReleaseStatus,
    Rollout,
    RolloutProgress,
    StatusStore,
    StepStatus,
)
from ecsop.spec.errors import SpecError
from ecsop.spec.loader import LoadedRelease

log = structlog.get_logger("ecsop.controller.manager")


class DecisionListener(Protocol):
    """Hears each decision once the recorder has recorded it (never a dry run's)."""

    def decided(
        self,
        loaded: LoadedRelease,
        commit: str | None,
        action: Action,
        observation: Observation | None,
        applied: Applied | None,
    ) -> None: ...

    def invalid(self, name: str, problems: Sequence[SpecError], commit: str | None) -> None: ...

    def forget(self, name: str) -> None: ...


class DecisionRecorder:
    """Writes each reconcile's outcome to the status store, the metrics and the log."""

    def __init__(
        self,
        statuses: StatusStore,
        metrics: Metrics,
        clock: Callable[[], datetime],
        listener: DecisionListener | None = None,
    ) -> None:
        self.statuses = statuses
        self.metrics = metrics
        self._clock = clock
        self._restores = RestoreClock()
        self._listener = listener

    def decided(
        self,
        loaded: LoadedRelease,
        commit: str | None,
        action: Action,
        observation: Observation | None,
        applied: Applied | None = None,
        now: datetime | None = None,
    ) -> None:
        """A pass ended in ``action``, carried out as ``applied``; ``now`` is AWS's time."""
        if applied is not None and applied.memory_error:
            self.metrics.memory_write_failures.labels(loaded.name).inc()
            action = replace(
                action,
                phase=Phase.DEGRADED,
                reason=Reason.MEMORY_UNAVAILABLE,
                message=f"{action.message}; but ecsop could not record it on the service "
                f"({applied.memory_error}): kept in this process only",
            )
        if observation is not None:
            self._count(loaded.name, action, observation, now or self._clock())
            self._progress(loaded.name, action, observation, now or self._clock())
        spec = loaded.release.spec
        service: ServiceState | None = observation.service if observation else None
        memory = observation.memory if observation else None
        desired_fp = loaded.release.fingerprint()
        running_fp = observation.running_fingerprint(loaded.release) if observation else ""
        running_images = observation.running_images(loaded.release) if observation else None
        previous = self.statuses.get(loaded.name)
        last_rollout = _rollout_of(action, self._clock())
        if last_rollout is None and previous is not None:
            last_rollout = previous.last_rollout
        analysis = previous.analysis if previous is not None else ()
        if observation is not None and observation.health.analyses:
            analysis = tuple(AnalysisStatus.of(a) for a in observation.health.analyses)
        deployment_id = (applied.deployment_id if applied else "") or (
            service.primary.id if service and service.primary else ""
        )
        status = ReleaseStatus(
            name=loaded.name,
            region=loaded.region,
            cluster=spec.cluster,
            service=spec.service,
            file=loaded.file,
            commit=commit,
            phase=action.phase,
            reason=action.reason.value,
            message=action.message,
            desired_fingerprint=desired_fp,
            desired_images=dict(spec.containers),
            running_fingerprint=running_fp,
            running_images=dict(running_images or {}),
            running_task_definition=service.task_definition if service else "",
            deployment_id=deployment_id,
            last_good=memory.last_good or "" if memory else "",
            failed_fingerprint=memory.failed.fingerprint if memory and memory.failed else "",
            failed_reason=memory.failed.failure.value if memory and memory.failed else "",
            last_rollout=last_rollout,
            rollout=_progress_of(observation),
            analysis=analysis,
            step=_step_of(action, applied),
        )
        self.statuses.put(status, self._clock())
        self.metrics.known_steps(
            loaded.name,
            [("pre_deploy", step.name) for step in spec.pre_deploy]
            + [("verify", step.name) for step in spec.verify],
        )
        self.metrics.set_release(
            loaded.name,
            spec.cluster,
            spec.service,
            loaded.region,
            action.phase,
            _settled(service) and bool(running_fp) and running_fp == desired_fp,
        )
        self.metrics.set_held(loaded.name, action.reason.value)
        changed = previous is None or (previous.phase, previous.reason) != (
            action.phase,
            action.reason.value,
        )
        failure: dict[str, str] = {}
        if isinstance(action, Rollback | RecordFailure):
            failure = {
                "failure": action.failure.value,
                "stop_reason": action.stop_reason,
                "failed_deployment": action.deployment_id,
            }
        failure |= _step_fields(action, applied)
        if changed or not isinstance(action, Wait):
            log.info(
                action.message,
                release=loaded.name,
                cluster=spec.cluster,
                service=spec.service,
                fingerprint=desired_fp,
                commit=commit,
                deployment=deployment_id,
                action=type(action).__name__,
                reason=action.reason.value,
                phase=action.phase.value,
                task_definition=applied.task_definition if applied else None,
                **failure,
            )
        if self._listener is not None:
            self._listener.decided(loaded, commit, action, observation, applied)

    def _progress(
        self, name: str, action: Action, observation: Observation, now: datetime
    ) -> None:
        """Where a traffic-shifting rollout is, and how long production took to be restored."""
        traffic = observation.traffic
        moving = traffic is not None and (traffic.ongoing or traffic.rolling_back)
        self.metrics.set_rollout(
            name,
            traffic.strategy if traffic else "",
            traffic.stage if traffic and moving else "",
            traffic.production_on_green if traffic else None,
        )
        restored = self._restores.passed(name, action, observation, now)
        if restored is not None:
            seconds, strategy = restored
            self.metrics.time_to_restore.labels(name, strategy).observe(seconds)
            log.info(
                f"production traffic back on last-good {seconds:.1f}s after the failure was seen",
                release=name,
                strategy=strategy,
                restore_seconds=round(seconds, 1),
            )

    def invalid(self, name: str, problems: Sequence[SpecError], commit: str | None) -> None:
        """``name``'s spec is invalid and there is no valid spec of it to keep watching."""
        first = problems[0]
        status = ReleaseStatus(
            name=name,
            region="",
            cluster="",
            service="",
            file=first.file,
            commit=commit,
            phase=Phase.INVALID,
            reason=Reason.INVALID_SPEC.value,
            message=str(first),
        )
        previous = self.statuses.get(name)
        self.statuses.put(status, self._clock())
        self.metrics.set_release(name, "", "", "", Phase.INVALID, False)
        if previous is None or previous.phase is not Phase.INVALID:
            log.warning(
                "release spec is invalid",
                release=name,
                error=str(first),
                action="Wait",
                reason=Reason.INVALID_SPEC.value,
            )
        if self._listener is not None:
            self._listener.invalid(name, problems, commit)

    def failed(
        self, name: str, loaded: LoadedRelease | None, exc: Exception, commit: str | None
    ) -> None:
        """A pass raised: the release is Degraded with the error, logged once per message."""
        code = exc.code if isinstance(exc, AwsError) else type(exc).__name__
        message = exc.message if isinstance(exc, AwsError) else str(exc)
        previous = self.statuses.get(name)
        text = f"{code}: {message}"
        if previous is None or previous.message != text:
            log.error(
                "reconcile failed",
                release=name,
                error_code=code,
                error=message,
                action="Error",
                reason=code,
                exc_info=not isinstance(exc, AwsError),
            )
        if loaded is None:
            return
        spec = loaded.release.spec
        base = previous or ReleaseStatus(
            name=name,
            region=loaded.region,
            cluster=spec.cluster,
            service=spec.service,
            file=loaded.file,
            commit=commit,
            phase=Phase.DEGRADED,
            reason=code,
            message=text,
        )
        self.statuses.put(
            replace(base, phase=Phase.DEGRADED, reason=code, message=text), self._clock()
        )
        self.metrics.set_release(
            name, spec.cluster, spec.service, loaded.region, Phase.DEGRADED, False
        )

    def forget(self, name: str) -> None:
        """``name`` left the spec directory: no status, no per-release series."""
        self.statuses.remove(name)
        self.metrics.forget_release(name)
        self._restores.forget(name)
        if self._listener is not None:
            self._listener.forget(name)
        log.info(
            "release left the spec directory; no longer managed (nothing is deleted)",
            release=name,
        )

    def _count(self, name: str, action: Action, observation: Observation, now: datetime) -> None:
        if isinstance(action, RecordStep | StopStep):
            self._count_step(name, action)
        if isinstance(action, Rollback):
            self.metrics.deployments.labels(name, Outcome.ROLLED_BACK).inc()
            self.metrics.rollbacks.labels(name, action.failure.value).inc()
        elif isinstance(action, RecordFailure) and action.counted:
            if action.rolled_back_by_ecs:
                self.metrics.deployments.labels(name, Outcome.ROLLED_BACK).inc()
                self.metrics.rollbacks.labels(name, action.failure.value).inc()
            else:
                self.metrics.deployments.labels(name, Outcome.FAILED).inc()
        elif isinstance(action, RecordLastGood) and action.reason is Reason.BAKED:
            primary = observation.service.primary
            self.metrics.deployments.labels(name, Outcome.SUCCEEDED).inc()
            if primary is not None:
                self.metrics.deployment_duration.labels(name).observe(
                    max(0.0, (now - primary.created_at).total_seconds())
                )
            self.metrics.last_success.labels(name).set(time.time())


    def _count_step(self, name: str, action: RecordStep | StopStep) -> None:
        if isinstance(action, StopStep):
            if action.record is None:
                return  # stopping again a task whose failure was counted
            outcome = "timeout"
        else:
            outcome = action.outcome
        self.metrics.steps.labels(name, action.kind, action.step, outcome).inc()
        if isinstance(action, RecordStep) and action.duration_seconds is not None:
            self.metrics.step_duration.labels(name, action.kind, action.step).observe(
                action.duration_seconds
            )


def _step_of(action: Action, applied: Applied | None) -> StepStatus | None:
    """The step running now, for ``/status``."""
    if isinstance(action, StepRunning):
        return StepStatus(
            action.step, action.kind, action.task, action.elapsed_seconds, action.timeout_seconds
        )
    if isinstance(action, RunStep) and applied is not None and not applied.dry_run:
        return StepStatus(action.step, action.kind, applied.step_task, 0, action.timeout_seconds)
    return None


def _step_fields(action: Action, applied: Applied | None) -> dict[str, str]:
    """The log line's step fields: which step, which kind, which task."""
    if isinstance(action, StepRunning):
        return {"step": action.step, "step_kind": action.kind, "task": action.task}
    if isinstance(action, RunStep):
        task = applied.step_task if applied else ""
        return {"step": action.step, "step_kind": action.kind, "task": task}
    if isinstance(action, RecordStep):
        record = action.record
        return {
            "step": action.step,
            "step_kind": action.kind,
            "task": record.task,
            "outcome": action.outcome,
        }
    if isinstance(action, StopStep):
        return {"step": action.step, "step_kind": action.kind, "task": action.task_arn}
    return {}


def _rollout_of(action: Action, now: datetime) -> Rollout | None:
    if isinstance(action, Rollback):
        return Rollout(
            Outcome.ROLLED_BACK, action.failure.value, action.detail, now, action.stop_reason
        )
    if isinstance(action, RecordFailure):
        outcome = Outcome.ROLLED_BACK if action.rolled_back_by_ecs else Outcome.FAILED
        return Rollout(outcome, action.failure.value, action.detail, now, action.stop_reason)
    if isinstance(action, RecordLastGood) and action.reason is Reason.BAKED:
        return Rollout(Outcome.SUCCEEDED, "baked", action.message, now)
    return None


def _settled(service: ServiceState | None) -> bool:
    """One deployment and it is not rolling out: what runs is what the service says.

    ECS points ``service.taskDefinition`` at the new revision as soon as
    UpdateService returns, so "synced" must also wait for the rollout to end.
    """
    return (
        service is not None
        and len(service.deployments) == 1
        and not in_progress(service, service.deployments[0])
    )


def _progress_of(observation: Observation | None) -> RolloutProgress | None:
    traffic = observation.traffic if observation else None
    if traffic is None or not (traffic.ongoing or traffic.rolling_back):
        return None
    return RolloutProgress(
        strategy=traffic.strategy,
        stage=traffic.stage,
        status=traffic.status,
        production_on_green=traffic.production_on_green,
        test_on_green=traffic.test_on_green,
        paused=traffic.paused is not None,
    )
