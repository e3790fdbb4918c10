"""Carrying out one decision through the ECS gateway.

The order of calls is the crash-safety argument, so it lives in one place:
what the daemon must remember is written to AWS *before* the change it
explains. A daemon killed between two calls finds, on restart, either the
record without the change (and finishes the change) or nothing at all.

- Deploy: reuse the revision already tagged with the fingerprint, else
  register a clone (tagged), then UpdateService. Killed after registering, the
  next pass finds and reuses that revision instead of registering another.
- Rollback: tag the service with the failed fingerprint, then UpdateService
  to last-good. Killed in between, the next pass sees the record and finishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ecsop.decision.actions import Action, Deploy, RecordFailure, RecordLastGood, Rollback, Wait
from ecsop.decision.ecs_state import (
    TAG_COMMIT,
    TAG_DEPLOYING,
    TAG_FAILED_FINGERPRINT,
    TAG_FAILED_REASON,
    TAG_FINGERPRINT,
    TAG_LAST_GOOD,
    TAG_RELEASE,
    ServiceState,
    TaskDefinition,
    TaskDefinitionArn,
)


class Gateway(Protocol):
    """The part of ``ecsop.ecs.EcsGateway`` the executor needs."""

    def task_definition(self, arn: TaskDefinitionArn) -> TaskDefinition: ...

    def find_revision(self, family: str, fingerprint: str) -> TaskDefinitionArn | None: ...

    def register_clone(
        self, base: TaskDefinitionArn, images: Mapping[str, str], tags: Mapping[str, str]
    ) -> TaskDefinition: ...

    def update_service(
        self, cluster: str, service: str, task_definition: TaskDefinitionArn
    ) -> str: ...

    def tag_service(self, service_arn: str, tags: Mapping[str, str]) -> None: ...

    def untag_service(self, service_arn: str, keys: list[str]) -> None: ...


@dataclass(frozen=True)
class Applied:
    """What the executor did, for logs and status."""

    task_definition: TaskDefinitionArn | None = None
    registered: bool = False
    deployment_id: str = ""
    """The deployment UpdateService started (Deploy and Rollback only)."""


def execute(
    action: Action, gateway: Gateway, service: ServiceState, release: str, commit: str | None
) -> Applied:
    """Carry out ``action`` on ``service``. Raises the gateway's errors unchanged."""
    if isinstance(action, Wait):
        return Applied()
    if isinstance(action, Deploy):
        return _deploy(action, gateway, service, release, commit)
    if isinstance(action, Rollback):
        gateway.tag_service(service.arn, _failure_record(action, release))
        started = gateway.update_service(service.cluster, service.name, action.to)
        return Applied(task_definition=action.to, deployment_id=started)
    if isinstance(action, RecordFailure):
        gateway.tag_service(service.arn, _failure_record(action, release))
        return Applied()
    if isinstance(action, RecordLastGood):
        gateway.tag_service(
            service.arn, {TAG_LAST_GOOD: action.task_definition, TAG_RELEASE: release}
        )
        stale = [TAG_DEPLOYING] if TAG_DEPLOYING in service.tags else []
        if action.clear_failure:
            stale += [TAG_FAILED_FINGERPRINT, TAG_FAILED_REASON]
        if stale:
            gateway.untag_service(service.arn, stale)
        return Applied(task_definition=action.task_definition)
    raise TypeError(f"unknown action {type(action).__name__}")


def _failure_record(action: Rollback | RecordFailure, release: str) -> dict[str, str]:
    """The service tags that remember a failed release (written before any rollback)."""
    return {
        TAG_FAILED_FINGERPRINT: action.failed_fingerprint,
        TAG_FAILED_REASON: action.failure.value,
        TAG_RELEASE: release,
    }


def _deploy(
    action: Deploy, gateway: Gateway, service: ServiceState, release: str, commit: str | None
) -> Applied:
    existing = action.reuse
    if existing is None:
        base = gateway.task_definition(action.base)
        existing = gateway.find_revision(base.family, action.fingerprint)
    registered = existing is None
    if existing is None:
        tags = {TAG_RELEASE: release, TAG_FINGERPRINT: action.fingerprint}
        if commit:
            tags[TAG_COMMIT] = commit
        existing = gateway.register_clone(action.base, action.images, tags).arn
    started = gateway.update_service(service.cluster, service.name, existing)
    # After, not before: a record of a rollout that never started would read as
    # a failure. Killed between the two calls, the next pass sees the rollout
    # itself and judges it; only a rollback in that same instant goes unseen.
    gateway.tag_service(service.arn, {TAG_DEPLOYING: action.fingerprint, TAG_RELEASE: release})
    return Applied(task_definition=existing, registered=registered, deployment_id=started)
