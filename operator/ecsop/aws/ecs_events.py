"""ECS's EventBridge events, read from a queue message into a frozen value.

An SQS target receives the whole EventBridge event as the message body:
``source`` ``aws.ecs``, ``detail-type``, ``time``, ``region``, ``account``,
``resources`` and ``detail`` ("Amazon ECS events",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_cwe_events.html).
What ecsop needs from each kind, to know which service it is about:

- ``ECS Task State Change``: ``detail.clusterArn``, ``detail.group``
  (``service:<name>`` for a service's tasks), ``detail.startedBy`` (the
  deployment id), ``lastStatus``/``desiredStatus``, ``stopCode``
  ("Amazon ECS task state change events", ``ecs_task_events.html``);
- ``ECS Service Action``: ``resources`` (the service ARN), ``eventName``
  (``ecs_service_events.html``);
- ``ECS Deployment State Change``: ``resources`` (the service ARN),
  ``eventName``, ``deploymentId`` (``ecs_service_deployment_events.html``).

"Amazon ECS may add other event types, sources, and details in the future":
unknown fields are ignored, an unknown ``detail-type`` is ``OTHER``, and a
body that is not an event at all is ``MALFORMED``; nothing here raises. The
account comes from the ARNs when the envelope lacks it (an input transformer,
or moto's delivery, may leave it out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ecsop.aws import ecs_mapping
from ecsop.spec.model import parse_arn

SOURCE = "aws.ecs"


class EventKind(StrEnum):
    """What a queue message was (the ``type`` label of ``ecsop_events_received_total``)."""

    TASK = "task"
    """``ECS Task State Change``."""
    SERVICE_ACTION = "service_action"
    """``ECS Service Action``."""
    DEPLOYMENT = "deployment"
    """``ECS Deployment State Change``."""
    OTHER = "other"
    """An EventBridge event of another source or detail type."""
    MALFORMED = "malformed"
    """Not an EventBridge event (not JSON, no ``detail``)."""


_KINDS = {
    "ECS Task State Change": EventKind.TASK,
    "ECS Service Action": EventKind.SERVICE_ACTION,
    "ECS Deployment State Change": EventKind.DEPLOYMENT,
}


@dataclass(frozen=True)
class EcsEvent:
    kind: EventKind
    id: str = ""
    time: datetime | None = None
    """When it happened, by the event's own ``time`` (whole seconds)."""
    account: str = ""
    region: str = ""
    cluster: str = ""
    """The cluster's name ("" when the event does not say)."""
    service: str = ""
    """The service's name ("" for a task no service started)."""
    deployment: str = ""
    """The deployment: a task's ``startedBy`` (``ecs-svc/...``) or ``deploymentId``."""
    name: str = ""
    """``eventName``, or ``lastStatus/desiredStatus`` of a task."""
    stopping: bool = False
    """A task event of a task told to stop (``desiredStatus`` ``STOPPED``)."""
    task: str = ""
    """A task event's task ARN."""
    stop: str = ""
    """Why a task told to stop stops, in the one line ``ecs_mapping.stopped_reason``
    makes of a DescribeTasks task (stop code, reason, containers' exit codes)."""


MALFORMED = EcsEvent(EventKind.MALFORMED)


def parse(body: str) -> EcsEvent:
    """The event in a queue message's body; ``MALFORMED`` or ``OTHER`` when not ECS's."""
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        return MALFORMED
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
        return MALFORMED
    detail: dict[str, Any] = event["detail"]
    kind = _KINDS.get(str(event.get("detail-type"))) if event.get("source") == SOURCE else None
    base = EcsEvent(
        EventKind.OTHER,
        id=str(event.get("id", "")),
        time=_time(event.get("time")),
        account=str(event.get("account") or ""),
        region=str(event.get("region") or ""),
    )
    if kind is None:
        return base
    listed = event.get("resources")
    resources = [r for r in listed if isinstance(r, str)] if isinstance(listed, list) else []
    if kind is EventKind.TASK:
        return _task(base, detail, resources)
    return _service(base, kind, detail, resources)


def _task(base: EcsEvent, detail: dict[str, Any], resources: list[str]) -> EcsEvent:
    cluster = parse_arn(str(detail.get("clusterArn") or ""), "cluster")
    task = next((a for r in resources if (a := parse_arn(r, "task"))), None)
    group = str(detail.get("group") or "")
    located = cluster or task
    stopping = detail.get("desiredStatus") == "STOPPED"
    return EcsEvent(
        EventKind.TASK,
        id=base.id,
        time=base.time,
        account=base.account or (located.account if located else ""),
        region=base.region or (located.region if located else ""),
        cluster=cluster.name if cluster else (task.parent if task else ""),
        service=group.removeprefix("service:") if group.startswith("service:") else "",
        deployment=str(detail.get("startedBy") or ""),
        name=f"{detail.get('lastStatus', '')}/{detail.get('desiredStatus', '')}",
        stopping=stopping,
        task=next((r for r in resources if parse_arn(r, "task")), str(detail.get("taskArn") or "")),
        stop=_stop_line(detail) if stopping else "",
    )


def _stop_line(detail: dict[str, Any]) -> str:
    containers = detail.get("containers")
    listed = [c for c in containers if isinstance(c, dict)] if isinstance(containers, list) else []
    return ecs_mapping.stopped_reason({**detail, "containers": listed})


def _service(
    base: EcsEvent, kind: EventKind, detail: dict[str, Any], resources: list[str]
) -> EcsEvent:
    service = next((a for r in resources if (a := parse_arn(r, "service"))), None)
    cluster = parse_arn(str(detail.get("clusterArn") or ""), "cluster")
    located = service or cluster
    return EcsEvent(
        kind,
        id=base.id,
        time=base.time,
        account=base.account or (located.account if located else ""),
        region=base.region or (located.region if located else ""),
        # The long ARN format names the cluster (service/CLUSTER/NAME); the old one does not.
        cluster=(service.parent if service else "") or (cluster.name if cluster else ""),
        service=service.name if service else "",
        deployment=str(detail.get("deploymentId") or ""),
        name=str(detail.get("eventName") or ""),
    )


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return ecs_mapping.aws_time(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
