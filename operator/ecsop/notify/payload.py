"""The webhook payload, version 1: the documented JSON every generic webhook receives.

The model is the schema: ``docs/notification-v1.schema.json`` is generated
from it (a test keeps the two equal), and the README documents each field.
Additions that receivers can ignore keep ``apiVersion: ecsop.dev/v1``; a
change that breaks a receiver needs a new version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ecsop import __version__
from ecsop.notify.events import SCHEMA_API_VERSION, SCHEMA_KIND, Event, EventType, Revision


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)


class ReleaseRef(_Out):
    name: str = Field(description="metadata.name of the release.")
    labels: dict[str, str] = Field(description="metadata.labels of the release.")
    region: str
    cluster: str
    service: str


class RevisionRef(_Out):
    task_definition: str = Field(description="Task definition ARN ('' when not known).")
    fingerprint: str = Field(description="ecsop's release fingerprint: a hash of the images.")
    images: dict[str, str] = Field(description="Container name -> image, as the spec names them.")


class FailureRef(_Out):
    reason: str = Field(
        description="failed_tasks, circuit_breaker, timeout, alarm, target_health, http_check, "
        "analysis, ecs_rollback or rollback_failed (ecsop_rollbacks_total's reason label)."
    )
    detail: str = Field(description="What the gate saw, in words.")
    stop_reason: str = Field(description="ECS's reason for the first failed task, or ''.")
    rolled_back_by: Literal["ecsop", "ecs", ""] = Field(
        description="Who rolled back (deploy.rolled_back); '' when nobody did."
    )


class CommitRef(_Out):
    sha: str = Field(description="The git commit of the spec directory that set this release.")
    url: str | None = Field(description="A link to the commit, when the repository is known.")


class Sender(_Out):
    name: Literal["ecsop"] = "ecsop"
    version: str


class NotificationPayload(_Out):
    """One event, as a generic webhook receives it (POST, application/json)."""

    api_version: Literal["ecsop.dev/v1"] = Field(description="The payload's schema version.")
    kind: Literal["Notification"]
    id: str = Field(
        description="Idempotency key: a resend of the same event (a retry, or a restarted "
        "daemon announcing the same deployment's outcome) has the same id. Also sent as the "
        "Idempotency-Key header."
    )
    type: EventType
    time: datetime = Field(description="When ecsop decided, UTC.")
    release: ReleaseRef
    phase: str = Field(description="The release's phase after the decision (Synced, ...).")
    reason: str = Field(description="The decision's reason (Deploying, RollingBack, ...).")
    message: str = Field(description="The decision, in words (as in the log and /status).")
    deployment: str | None = Field(description="The ECS deployment id, when there is one.")
    from_: RevisionRef | None = Field(
        alias="from",
        description="deploy.started: what ran before; deploy.rolled_back and deploy.failed: "
        "the release that failed; deploy.succeeded: the previous last-good.",
    )
    to: RevisionRef | None = Field(
        description="What the service is pointed at: the new release, or last-good after a "
        "rollback."
    )
    failure: FailureRef | None = Field(description="Why a rollout failed, when one did.")
    commit: CommitRef | None
    sender: Sender


def payload(event: Event, commit_url: str | None) -> NotificationPayload:
    """The version-1 payload of ``event``; ``commit_url`` links to its commit, if known."""
    failure = None
    if event.failure:
        by: Any = event.rolled_back_by if event.rolled_back_by in ("ecsop", "ecs") else ""
        failure = FailureRef(
            reason=event.failure,
            detail=event.detail,
            stop_reason=event.stop_reason,
            rolled_back_by=by,
        )
    return NotificationPayload(
        api_version=SCHEMA_API_VERSION,
        kind=SCHEMA_KIND,
        id=event.id,
        type=event.type,
        time=event.time,
        release=ReleaseRef(
            name=event.release,
            labels=dict(event.labels),
            region=event.region,
            cluster=event.cluster,
            service=event.service,
        ),
        phase=event.phase,
        reason=event.reason,
        message=event.message,
        deployment=event.deployment or None,
        from_=_revision(event.source),
        to=_revision(event.target),
        failure=failure,
        commit=CommitRef(sha=event.commit, url=commit_url) if event.commit else None,
        sender=Sender(version=__version__),
    )


def _revision(revision: Revision | None) -> RevisionRef | None:
    if revision is None:
        return None
    return RevisionRef(
        task_definition=revision.task_definition,
        fingerprint=revision.fingerprint,
        images=dict(revision.images),
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the version-1 payload (``docs/notification-v1.schema.json``)."""
    schema = NotificationPayload.model_json_schema(by_alias=True, mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://ecsop.dev/schemas/v1/notification.json"
    schema["title"] = "ecsop Notification (webhook payload, v1)"
    return schema
