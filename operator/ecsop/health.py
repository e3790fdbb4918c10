"""Health gates beyond the ECS deployment: target health, CloudWatch alarms, HTTP checks.

A rollout ECS calls COMPLETED can still be broken: its tasks pass their
container health checks but not the load balancer's, a 5xx alarm fires, a
smoke test fails. ``HealthProber.probe`` reads those signals into the
reconciler's ``Health`` value. The controller calls it only for a release
that is rolling out or baking (``gates.needs_health``), so a Synced
release costs no health call at all, and calls ``idle`` otherwise, which
stops that release's HTTP checks.

- Target health: the PRIMARY deployment's RUNNING tasks are resolved to
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
- HTTP checks: run by ``HttpProbes`` on a scheduler thread and a thread pool
  of their own, each request time-boxed by its ``timeoutSeconds``; a pass
  only reads the latest results, so a slow endpoint never holds a reconcile
  worker.

AWS clients come from ``ecsop.aws.ClientFactory``; AWS failures are caught
per gate and reported as ``Health.unknown`` (they fail nothing, but hold back
last-good), so a missing IAM permission shows in status instead of stalling
the rollout's other judgements.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import structlog

from ecsop import __version__, aws, failures
from ecsop.actions import RecordFailure, Rollback
from ecsop.gates import target_health_enabled
from ecsop.observation import Health, Observation
from ecsop.observed import Deployment, ServiceState, TaskTarget
from ecsop.spec import HttpCheck, ServiceRelease

log = structlog.get_logger("ecsop.health")

ClientFor = Callable[[str, str | None, str | None], Any]
"""(service name, region, role ARN) -> boto3 client: ``ClientFactory.client``."""

DESCRIBE_ALARMS_BATCH = 100
"""CloudWatch's maximum number of AlarmNames per DescribeAlarms call."""
USER_AGENT = f"ecsop/{__version__} (http-check)"


class TargetSource(Protocol):
    """The part of ``ecsop.ecs.EcsGateway`` target health needs."""

    def deployment_targets(self, cluster: str, deployment_id: str) -> list[TaskTarget]: ...


class StoppedTasks(Protocol):
    """The part of ``ecsop.ecs.EcsGateway`` that explains failures."""

    def stopped_task_reasons(
        self, cluster: str, deployment_id: str, limit: int = 10
    ) -> list[str]: ...


_Failed = TypeVar("_Failed", bound=Rollback | RecordFailure)


@dataclass(frozen=True)
class HealthSettings:
    http_workers: int = 8
    """HTTP checks in flight at once, across every release (their own pool)."""


