"""Decisions into notification events: what the recorder saw, told once.

``NotificationEmitter`` is the recorder's ``DecisionListener``. Events come
from the actions carried out, never from guesses about what ECS is doing:

| action | event |
|---|---|
| Deploy, carried out | deploy.started |
| RecordLastGood, reason Baked | deploy.succeeded |
| Rollback; RecordFailure rolled back by ECS | deploy.rolled_back |
| RecordFailure otherwise | deploy.failed |
| phase becomes Degraded, no deploy.* event told why | release.degraded |
| phase becomes Invalid | spec.invalid |
| back to Synced without a deploy, after Degraded or Invalid | release.recovered |

Each of these actions happens once per rollout: its record is written to AWS
as it happens, and the next pass sees the record, not the happening. So a
restarted daemon does not announce again what its predecessor announced; and
where an action does repeat after a crash (a rollback recorded but not yet
issued is issued again), the event's id, computed from AWS facts (the ECS
deployment id, the fingerprint, the failure), is the same, and receivers drop
it. Phase transitions are only announced when this process saw the phase
before: its first pass of a release (empty status after a restart) sets the
baseline silently instead of announcing an old Degraded again.

The commit of an outcome is the one whose deploy this process announced, else
``ecsop:commit`` on the revision ecsop registered for the rollout.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog

from ecsop.controller.executor import Applied
from ecsop.decision.actions import Action, Deploy, RecordFailure, RecordLastGood, Rollback
from ecsop.decision.ecs_state import TaskDefinitionArn
from ecsop.decision.memory import RevisionMemory
from ecsop.decision.observation import Observation, fingerprint_of
from ecsop.decision.reasons import Phase, Reason
from ecsop.notify.events import Event, EventType, Revision, event_id
from ecsop.spec.errors import SpecError
from ecsop.spec.loader import LoadedRelease

log = structlog.get_logger("ecsop.controller.notifications")

COMMITS_REMEMBERED = 10_000
"""(release, deployment) -> commit of the deploys this process announced."""


class NotificationEmitter:
    """Turns each recorded decision into at most a few events, and publishes them."""

    def __init__(
        self,
        publish: Callable[[Event], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._publish = publish
        self._clock = clock
        self._lock = threading.Lock()
        self._phases: dict[str, Phase] = {}
        """The phase each release had at its last decision in this process."""
        self._unrecovered: set[str] = set()
        """Releases seen Degraded or Invalid since they were last Synced or deployed."""
        self._commits: OrderedDict[tuple[str, str], str] = OrderedDict()

    # --- DecisionListener -----------------------------------------------------------

    def decided(
        self,
        loaded: LoadedRelease,
        commit: str | None,
        action: Action,
        observation: Observation | None,
        applied: Applied | None,
    ) -> None:
        if applied is not None and applied.dry_run:
            return
        try:
            self._decided(loaded, commit, action, observation, applied)
        except Exception:  # telling people must never fail the pass that acted
            log.exception("could not build notifications for a decision", release=loaded.name)

    def _decided(
        self,
        loaded: LoadedRelease,
        commit: str | None,
        action: Action,
        observation: Observation | None,
        applied: Applied | None,
    ) -> None:
        now = self._clock()
        outcome = None
        if observation is not None:
            outcome = _Outcome(loaded, commit or "", observation, now, self._commit).of(
                action, applied
            )
        events = [outcome] if outcome is not None else []
        if outcome is not None and outcome.type is EventType.DEPLOY_STARTED and outcome.commit:
            self._remember(loaded.name, outcome.deployment, outcome.commit)
        for kind in self._transition(loaded.name, action.phase, outcome):
            events.append(self._phase_event(kind, loaded, action, commit or "", now))
        for event in events:
            self._publish(event)

    def invalid(self, name: str, problems: Sequence[SpecError], commit: str | None) -> None:
        """A release with no valid spec at all (it never validated)."""
        message = str(problems[0]) if problems else "spec is invalid"
        for kind in self._transition(name, Phase.INVALID, None):
            self._publish(
                Event(
                    id=event_id(kind, name, commit or "", message),
                    type=kind,
                    time=self._clock(),
                    release=name,
                    labels={},
                    region="",
                    cluster="",
                    service="",
                    phase=Phase.INVALID.value,
                    reason=Reason.INVALID_SPEC.value,
                    message=message,
                    commit=commit or "",
                )
            )

    def forget(self, name: str) -> None:
        with self._lock:
            self._phases.pop(name, None)
            self._unrecovered.discard(name)

    # --- phases ---------------------------------------------------------------------

    def _transition(self, name: str, phase: Phase, outcome: Event | None) -> list[EventType]:
        """The phase events a decision calls for: Degraded, Invalid, recovered, or none."""
        with self._lock:
            before = self._phases.get(name)
            self._phases[name] = phase
            if outcome is not None and outcome.type is EventType.DEPLOY_STARTED:
                self._unrecovered.discard(name)  # the new rollout's outcome will tell
            if phase in (Phase.DEGRADED, Phase.INVALID):
                self._unrecovered.add(name)
                if before is None or before is phase or outcome is not None:
                    return []  # first sight in this process, no change, or already told
                if phase is Phase.INVALID:
                    return [EventType.SPEC_INVALID]
                if before is Phase.ROLLING_BACK:
                    return []  # the end of a rollback deploy.rolled_back announced
                return [EventType.RELEASE_DEGRADED]
            if phase is Phase.SYNCED and name in self._unrecovered:
                self._unrecovered.discard(name)
                if outcome is None:
                    return [EventType.RELEASE_RECOVERED]
            return []

    def _phase_event(
        self, kind: EventType, loaded: LoadedRelease, action: Action, commit: str, now: datetime
    ) -> Event:
        """release.degraded, release.recovered or spec.invalid: in-process transitions.

        Keyed by the transition's time (a new Degraded is a new event), except an
        invalid spec, keyed by the commit and the problem.
        """
        spec = loaded.release.spec
        invalid = kind is EventType.SPEC_INVALID
        facts = (commit, action.message) if invalid else (action.reason.value, now.isoformat())
        return Event(
            id=event_id(kind, loaded.name, *facts),
            type=kind,
            time=now,
            release=loaded.name,
            labels=dict(loaded.release.metadata.labels),
            region=loaded.region,
            cluster=spec.cluster,
            service=spec.service,
            phase=action.phase.value,
            reason=action.reason.value,
            message=action.message,
            commit=commit if invalid else "",
        )

    # --- commits --------------------------------------------------------------------

    def _remember(self, release: str, deployment: str, commit: str) -> None:
        with self._lock:
            self._commits[(release, deployment)] = commit
            while len(self._commits) > COMMITS_REMEMBERED:
                self._commits.popitem(last=False)

    def _commit(self, release: str, deployment: str) -> str:
        with self._lock:
            return self._commits.get((release, deployment), "")


class _Outcome:
    """The deploy.* event of one carried-out action, with its revisions and commit."""

    def __init__(
        self,
        loaded: LoadedRelease,
        commit: str,
        observation: Observation,
        now: datetime,
        announced: Callable[[str, str], str],
    ) -> None:
        self.loaded = loaded
        self.commit = commit
        self.observation = observation
        self.now = now
        self.announced = announced

    def of(self, action: Action, applied: Applied | None) -> Event | None:
        service = self.observation.service
        if isinstance(action, Deploy) and applied is not None:
            deployment = applied.deployment_id
            target = Revision(
                applied.task_definition or "", action.fingerprint, dict(action.images)
            )
            return self._event(
                EventType.DEPLOY_STARTED,
                action,
                (deployment or applied.task_definition or "",),
                deployment=deployment,
                commit=self.commit,
                source=self._revision(service.task_definition),
                target=target,
            )
        if isinstance(action, Rollback):
            failed = self._failed_revision(action.deployment_id, action.failed_fingerprint)
            return self._event(
                EventType.DEPLOY_ROLLED_BACK,
                action,
                (action.failed_fingerprint, action.failure.value, action.deployment_id),
                deployment=action.deployment_id,
                commit=self._commit_of(action.deployment_id, failed),
                source=failed,
                target=self._revision(action.to),
                failure=(action.failure.value, action.detail, action.stop_reason, "ecsop"),
            )
        if isinstance(action, RecordFailure):
            failed = self._failed_revision(action.deployment_id, action.failed_fingerprint)
            by_ecs = action.rolled_back_by_ecs
            where = action.deployment_id or self._history_arn(action.failed_fingerprint)
            return self._event(
                EventType.DEPLOY_ROLLED_BACK if by_ecs else EventType.DEPLOY_FAILED,
                action,
                (action.failed_fingerprint, action.failure.value, where),
                deployment=action.deployment_id,
                commit=self._commit_of(action.deployment_id, failed),
                source=failed,
                target=self._revision(service.task_definition) if by_ecs else None,
                failure=(
                    action.failure.value,
                    action.detail,
                    action.stop_reason,
                    "ecs" if by_ecs else "",
                ),
            )
        if isinstance(action, RecordLastGood) and action.reason is Reason.BAKED:
            primary = service.primary
            deployment = primary.id if primary is not None else ""
            proven = self._revision(action.task_definition)
            before = self.observation.memory.last_good
            return self._event(
                EventType.DEPLOY_SUCCEEDED,
                action,
                (action.task_definition, deployment),
                deployment=deployment,
                commit=self._commit_of(deployment, proven),
                source=self._revision(before)
                if before and before != action.task_definition
                else None,
                target=proven,
            )
        return None

    def _event(
        self,
        kind: EventType,
        action: Action,
        facts: tuple[str, ...],
        *,
        deployment: str,
        commit: str,
        source: Revision | None,
        target: Revision | None,
        failure: tuple[str, str, str, str] = ("", "", "", ""),
    ) -> Event:
        spec = self.loaded.release.spec
        reason, detail, stop_reason, by = failure
        return Event(
            id=event_id(kind, self.loaded.name, *facts),
            type=kind,
            time=self.now,
            release=self.loaded.name,
            labels=dict(self.loaded.release.metadata.labels),
            region=self.loaded.region,
            cluster=spec.cluster,
            service=spec.service,
            phase=action.phase.value,
            reason=action.reason.value,
            message=action.message,
            commit=commit,
            deployment=deployment,
            source=source,
            target=target,
            failure=reason,
            detail=detail,
            stop_reason=stop_reason,
            rolled_back_by=by,
        )

    def _revision(self, arn: str) -> Revision:
        release = self.loaded.release
        td = self.observation.task_definitions.get(TaskDefinitionArn(arn))
        if td is None:
            return Revision(task_definition=arn)
        images = {name: td.images[name] for name in release.spec.containers if name in td.images}
        return Revision(arn, fingerprint_of(release, td), images)

    def _failed_revision(self, deployment_id: str, fingerprint: str) -> Revision:
        """The revision of the failed rollout: its deployment's, else one with its fingerprint."""
        service = self.observation.service
        for deployment in service.deployments:
            if deployment.id == deployment_id:
                return self._revision(deployment.task_definition)
        for arn, td in self.observation.task_definitions.items():
            if fingerprint_of(self.loaded.release, td) == fingerprint:
                return self._revision(arn)
        return Revision(fingerprint=fingerprint)

    def _history_arn(self, fingerprint: str) -> str:
        """The service deployment of ``fingerprint`` in ECS's history, when it was read."""
        for record in self.observation.history or ():
            td = self.observation.task_definitions.get(record.target_task_definition)
            if fingerprint_of(self.loaded.release, td) == fingerprint:
                return record.arn
        return ""

    def _commit_of(self, deployment: str, revision: Revision) -> str:
        """The deploy's commit as announced here, else ``ecsop:commit`` of its revision."""
        announced = self.announced(self.loaded.name, deployment) if deployment else ""
        if announced:
            return announced
        td = self.observation.task_definitions.get(TaskDefinitionArn(revision.task_definition))
        if td is None:
            return ""
        memory = RevisionMemory.read(td.tags)
        return memory.commit if memory.release == self.loaded.name else ""
