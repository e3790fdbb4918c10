"""One reconcile pass for one release: observe, probe, decide, execute, record.

``ReleaseReconciler`` is the only path from AWS to a decision. The daemon runs
it with ``AwsExecutor`` and the status/metrics recorder; ``ecsop plan`` runs the
very same object with ``DryRunExecutor`` and a recorder that prints, so a dry
run and the real run cannot disagree about what they saw or what they chose.

- **Observe**: the service (a batched answer from ``ServiceCache`` if one is
  waiting and current, else one DescribeServices), the task definitions its
  deployments and last-good reference (cached: immutable), and what this
  process wrote or could not write (``WriteLog``).
- **Probe**: only the signals the situation needs (``situation.probes_for``):
  gates while a rollout is judged, the judged deployment's stopped tasks, the
  service deployment history when a rollout of ecsop's has vanished, the
  release's steps before a deploy or in the bake (``step_probe``).
- **Decide**: ``ecsop.decision.decide``, pure.
- **Execute**: the executor, with the service cache told before and after each
  write, so no later pass acts on an observation older than the write.
- **Record**: status, metrics and one log line (``ecsop.controller.recorder``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import structlog

from ecsop.aws.clients import AwsError
from ecsop.aws.ecs import EcsGateway
from ecsop.aws.service_cache import GatewayFor, ServiceCache
from ecsop.controller import revision_reads, step_probe
from ecsop.controller.executor import Applied, Executor, WriteLog
from ecsop.controller.flow import FlowContext, FlowGatherer
from ecsop.decision import strategy
from ecsop.decision.actions import STEP_ACTIONS, Action, Deploy, LetGo, Wait
from ecsop.decision.decide import decide
from ecsop.decision.ecs_state import (
    Deployment,
    ServiceMissing,
    ServiceState,
)
from ecsop.decision.observation import Observation, Options, SpecState
from ecsop.decision.reasons import Phase, Reason
from ecsop.decision.situation import Probe, classify, probes_for
from ecsop.probes.health import HealthProber
from ecsop.spec.loader import LoadedRelease

log = structlog.get_logger("ecsop.controller.reconciler")


@dataclass(frozen=True)
class ReleaseTarget:
    """What a pass reconciles: a release's (last valid) spec and how it stands."""

    loaded: LoadedRelease
    commit: str | None
    spec: SpecState = field(default_factory=SpecState)
    context: FlowContext | None = None
    """The rest of the spec directory, for the release-flow checks (``controller.flow``)."""
    writer: str | None = None
    """``writer=`` for this pass's memory (a replica and its fencing token); None: the
    daemon's instance id."""


@dataclass(frozen=True)
class PassResult:
    action: Action
    applied: Applied
    observation: Observation | None


class Recorder(Protocol):
    """Where a pass's outcome goes: the daemon's status and metrics, or plan's output."""

    def decided(
        self,
        loaded: LoadedRelease,
        commit: str | None,
        action: Action,
        observation: Observation | None,
        applied: Applied | None = None,
        now: datetime | None = None,
    ) -> None: ...


