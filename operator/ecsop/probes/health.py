"""Health gates beyond the ECS deployment: target health, CloudWatch alarms, HTTP checks.

A rollout ECS calls COMPLETED can still be broken: its tasks pass their
container health checks but not the load balancer's, a 5xx alarm fires, a
smoke test fails. ``HealthProber.probe`` reads those signals into the
decision's ``Health`` value. The reconcile pass calls it only when the
situation judges a rollout (``ecsop.decision.situation.probes_for``), so a
Synced release costs no health call at all, and calls ``idle`` otherwise,
which stops that release's HTTP checks.

- Target health: the judged deployment's RUNNING tasks are resolved to
  their registrations (ENI addresses for ``ip`` targets, instance id and host
  port for ``instance`` targets) through ``EcsGateway.deployment_targets``,
  and looked up with one DescribeTargetHealth per target group of the
  service. Tasks still inside the service's health check grace period are not
  judged: ECS ignores their ELB health then, and so does ecsop.
- Alarms: one DescribeAlarms per 100 names, the spec's ``rollout.alarms``
  and the service's ``deploymentConfiguration.alarms``. The state is read on
  every pass (every few seconds during rollout and bake), and an alarm stays
  in ALARM at least one evaluation period, so one in ALARM is seen. A spec
  alarm that does not exist (a typo, the wrong region) is an unknown gate:
  it never passes for green, so the release is not recorded as last-good
  and status says which alarm is missing.
- HTTP checks: run by ``ecsop.http_checks.HttpProbes`` on a scheduler thread
  and a thread pool of their own, each request time-boxed by its
  ``timeoutSeconds``; a pass only reads the latest results, so a slow
  endpoint never holds a reconcile worker.
- Analyses (``rollout.analysis``): run by ``ecsop.probes.analysis.AnalysisProbes``
  the same way; a failing one fails the rollout, one not green is unknown.

AWS clients come from ``ecsop.aws.ClientFactory``; AWS failures are caught
per gate and reported as ``Health.unknown`` (they fail nothing, but hold back
last-good), so a missing IAM permission shows in status instead of stalling
the rollout's other judgements.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

from ecsop.aws import clients as aws
from ecsop.decision import analysis as analysis_gates
from ecsop.decision.ecs_state import Deployment, ServiceState, TaskTarget
from ecsop.decision.gates import target_health_enabled
from ecsop.decision.observation import (
    Health,
    Observation,
    TestTraffic,
    Traffic,
    fingerprint_of,
)
from ecsop.probes import http_checks
from ecsop.probes.analysis import AnalysisProbes, AnalysisSettings
from ecsop.probes.traffic import ServiceDeployments, read_traffic
from ecsop.spec.model import ServiceRelease

log = structlog.get_logger("ecsop.probes.health")

ClientFor = Callable[[str, str | None, str | None], Any]
"""(service name, region, role ARN) -> boto3 client: ``ClientFactory.client``."""

TEST_TRAFFIC_SUFFIX = "#test-traffic"
"""HTTP checks of a release's test traffic run under its name with this suffix."""
DESCRIBE_ALARMS_BATCH = 100
"""CloudWatch's maximum number of AlarmNames per DescribeAlarms call."""


class TargetSource(Protocol):
    """The part of ``ecsop.ecs.EcsGateway`` target health needs."""

    def deployment_targets(self, cluster: str, deployment_id: str) -> list[TaskTarget]: ...


@dataclass(frozen=True)
class HealthSettings:
    http_workers: int = 8
    """HTTP checks in flight at once, across every release (their own pool)."""
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    """Analysis gates: the default Prometheus, its credentials, their own pool."""


