"""A release's history, read from AWS: ECS's service deployments and ecsop's revision tags.

Read for ``ecsop history`` and for ``/status``, on demand only: nothing here
runs while nobody asks. ``ServiceHistory.read`` makes, for N deployments, one
ListServiceDeployments, one DescribeServiceDeployments and one
DescribeServiceRevisions per 20, and a DescribeTaskDefinition per revision not
yet cached (immutable, so the daemon's cache usually has them). ``entries``
turns what was read into ``HistoryEntry`` values, a pure function.

Who rolled back is read from two places. ECS's own rollbacks (circuit
breaker, deployment alarms) are service deployments in a ``ROLLBACK_*``
status, with ECS's reason. ecsop's rollback is a new deployment of the
revision that ran before, which leaves the failed one ``STOPPED`` (or
``SUCCESSFUL``, when it failed during the bake); the service's failed record
(``ecsop:state``, ``failed=FP/REASON``) names the release and why. It keeps
only the latest failure: an older deployment that was replaced by a return
to what ran before reads as rolled back, by someone ("" in ``rolled_back_by``).

"View service history using Amazon ECS service deployments",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-deployment.html
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ecsop.aws import clients as aws
from ecsop.aws import ecs_mapping
from ecsop.aws.revisions import Revisions
from ecsop.decision.ecs_state import TaskDefinition, TaskDefinitionArn, short_name
from ecsop.decision.memory import FailedRecord, RevisionMemory
from ecsop.decision.observation import fingerprint_of
from ecsop.decision.reasons import Failure
from ecsop.spec.model import ServiceRelease

DESCRIBE_BATCH = 20
"""ECS's maximum ARNs per DescribeServiceDeployments and DescribeServiceRevisions."""
MAX_LIMIT = 100
"""ListServiceDeployments' largest page: the most entries one read returns."""

ONGOING = frozenset({"PENDING", "IN_PROGRESS", "STOP_REQUESTED"})
ECS_ROLLING_BACK = frozenset({"ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"})


class HistoryOutcome(StrEnum):
    IN_PROGRESS = "in_progress"
    """ECS is still rolling it out."""
    SUCCEEDED = "succeeded"
    """ECS completed it and nothing records it as failed."""
    ROLLED_BACK = "rolled_back"
    """Rolled back: by ECS (``ROLLBACK_SUCCESSFUL``), by ecsop (its failed record), or
    replaced, unfinished, by a return to what ran before."""
    ROLLING_BACK = "rolling_back"
    """ECS is rolling it back."""
    FAILED = "failed"
    """Failed and not rolled back (ecsop's record without a return, ECS's rollback failed)."""
    STOPPED = "stopped"
    """Stopped unfinished: another deployment replaced it, or a person stopped it."""


@dataclass(frozen=True)
class RawDeployment:
    """One service deployment as DescribeServiceDeployments tells it, revisions resolved."""

    arn: str
    status: str
    status_reason: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    strategy: str
    target: TaskDefinitionArn
    sources: tuple[TaskDefinitionArn, ...]
    ecs_reason: str = ""
    """ECS's rollback reason, triggered alarms and breaker, in words ("" if none)."""


