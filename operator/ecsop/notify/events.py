"""A notification event: what happened to a release, as one frozen value.

Built by ``ecsop.controller.notifications`` from each decision the recorder
sees (never guessed from polling), published to ``ecsop.notify.delivery``, and
rendered by each provider. ``id`` is the idempotency key: computed from facts
kept in AWS (the ECS deployment id, the fingerprint, the failed record), so the
same happening announced twice, by this process or a restarted one, carries
the same id and a receiver can drop the second.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

SCHEMA_API_VERSION = "ecsop.dev/v1"
"""``apiVersion`` of the webhook payload; a breaking change gets a new version."""
SCHEMA_KIND = "Notification"


class EventType(StrEnum):
    """What a notification is about; routes select on these names."""

    DEPLOY_STARTED = "deploy.started"
    """A Deploy was carried out: UpdateService pointed the service at the release."""
    DEPLOY_SUCCEEDED = "deploy.succeeded"
    """The release baked healthy and was recorded as last-good (RecordLastGood, Baked)."""
    DEPLOY_ROLLED_BACK = "deploy.rolled_back"
    """ecsop rolled the release back (Rollback), or ECS did (RecordFailure, by ECS)."""
    DEPLOY_FAILED = "deploy.failed"
    """The release failed and was not rolled back: rollback off, no last-good, the
    rollback itself failed, or it was put back by another hand."""
    RELEASE_DEGRADED = "release.degraded"
    """The phase became Degraded for a reason no deploy.* event already told."""
    RELEASE_RECOVERED = "release.recovered"
    """Back to Synced, without a deploy, after Degraded or Invalid."""
    SPEC_INVALID = "spec.invalid"
    """The release's spec became invalid (nothing new is deployed until it is fixed)."""


DEPLOY_EVENTS = frozenset(
    {
        EventType.DEPLOY_STARTED,
        EventType.DEPLOY_SUCCEEDED,
        EventType.DEPLOY_ROLLED_BACK,
        EventType.DEPLOY_FAILED,
    }
)


@dataclass(frozen=True)
class Revision:
    """A task definition revision as a notification shows it."""

    task_definition: str = ""
    fingerprint: str = ""
    images: Mapping[str, str] = field(default_factory=dict)
    """Container name -> image, for the containers the spec names."""


@dataclass(frozen=True)
class Event:
    id: str
    """Idempotency key (see ``event_id``): equal for a resend of the same happening."""
    type: EventType
    time: datetime
    release: str
    labels: Mapping[str, str]
    region: str
    cluster: str
    service: str
    phase: str
    reason: str
    message: str
    commit: str = ""
    """The git commit that set the spec being deployed, when known (else "")."""
    deployment: str = ""
    """The ECS deployment id (``ecs-svc/...``) the event is about, when there is one."""
    source: Revision | None = None
    """What the service ran before (deploy.started), or the release that failed."""
    target: Revision | None = None
    """What the service is pointed at: the new release, or last-good after a rollback."""
    failure: str = ""
    """Why a rollout failed: ``ecsop_rollbacks_total``'s reason label (deploy.rolled_back,
    deploy.failed)."""
    detail: str = ""
    stop_reason: str = ""
    """ECS's reason for the first failed task of the rollout, if one was read."""
    rolled_back_by: str = ""
    """``ecsop`` or ``ecs`` for deploy.rolled_back; "" otherwise."""


def event_id(kind: EventType, release: str, *facts: str) -> str:
    """The idempotency key of an event: a hash of its type, release and stable facts."""
    text = "\n".join(("v1", kind.value, release, *facts))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def short_digest(image: str) -> str:
    """``repo@sha256:69b373ef...`` -> ``repo@sha256:69b373efb722`` (12 hex, for people)."""
    if "@sha256:" in image:
        repository, digest = image.split("@sha256:", 1)
        return f"{repository.rsplit('/', 1)[-1]}@sha256:{digest[:12]}"
    return image.rsplit("/", 1)[-1]