class HealthProber:
    """Reads every health gate of one release, on demand, for the controller."""

    def __init__(
        self,
        clients: ClientFor,
        settings: HealthSettings | None = None,
        http: http_checks.HttpProbes | None = None,
        analysis: AnalysisProbes | None = None,
    ) -> None:
        self._clients = clients
        self.http = http or http_checks.HttpProbes((settings or HealthSettings()).http_workers)
        self.analysis = analysis or AnalysisProbes(clients, (settings or HealthSettings()).analysis)
        self._lock = threading.Lock()
        self._errors: dict[str, tuple[str, ...]] = {}

    def probe(
        self,
        name: str,
        region: str,
        release: ServiceRelease,
        observed: Observation,
        targets: TargetSource,
        now: datetime,
        deployment: Deployment,
    ) -> Health:
        """The health of ``deployment``, ``release``'s rollout (or bake), as of this pass."""
        service = observed.service
        primary = deployment
        role = release.spec.role_arn
        # Gates that could not be read (logged); pending HTTP checks are not errors.
        unreadable: list[str] = []
        firing: tuple[str, ...] = ()
        firing_since: dict[str, datetime] = {}
        names = list(dict.fromkeys([*release.spec.rollout.alarms, *service.alarm_names]))
        if names:
            try:
                states = alarm_states(self._clients("cloudwatch", region, role), names)
            except aws.AwsError as exc:
                unreadable.append(f"alarms ({exc.code}: {exc.message})")
            else:
                firing = tuple(name for name in names if name in states and states[name].firing)
                firing_since = {
                    name: since for name in firing if (since := states[name].since) is not None
                }
                unreadable.extend(
                    f"alarm {name} (no such CloudWatch alarm in {region})"
                    for name in release.spec.rollout.alarms
                    if name not in states
                )
        unhealthy, detail = 0, ""
        if (
            primary is not None
            and service.load_balancers
            and target_health_enabled(release, service)
        ):
            try:
                unhealthy, detail = unhealthy_targets(
                    self._clients("elbv2", region, role), targets, service, primary, now
                )
            except aws.AwsError as exc:
                unreadable.append(f"target health ({exc.code}: {exc.message})")
        checks = release.spec.rollout.http_checks
        failing: tuple[str, ...] = ()
        pending: tuple[str, ...] = ()
        if checks and primary is not None:
            failing, pending = self.http.watch(
                name, f"{release.fingerprint()}:{primary.id}", checks
            )
        analyses: tuple[analysis_gates.AnalysisState, ...] = ()
        if release.spec.rollout.analysis:
            task_definition = observed.task_definitions.get(deployment.task_definition)
            judged = fingerprint_of(release, task_definition) or release.fingerprint()
            analyses = self.analysis.watch(
                name,
                f"{judged}:{deployment.id}",
                release.spec.rollout.analysis,
                analysis_gates.placeholder_values(release, region, observed, deployment),
                region,
                role,
                now,
                since=deployment.created_at,
            )
        else:
            self.analysis.forget(name)  # none (any more): stop measuring what was removed
        self._note_errors(name, tuple(unreadable))
        return Health(
            alarms_in_alarm=firing,
            alarms_firing_since=firing_since,
            unhealthy_targets=unhealthy,
            failing_http_checks=failing,
            target_detail=detail,
            unknown=(
                *unreadable,
                *(http_checks.pending_wording(item) for item in pending),
                *(f"analysis {a.name} ({a.unknown})" for a in analyses if a.unknown),
            ),
            analyses=analyses,
        )

    def traffic(
        self, region: str, role: str | None, deployments: ServiceDeployments, service: ServiceState
    ) -> Traffic | None:
        """Where ``service``'s traffic-shifting rollout is (``ecsop.probes.traffic``)."""
        try:
            return read_traffic(self._clients("elbv2", region, role), deployments, service)
        except aws.AwsError as exc:
            log.warning(
                "could not read the service deployment's traffic",
                service=service.arn,
                error=f"{exc.code}: {exc.message}",
            )
            return None

    def test_traffic(self, name: str, release: ServiceRelease, traffic: Traffic) -> TestTraffic:
        """Run (or go on running) the blue/green test-traffic checks of ``traffic``'s pause."""
        strategy = release.spec.rollout.strategy
        assert strategy is not None and strategy.blue_green is not None
        test = strategy.blue_green.test_traffic
        assert test is not None
        key = f"{name}{TEST_TRAFFIC_SUFFIX}"
        failing, pending = self.http.watch(key, traffic.service_deployment, test.http_checks)
        return TestTraffic(
            passes=self.http.passes(key),
            failing=failing,
            unknown=tuple(http_checks.pending_wording(item) for item in pending),
        )

    def idle(self, name: str) -> None:
        """``name`` is not rolling out or baking: stop its HTTP checks and analyses."""
        self.http.forget(name)
        self.http.forget(f"{name}{TEST_TRAFFIC_SUFFIX}")
        self.analysis.forget(name)
        with self._lock:
            self._errors.pop(name, None)

    def close(self) -> None:
        self.http.close()
        self.analysis.close()

    def _note_errors(self, name: str, errors: tuple[str, ...]) -> None:
        """Log gate errors once per change, not on every pass."""
        with self._lock:
            before = self._errors.get(name, ())
            self._errors[name] = errors
        if errors and errors != before:
            log.warning("health gate could not be judged", release=name, errors=list(errors))