@dataclass(frozen=True)
class HistoryEntry:
    """One deployment of a release, newest first in a history."""

    deployment: str
    """The service deployment ARN."""
    status: str
    """ECS's status of the service deployment."""
    outcome: HistoryOutcome
    rolled_back_by: str
    """``ecsop``, ``ecs``, or "" (nobody, or not known)."""
    reason: str
    """Why it failed or was rolled back ("" when it did not)."""
    created_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    strategy: str
    task_definition: str
    fingerprint: str
    commit: str
    """``ecsop:commit`` of the revision, when ecsop registered it."""
    images: Mapping[str, str] = field(default_factory=dict)
    by_ecsop: bool = False
    """The revision was registered by ecsop for this release."""
    rollback_of: str = ""
    """This deployment put back what ran before the (older) deployment named here."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        out: dict[str, Any] = {}
        for key, value in data.items():
            head, *rest = key.split("_")
            name = head + "".join(part.title() for part in rest)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out


class ServiceHistory:
    """Reads a service's deployments through the gateway's client (``EcsGateway.history``)."""

    def __init__(self, call: Callable[..., dict[str, Any]], revisions: Revisions) -> None:
        self._call = call
        self._revisions = revisions

    def read(
        self, cluster: str, service: str, limit: int
    ) -> tuple[list[RawDeployment], dict[TaskDefinitionArn, TaskDefinition]]:
        """The newest ``limit`` deployments (newest first) and the revisions they name."""
        listed = self._call(
            "list_service_deployments",
            cluster=cluster,
            service=service,
            maxResults=max(1, min(limit, MAX_LIMIT)),
        )
        arns = [
            str(b["serviceDeploymentArn"])
            for b in listed.get("serviceDeployments") or ()
            if b.get("serviceDeploymentArn")
        ][:limit]
        described: list[dict[str, Any]] = []
        for start in range(0, len(arns), DESCRIBE_BATCH):
            found = self._call(
                "describe_service_deployments",
                serviceDeploymentArns=arns[start : start + DESCRIBE_BATCH],
            )
            described.extend(found.get("serviceDeployments") or ())
        revision_arns = sorted(
            {
                str(arn)
                for sd in described
                for arn in (
                    (sd.get("targetServiceRevision") or {}).get("arn"),
                    *((r or {}).get("arn") for r in sd.get("sourceServiceRevisions") or ()),
                )
                if arn
            }
        )
        task_definitions: dict[str, str] = {}
        for start in range(0, len(revision_arns), DESCRIBE_BATCH):
            found = self._call(
                "describe_service_revisions",
                serviceRevisionArns=revision_arns[start : start + DESCRIBE_BATCH],
            )
            for revision in found.get("serviceRevisions") or ():
                task_definitions[str(revision["serviceRevisionArn"])] = str(
                    revision.get("taskDefinition", "")
                )
        raws = [_raw(sd, task_definitions) for sd in described]
        raws.sort(key=lambda r: r.created_at, reverse=True)
        revisions: dict[TaskDefinitionArn, TaskDefinition] = {}
        for arn in {a for r in raws for a in (r.target, *r.sources) if a}:
            try:
                revisions[arn] = self._revisions.get(arn)
            except aws.AwsError as error:
                if error.retryable:
                    raise
        return raws, revisions


def _raw(sd: Mapping[str, Any], task_definitions: Mapping[str, str]) -> RawDeployment:
    service_arn = str(sd.get("serviceArn", ""))

    def task_definition(revision: Mapping[str, Any] | None) -> TaskDefinitionArn:
        reference = task_definitions.get(str((revision or {}).get("arn", "")), "")
        return ecs_mapping.task_definition_arn(reference, service_arn)

    def when(key: str) -> datetime | None:
        value = sd.get(key)
        return ecs_mapping.aws_time(value) if value is not None else None

    created = when("createdAt") or when("startedAt")
    config = sd.get("deploymentConfiguration") or {}
    return RawDeployment(
        arn=str(sd.get("serviceDeploymentArn", "")),
        status=str(sd.get("status", "")),
        status_reason=str(sd.get("statusReason", "")),
        created_at=created or datetime.fromtimestamp(0, UTC),
        started_at=when("startedAt"),
        finished_at=when("finishedAt") or when("stoppedAt"),
        strategy=str(config.get("strategy") or "ROLLING"),
        target=task_definition(sd.get("targetServiceRevision")),
        sources=tuple(
            arn
            for arn in (task_definition(r) for r in sd.get("sourceServiceRevisions") or ())
            if arn
        ),
        ecs_reason=_ecs_reason(sd),
    )


def _ecs_reason(sd: Mapping[str, Any]) -> str:
    parts = []
    rollback = sd.get("rollback") or {}
    if rollback.get("reason"):
        parts.append(str(rollback["reason"]))
    elif sd.get("statusReason") and str(sd.get("status", "")).startswith("ROLLBACK"):
        parts.append(str(sd["statusReason"]))
    alarms = (sd.get("alarms") or {}).get("triggeredAlarmNames") or []
    if alarms:
        parts.append(f"alarms in ALARM: {', '.join(alarms)}")
    breaker = sd.get("deploymentCircuitBreaker") or {}
    if breaker.get("status") == "TRIGGERED":
        parts.append(
            f"circuit breaker: {breaker.get('failureCount', '?')} failed tasks "
            f"(threshold {breaker.get('threshold', '?')})"
        )
    return "; ".join(parts)


def entries(
    raws: Sequence[RawDeployment],
    revisions: Mapping[TaskDefinitionArn, TaskDefinition],
    release: ServiceRelease,
    failed: FailedRecord | None,
) -> list[HistoryEntry]:
    """What became of each deployment (``raws`` newest first), in the same order.

    ``failed`` is the service's failed record; it names the newest deployment
    of its fingerprint only.
    """
    found: list[HistoryEntry] = []
    recorded_seen = False
    for index, raw in enumerate(raws):
        td = revisions.get(raw.target)
        fingerprint = fingerprint_of(release, td)
        memory = RevisionMemory.read(td.tags) if td is not None else RevisionMemory()
        newer = raws[index - 1] if index else None
        returned = newer is not None and bool(newer.target) and newer.target in raw.sources
        recorded = None
        if failed is not None and not recorded_seen and fingerprint == failed.fingerprint:
            recorded, recorded_seen = failed.failure, True
        outcome, by, reason = _judge(raw, recorded, returned, newer)
        end = raw.finished_at
        start = raw.started_at or raw.created_at
        images = dict(td.images) if td is not None else {}
        named = {c: images[c] for c in release.spec.containers if c in images}
        found.append(
            HistoryEntry(
                deployment=raw.arn,
                status=raw.status,
                outcome=outcome,
                rolled_back_by=by,
                reason=reason,
                created_at=raw.created_at,
                finished_at=end,
                duration_seconds=(end - start).total_seconds() if end is not None else None,
                strategy=raw.strategy,
                task_definition=raw.target,
                fingerprint=fingerprint,
                commit=memory.commit if memory.release == release.name else "",
                images=named or images,
                by_ecsop=memory.release == release.name,
            )
        )
    for index in range(len(found) - 1):
        older = found[index + 1]
        if older.outcome is HistoryOutcome.ROLLED_BACK and older.rolled_back_by != "ecs":
            found[index] = replace(found[index], rollback_of=older.deployment)
    return found


def _judge(
    raw: RawDeployment, recorded: Failure | None, returned: bool, newer: RawDeployment | None
) -> tuple[HistoryOutcome, str, str]:
    """(outcome, who rolled back, why) of one deployment."""
    if raw.status in ONGOING:
        return HistoryOutcome.IN_PROGRESS, "", ""
    if raw.status in ECS_ROLLING_BACK:
        return HistoryOutcome.ROLLING_BACK, "ecs", raw.ecs_reason or raw.status_reason
    if raw.status == "ROLLBACK_SUCCESSFUL":
        return HistoryOutcome.ROLLED_BACK, "ecs", raw.ecs_reason or raw.status_reason
    if raw.status == "ROLLBACK_FAILED":
        why = raw.ecs_reason or raw.status_reason
        return HistoryOutcome.FAILED, "ecs", f"ECS's rollback failed too: {why}".rstrip(": ")
    back = f" (back to {short_name(newer.target)})" if newer is not None and returned else ""
    if recorded is Failure.ROLLBACK_FAILED:
        return HistoryOutcome.FAILED, "", "rollback_failed: the rollback to last-good failed too"
    if recorded is Failure.ECS_ROLLBACK:
        return HistoryOutcome.ROLLED_BACK, "ecs", f"ecs_rollback{back}"
    if recorded is not None:
        if returned or raw.status == "STOPPED":
            return HistoryOutcome.ROLLED_BACK, "ecsop", f"{recorded.value}{back}"
        return HistoryOutcome.FAILED, "", f"{recorded.value}: not rolled back"
    if raw.status == "STOPPED":
        if returned:
            return HistoryOutcome.ROLLED_BACK, "", f"replaced unfinished{back}"
        return HistoryOutcome.STOPPED, "", raw.status_reason
    return HistoryOutcome.SUCCEEDED, "", ""