class ReleaseReconciler:
    def __init__(
        self,
        cache: ServiceCache,
        gateway_for: GatewayFor,
        executor: Executor,
        recorder: Recorder,
        options: Options,
        *,
        prober: HealthProber | None = None,
        write_log: WriteLog | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        flow: FlowGatherer | None = None,
    ) -> None:
        self.cache = cache
        self._gateway_for = gateway_for
        self._executor = executor
        self._recorder = recorder
        self._options = options
        self._prober = prober
        self._write_log = write_log or WriteLog()
        self._clock = clock
        self._flow = flow

    def reconcile(self, target: ReleaseTarget) -> PassResult:
        """One pass; raises AWS errors (the caller backs off and retries)."""
        loaded = target.loaded
        gateway = self._gateway_for(loaded.region, loaded.release.spec.role_arn)
        state = self.cache.observe(loaded)
        if isinstance(state, ServiceMissing):
            return self._missing(target, state)
        self._executor.flush(gateway, state)
        options = self._options
        if target.writer is not None:
            options = replace(options, instance_id=target.writer)
        observation = self._observe(gateway, loaded, state, options)
        now = state.observed_at or self._clock()
        view = classify(loaded.release, observation, options)
        probes = probes_for(view)
        observation = self._probe(loaded, gateway, observation, view.judged, probes, now)
        if Probe.STEPS in probes:
            observation = step_probe.read(
                loaded, gateway, observation, view, options, target.commit, now
            )
        if self._flow is not None:
            observation = self._flow.gather(loaded, target.context, observation, view)
        action = decide(loaded.release, observation, now, options, target.spec)
        if self._prober is not None and (
            Probe.GATES not in probes or not isinstance(action, (Wait, Deploy, *STEP_ACTIONS))
        ):
            self._prober.idle(loaded.name)  # nothing judged, or judged: the gates are done
        writes = not isinstance(action, Wait)
        if writes:
            self.cache.wrote(loaded)
        try:
            applied = self._executor.execute(action, gateway, state, loaded.name, target.commit)
        finally:
            if writes:
                self.cache.wrote(loaded)
        self._recorder.decided(loaded, target.commit, action, observation, applied, now)
        return PassResult(action, applied, observation)

    def _missing(self, target: ReleaseTarget, state: ServiceMissing) -> PassResult:
        action: Action
        if target.spec.removed:
            action = LetGo(
                Phase.PROGRESSING,
                Reason.REMOVED,
                "release removed from the spec directory; its service is gone too",
                None,
                untag=False,
            )
        else:
            action = Wait(
                Phase.DEGRADED,
                Reason.SERVICE_NOT_FOUND,
                f"service {state.cluster}/{state.name} not found: {state.reason}",
                None,
            )
        self._recorder.decided(target.loaded, target.commit, action, None)
        return PassResult(action, Applied(), None)

    def _observe(
        self, gateway: EcsGateway, loaded: LoadedRelease, state: ServiceState, options: Options
    ) -> Observation:
        """The service, the revisions the decision may need, and this process's records."""
        unwritten = self._write_log.unwritten(state.arn)
        observation = Observation(service=state, task_definitions={}, unwritten=unwritten)
        written = self._write_log.written(state.arn, observation.memory.writer)
        observation = replace(observation, written_by_this_instance=written)
        return revision_reads.read(gateway, loaded.release, observation, options)

    def _probe(
        self,
        loaded: LoadedRelease,
        gateway: EcsGateway,
        observation: Observation,
        judged: Deployment | None,
        probes: frozenset[Probe],
        now: datetime,
    ) -> Observation:
        state = observation.service
        if Probe.TRAFFIC in probes and self._prober is not None:
            role = loaded.release.spec.role_arn
            traffic = self._prober.traffic(loaded.region, role, gateway, state)
            observation = replace(observation, traffic=traffic)
        if Probe.GATES in probes and self._prober is not None and judged is not None:
            health = self._prober.probe(
                loaded.name, loaded.region, loaded.release, observation, gateway, now, judged
            )
            traffic = observation.traffic
            if traffic is not None and strategy.paused_for_test_traffic(loaded.release, traffic):
                tested = self._prober.test_traffic(loaded.name, loaded.release, traffic)
                health = replace(health, test_traffic=tested)
            observation = replace(observation, health=health)
        if Probe.STOPPED_TASKS in probes and judged is not None:
            try:
                stopped = gateway.stopped_tasks(state.cluster, judged.id)
            except AwsError as error:
                log.warning(
                    "could not read stopped tasks",
                    release=loaded.name,
                    deployment=judged.id,
                    error=f"{error.code}: {error.message}",
                )
            else:
                observation = replace(observation, stopped=stopped)
        if Probe.ROLLOUT_FATE in probes:
            history = gateway.service_deployments(state.cluster, state.name)
            if history:
                targets = {record.target_task_definition for record in history}
                revisions = revision_reads.described(gateway, set(), targets)
                observation = replace(
                    observation,
                    history=history,
                    task_definitions={**observation.task_definitions, **revisions},
                )
        return observation
