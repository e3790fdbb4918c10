"""Builders for the decision's input values, shared by every unit test.

Each builder has defaults that describe one ordinary production service (two
tasks, a completed deployment an hour old), so a test names only what matters
to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ecsop.decision.ecs_state import (
    Deployment,
    DeploymentStatus,
    Fingerprint,
    RolloutState,
    ServiceState,
    TaskDefinition,
    TaskDefinitionArn,
)
from ecsop.decision.memory import FailedRecord, ServiceMemory
from ecsop.decision.reasons import Failure
from ecsop.spec.model import ServiceRelease

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ACCOUNT = "111122223333"
REGION = "us-east-1"


def image(label: str, repository: str = "shop") -> str:
    """An image pinned by a digest derived from ``label``."""
    digest = hashlib.sha256(label.encode()).hexdigest()
    return f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repository}@sha256:{digest}"


def td_arn(family: str, revision: int) -> TaskDefinitionArn:
    return TaskDefinitionArn(f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}")


def service_arn(cluster: str = "prod", name: str = "api") -> str:
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{name}"


def release(
    name: str = "api-prod",
    containers: Mapping[str, str] | None = None,
    *,
    cluster: str = "prod",
    service: str = "api",
    rollout: Mapping[str, Any] | None = None,
    **spec: Any,
) -> ServiceRelease:
    """A valid release; ``rollout`` entries and other spec fields as users write them."""
    return ServiceRelease.model_validate(
        {
            "apiVersion": "ecsop.dev/v1",
            "kind": "ServiceRelease",
            "metadata": {"name": name},
            "spec": {
                "cluster": cluster,
                "service": service,
                "containers": dict(containers or {"api": image("v1")}),
                "rollout": {"timeoutSeconds": 600, "bakeSeconds": 60, "maxFailedTasks": 1}
                | dict(rollout or {}),
                **spec,
            },
        }
    )


def task_definition(
    family: str,
    revision: int,
    images: Mapping[str, str],
    tags: Mapping[str, str] | None = None,
    content: str = "",
) -> TaskDefinition:
    return TaskDefinition(
        td_arn(family, revision),
        family,
        revision,
        dict(images),
        dict(tags or {}),
        content or f"content-of-{family}:{revision}",
    )


def deployment(
    td: TaskDefinition | TaskDefinitionArn,
    state: RolloutState | None = RolloutState.COMPLETED,
    status: DeploymentStatus = DeploymentStatus.PRIMARY,
    *,
    age: float = 3600,
    updated_ago: float = 3000,
    failed: int = 0,
    reason: str = "",
    desired: int = 2,
    running: int | None = None,
    now: datetime = NOW,
    id: str = "",
) -> Deployment:
    arn = td.arn if isinstance(td, TaskDefinition) else td
    return Deployment(
        id=id or f"ecs-svc/{abs(hash((arn, status.value, age))) % 10**19:019d}",
        status=status,
        task_definition=arn,
        rollout_state=state,
        rollout_state_reason=reason,
        desired_count=desired,
        running_count=desired if running is None else running,
        pending_count=0,
        failed_tasks=failed,
        created_at=now - timedelta(seconds=age),
        updated_at=now - timedelta(seconds=updated_ago),
    )


def service(
    *deployments: Deployment,
    tags: Mapping[str, str] | None = None,
    cluster: str = "prod",
    name: str = "api",
    desired: int = 2,
    **fields: Any,
) -> ServiceState:
    primary = next(d for d in deployments if d.status is DeploymentStatus.PRIMARY)
    return ServiceState(
        arn=service_arn(cluster, name),
        cluster=cluster,
        name=name,
        status="ACTIVE",
        task_definition=primary.task_definition,
        desired_count=desired,
        running_count=desired,
        deployments=deployments,
        tags=dict(tags or {}),
        **fields,
    )


def memory_tags(
    release_name: str = "api-prod",
    *,
    cluster: str = "prod",
    name: str = "api",
    last_good: TaskDefinitionArn | None = None,
    failed: str | None = None,
    reason: Failure | str = Failure.FAILED_TASKS,
    deploying: str | None = None,
    writer: str = "",
    carries: str | None = None,
) -> dict[str, str]:
    """The service tags ecsop writes for this memory (last-good vouched for; ``carries``:
    the fingerprint recorded for it, None as an earlier ecsop wrote it)."""
    memory = ServiceMemory(release=release_name, writer=writer)
    if last_good is not None:
        arn = service_arn(cluster, name)
        fingerprint = Fingerprint(carries) if carries else None
        memory = memory.proven(arn, release_name, last_good, fingerprint=fingerprint)
    if deploying is not None:
        memory = memory.rolling_out(Fingerprint(deploying))
    if failed is not None:
        memory = memory.failed_with(Fingerprint(failed), Failure(reason))
    return memory.tags()


def failed_record(fingerprint: str, reason: Failure = Failure.FAILED_TASKS) -> FailedRecord:
    return FailedRecord(Fingerprint(fingerprint), reason)