@dataclass(frozen=True)
class AlarmState:
    """One alarm's ``StateValue`` and when it last changed (CloudWatch's clock)."""

    value: str
    """``OK``, ``ALARM`` or ``INSUFFICIENT_DATA``."""
    since: datetime | None = None
    """``StateTransitionedTimestamp`` ("the date and time that the alarm's StateValue
    most recently changed", CloudWatch API Reference, MetricAlarm), else
    ``StateUpdatedTimestamp``, which also moves when only the evaluation state
    does: never earlier than the transition, so a grace measured from it can
    end later (CloudWatch answers both; the fallback is for older endpoints)."""

    @property
    def firing(self) -> bool:
        return self.value == "ALARM"


def alarm_states(cloudwatch: Any, names: Sequence[str]) -> dict[str, AlarmState]:
    """The state of each alarm among ``names``.

    Metric and composite alarms alike. A name missing from the result has no
    alarm: the caller decides whether that matters (a spec alarm with a typo
    must not pass as green; a service's own deployment alarm is ECS's to judge).
    """
    states: dict[str, AlarmState] = {}
    for start in range(0, len(names), DESCRIBE_ALARMS_BATCH):
        request: dict[str, Any] = {
            "AlarmNames": list(names[start : start + DESCRIBE_ALARMS_BATCH]),
            "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
        }
        while True:
            with aws.translated_errors("DescribeAlarms"):
                page = cloudwatch.describe_alarms(**request)
            for alarm in [*page.get("MetricAlarms", ()), *page.get("CompositeAlarms", ())]:
                since = alarm.get("StateTransitionedTimestamp") or alarm.get(
                    "StateUpdatedTimestamp"
                )
                states[str(alarm["AlarmName"])] = AlarmState(
                    str(alarm.get("StateValue", "")), since if isinstance(since, datetime) else None
                )
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]
    return states


def unhealthy_targets(
    elbv2: Any,
    tasks: TargetSource,
    service: ServiceState,
    primary: Deployment,
    now: datetime,
) -> tuple[int, str]:
    """How many of ``primary``'s task registrations are ``unhealthy``, and the first's reason."""
    grace = service.health_check_grace_seconds
    judged = [
        t
        for t in tasks.deployment_targets(service.cluster, primary.id)
        if not (grace and t.started_at and (now - t.started_at).total_seconds() < grace)
    ]
    if not judged:
        return 0, ""
    ips = {ip for task in judged for ip in task.ips}
    count, detail = 0, ""
    for balancer in service.load_balancers:
        ports = {
            (task.instance_id, task.host_ports[key])
            for task in judged
            for key in [(balancer.container_name, balancer.container_port)]
            if task.instance_id and key in task.host_ports
        }
        # A traffic-shifting strategy registers the new tasks in whichever of the
        # two target groups serves no production traffic: both are read.
        groups = [g for g in (balancer.target_group_arn, balancer.alternate_target_group_arn) if g]
        descriptions: list[dict[str, Any]] = []
        for group in groups:
            with aws.translated_errors("DescribeTargetHealth"):
                found = elbv2.describe_target_health(TargetGroupArn=group)
            descriptions.extend(found.get("TargetHealthDescriptions") or ())
        for description in descriptions:
            target, health = description.get("Target") or {}, description.get("TargetHealth") or {}
            ours = target.get("Id") in ips or (target.get("Id"), target.get("Port")) in ports
            if ours and health.get("State") == "unhealthy":
                count += 1
                detail = detail or " ".join(
                    str(p) for p in (health.get("Reason"), health.get("Description")) if p
                )
    return count, detail