class HealthProber:
    """Reads every health gate of one release, on demand, for the controller."""

    def __init__(
        self,
        clients: ClientFor,
        settings: HealthSettings | None = None,
        http: HttpProbes | None = None,
    ) -> None:
        self._clients = clients
        self.http = http or HttpProbes((settings or HealthSettings()).http_workers)
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
    ) -> Health:
        """The health of ``release``'s rollout (or bake) as of this pass."""
        service = observed.service
        primary = service.primary
        role = release.spec.role_arn
        unknown: list[str] = []
        firing: tuple[str, ...] = ()
        names = list(dict.fromkeys([*release.spec.rollout.alarms, *service.alarm_names]))
        if names:
            try:
                states = alarm_states(self._clients("cloudwatch", region, role), names)
            except aws.AwsError as exc:
                unknown.append(f"alarms ({exc.code}: {exc.message})")
            else:
                firing = tuple(name for name in names if states.get(name) == "ALARM")
                unknown.extend(
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
                unknown.append(f"target health ({exc.code}: {exc.message})")
        checks = release.spec.rollout.http_checks
        failing: tuple[str, ...] = ()
        if checks and primary is not None:
            failing, pending = self.http.watch(
                name, f"{release.fingerprint()}:{primary.id}", checks
            )
            unknown.extend(f"HTTP check {url} (no result yet)" for url in pending)
        self._note_errors(name, tuple(u for u in unknown if not u.startswith("HTTP check")))
        return Health(
            alarms_in_alarm=firing,
            unhealthy_targets=unhealthy,
            failing_http_checks=failing,
            target_detail=detail,
            unknown=tuple(unknown),
        )

    def explain(
        self, action: _Failed, tasks: StoppedTasks, release: ServiceRelease, service: ServiceState
    ) -> _Failed:
        """``action`` with the first stop reason of its deployment's tasks folded in.

        Failure paths only (a ListTasks and a DescribeTasks). A failed lookup
        leaves the action as decided: explaining must never hold up a rollback.
        """
        if not action.deployment_id:
            return action
        try:
            lines = tasks.stopped_task_reasons(service.cluster, action.deployment_id)
        except aws.AwsError as exc:
            log.warning(
                "could not read stopped tasks", error=str(exc), deployment=action.deployment_id
            )
            return action
        stop = failures.first_failure(lines)
        return failures.refine(action, stop, target_health=target_health_enabled(release, service))

    def idle(self, name: str) -> None:
        """``name`` is not rolling out or baking: stop its HTTP checks."""
        self.http.forget(name)
        with self._lock:
            self._errors.pop(name, None)

    def close(self) -> None:
        self.http.close()

    def _note_errors(self, name: str, errors: tuple[str, ...]) -> None:
        """Log gate errors once per change, not on every pass."""
        with self._lock:
            before = self._errors.get(name, ())
            self._errors[name] = errors
        if errors and errors != before:
            log.warning("health gate could not be judged", release=name, errors=list(errors))


def alarm_states(cloudwatch: Any, names: Sequence[str]) -> dict[str, str]:
    """The state (``OK``, ``ALARM``, ``INSUFFICIENT_DATA``) of each alarm among ``names``.

    Metric and composite alarms alike. A name missing from the result has no
    alarm: the caller decides whether that matters (a spec alarm with a typo
    must not pass as green; a service's own deployment alarm is ECS's to judge).
    """
    states: dict[str, str] = {}
    for start in range(0, len(names), DESCRIBE_ALARMS_BATCH):
        request: dict[str, Any] = {
            "AlarmNames": list(names[start : start + DESCRIBE_ALARMS_BATCH]),
            "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
        }
        while True:
            with aws.translated_errors("DescribeAlarms"):
                page = cloudwatch.describe_alarms(**request)
            for alarm in [*page.get("MetricAlarms", ()), *page.get("CompositeAlarms", ())]:
                states[str(alarm["AlarmName"])] = str(alarm.get("StateValue", ""))
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
        with aws.translated_errors("DescribeTargetHealth"):
            found = elbv2.describe_target_health(TargetGroupArn=balancer.target_group_arn)
        for description in found.get("TargetHealthDescriptions") or ():
            target, health = description.get("Target") or {}, description.get("TargetHealth") or {}
            ours = target.get("Id") in ips or (target.get("Id"), target.get("Port")) in ports
            if ours and health.get("State") == "unhealthy":
                count += 1
                detail = detail or " ".join(
                    str(p) for p in (health.get("Reason"), health.get("Description")) if p
                )
    return count, detail


# --- HTTP checks -------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is the answer to judge, not a hop to follow."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def http_check(check: HttpCheck, opener: urllib.request.OpenerDirector) -> tuple[bool, str]:
    """One GET of ``check.url``: (passed, what happened in a few words)."""
    request = urllib.request.Request(check.url, headers={"User-Agent": USER_AGENT})
    try:
        with opener.open(request, timeout=check.timeout_seconds) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return False, f"{type(cause).__name__}: {cause}"
    if status == check.expect_status:
        return True, f"HTTP {status}"
    return False, f"HTTP {status}, expected {check.expect_status}"


@dataclass
class _Check:
    check: HttpCheck
    due: float
    runs: int = 0
    failures: int = 0
    """Consecutive failures."""
    last: str = ""
    in_flight: bool = False


@dataclass
class _Watch:
    generation: str
    checks: list[_Check] = field(default_factory=list)


class HttpProbes:
    """Runs each watched release's HTTP checks on their intervals, off the reconcile workers.

    ``watch`` starts (or keeps) a release's checks and returns the latest
    verdicts; ``forget`` stops them. A new ``generation`` (another rollout)
    starts the counts afresh. One scheduler thread hands due checks to a
    thread pool; a check is never in flight twice.
    """

    def __init__(
        self,
        workers: int = 8,
        opener: urllib.request.OpenerDirector | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._opener = opener or urllib.request.build_opener(_NoRedirect)
        self._monotonic = monotonic
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ecsop-http-check")
        self._cond = threading.Condition()
        self._watches: dict[str, _Watch] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(
        self, name: str, generation: str, checks: Iterable[HttpCheck]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(failing checks with why, URLs with no result yet) for ``name``'s checks."""
        wanted = list(checks)
        with self._cond:
            current = self._watches.get(name)
            if (
                current is None
                or current.generation != generation
                or [c.check for c in current.checks] != wanted
            ):
                now = self._monotonic()
                current = _Watch(generation, [_Check(check, due=now) for check in wanted])
                self._watches[name] = current
                self._start()
                self._cond.notify_all()
            failing = tuple(
                f"{c.check.url}: {c.last} ({c.failures} consecutive failures)"
                for c in current.checks
                if c.failures > c.check.failures_allowed
            )
            pending = tuple(c.check.url for c in current.checks if c.runs == 0)
        return failing, pending

    def forget(self, name: str) -> None:
        with self._cond:
            self._watches.pop(name, None)

    def watching(self) -> list[str]:
        with self._cond:
            return sorted(self._watches)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._watches.clear()
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._schedule, name="ecsop-http-scheduler", daemon=True
            )
            self._thread.start()

    def _schedule(self) -> None:
        with self._cond:
            while not self._closed:
                now = self._monotonic()
                wake: float | None = None
                for name, watch in self._watches.items():
                    for check in watch.checks:
                        if check.in_flight:
                            continue
                        if check.due <= now:
                            check.in_flight = True
                            check.due = now + check.check.interval_seconds
                            self._pool.submit(self._run, name, watch, check)
                        else:
                            wake = check.due if wake is None else min(wake, check.due)
                self._cond.wait(None if wake is None else max(wake - now, 0.01))

    def _run(self, name: str, watch: _Watch, check: _Check) -> None:
        passed, what = http_check(check.check, self._opener)
        with self._cond:
            check.in_flight = False
            if self._watches.get(name) is not watch:
                return  # forgotten, or a new rollout started meanwhile
            check.runs += 1
            check.failures = 0 if passed else check.failures + 1
            check.last = what
            self._cond.notify_all()
        if not passed and check.failures == check.check.failures_allowed + 1:
            log.warning("HTTP check failing", release=name, url=check.check.url, result=what)
