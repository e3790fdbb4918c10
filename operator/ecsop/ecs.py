"""The ECS gateway: the only code that calls the ECS API.

``EcsGateway`` wraps one boto3 ECS client (one region, one role) and speaks
``ecsop.observed`` values: boto3's dicts never leave this module, and AWS
failures leave it as ``ecsop.aws.AwsError``. The controller's executor calls it;
the reconciler never does.

Cost is designed in. DescribeServices is batched 10 names per call (ECS's
maximum), and task definitions, immutable once registered, are cached by ARN so
steady-state observation makes no DescribeTaskDefinition calls at all.

Task definition references are normalised to full ARNs: ECS returns them so, but
moto (behind the sandbox) answers short ``family:revision`` names in places, and
the cache, the ``ecsop:last-good`` tag and the reconciler all compare ARNs.
"""

from __future__ import annotations

import email.utils
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ecsop import aws, taskdef
from ecsop.observed import (
    TAG_FINGERPRINT,
    Deployment,
    DeploymentStatus,
    LoadBalancer,
    RolloutState,
    ServiceEvent,
    ServiceMissing,
    ServiceState,
    TaskDefinition,
    TaskDefinitionArn,
    TaskTarget,
)

DESCRIBE_SERVICES_BATCH = 10
"""ECS's maximum number of services per DescribeServices call."""
DESCRIBE_TASKS_BATCH = 100
"""ECS's maximum number of tasks per DescribeTasks call."""
EVENTS_KEPT = 20
"""Newest service events kept per observation: enough to explain a rollout, small to log."""
FIND_REVISION_LIMIT = 50
"""How many of a family's newest ACTIVE revisions ``find_revision`` looks at.

A revision worth reusing is recent: the one registered just before a crash, or
the last-good one a revert returns to. Looking further back would cost one
DescribeTaskDefinition per revision on first sight (families with thousands of
revisions exist) for a reuse that only saves one RegisterTaskDefinition call.
"""
_LIST_PAGES_MAX = 10
"""ListTaskDefinitions pages read per search: familyPrefix also matches longer families."""

_REVISION = re.compile(r":(\d+)$")


@dataclass(frozen=True)
class _Described:
    """A cached DescribeTaskDefinition answer: the value, and the raw parts for cloning."""

    value: TaskDefinition
    raw: Mapping[str, Any]
    raw_tags: list[dict[str, Any]]


class EcsGateway:
    """ECS operations for one (region, role); thread-safe, so workers share one.

    The task definition cache is an LRU of ``cache_size`` revisions: steady state
    touches only the revisions services run, so it stays warm, while searches
    through old revisions (``find_revision``) cannot grow it without bound.
    """

    def __init__(self, client: Any, *, cache_size: int = 4096) -> None:
        self._client = client
        self._cache: OrderedDict[str, _Described] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._instances: dict[str, str] = {}
        """Container instance ARN -> EC2 instance id (fixed for the instance's life)."""

    # -- services ---------------------------------------------------------------

    def describe_services(
        self, cluster: str, names: Sequence[str]
    ) -> dict[str, ServiceState | ServiceMissing]:
        """Every named service of ``cluster``, keyed by the name asked for.

        Services ECS reports in ``failures``, or as INACTIVE or DRAINING (deleted
        or being deleted: UpdateService would fail), come back as ``ServiceMissing``.
        """
        wanted = list(dict.fromkeys(names))
        result: dict[str, ServiceState | ServiceMissing] = {}
        for start in range(0, len(wanted), DESCRIBE_SERVICES_BATCH):
            batch = wanted[start : start + DESCRIBE_SERVICES_BATCH]
            response = self._call(
                "describe_services", cluster=cluster, services=batch, include=["TAGS"]
            )
            found: dict[str, dict[str, Any]] = {}
            for service in response.get("services") or ():
                found[service["serviceName"]] = found[service["serviceArn"]] = service
            failed: dict[str, str] = {}
            for failure in response.get("failures") or ():
                arn = str(failure.get("arn", ""))
                reason = str(failure.get("reason", "unknown"))
                if failure.get("detail"):
                    reason = f"{reason}: {failure['detail']}"
                failed[arn] = failed[arn.rsplit("/", 1)[-1]] = reason
            observed_at = _response_date(response)
            for name in batch:
                service = found.get(name)
                if service is None:
                    reason = failed.get(name) or failed.get(name.rsplit("/", 1)[-1], "MISSING")
                    result[name] = ServiceMissing(cluster, name, reason)
                elif service.get("status") in {"INACTIVE", "DRAINING"}:
                    result[name] = ServiceMissing(cluster, name, f"status {service['status']}")
                else:
                    result[name] = _service_state(cluster, service, observed_at)
        return result

    def update_service(
        self, cluster: str, service: str, task_definition: TaskDefinitionArn
    ) -> None:
        """Point the service at ``task_definition``; ECS starts a new deployment.

        Only ``taskDefinition`` is sent: desired count, capacity and every other
        setting stay whatever their owners (autoscaling, humans) made them.
        """
        self._call(
            "update_service", cluster=cluster, service=service, taskDefinition=task_definition
        )

    def tag_service(self, service_arn: str, tags: Mapping[str, str]) -> None:
        """Set tags on a service (ecsop's memory: last-good, failed fingerprint)."""
        if tags:
            self._call("tag_resource", resourceArn=service_arn, tags=taskdef.tag_list(tags))

    def untag_service(self, service_arn: str, keys: Sequence[str]) -> None:
        """Remove tags from a service (``ecsop retry`` clears the failed record so)."""
        if keys:
            self._call("untag_resource", resourceArn=service_arn, tagKeys=list(keys))

    def stopped_task_reasons(self, cluster: str, deployment_id: str, limit: int = 10) -> list[str]:
        """Why up to ``limit`` of the deployment's tasks stopped, newest first, one line each.

        ECS sets a service task's ``startedBy`` to its deployment id and keeps
        stopped tasks listed for about an hour. Meant for failure paths only
        (classification, status), never for steady state: it costs a ListTasks
        per 100 tasks and a DescribeTasks per 100.
        """
        arns: list[str] = []
        listing: dict[str, Any] = {
            "cluster": cluster,
            "startedBy": deployment_id,
            "desiredStatus": "STOPPED",
        }
        while len(arns) < limit:
            listing["maxResults"] = min(limit - len(arns), DESCRIBE_TASKS_BATCH)
            page = self._call("list_tasks", **listing)
            arns.extend(page.get("taskArns") or ())
            listing["nextToken"] = page.get("nextToken")
            if not listing["nextToken"]:
                break
        tasks: list[dict[str, Any]] = []
        for start in range(0, len(arns[:limit]), DESCRIBE_TASKS_BATCH):
            batch = arns[start : min(start + DESCRIBE_TASKS_BATCH, limit)]
            tasks.extend(self._call("describe_tasks", cluster=cluster, tasks=batch)["tasks"])
        tasks.sort(key=lambda t: _time(t.get("stoppedAt") or t.get("createdAt") or 0), reverse=True)
        return [_stopped_reason(task) for task in tasks]

    def deployment_targets(self, cluster: str, deployment_id: str) -> list[TaskTarget]:
        """Where the deployment's RUNNING tasks are registered in target groups.

        For health gates during a rollout only (``ecsop.health``): ListTasks by
        ``startedBy`` (the deployment id), DescribeTasks 100 at a time, and
        DescribeContainerInstances for EC2 instance ids, cached.
        """
        arns: list[str] = []
        listing: dict[str, Any] = {"cluster": cluster, "startedBy": deployment_id}
        while True:
            page = self._call("list_tasks", maxResults=DESCRIBE_TASKS_BATCH, **listing)
            arns.extend(page.get("taskArns") or ())
            listing["nextToken"] = page.get("nextToken")
            if not listing["nextToken"]:
                break
        tasks: list[dict[str, Any]] = []
        for start in range(0, len(arns), DESCRIBE_TASKS_BATCH):
            batch = arns[start : start + DESCRIBE_TASKS_BATCH]
            tasks.extend(self._call("describe_tasks", cluster=cluster, tasks=batch)["tasks"])
        self._resolve_instances(
            cluster, {t["containerInstanceArn"] for t in tasks if t.get("containerInstanceArn")}
        )
        with self._lock:
            instances = dict(self._instances)
        return [_task_target(task, instances) for task in tasks]

    def _resolve_instances(self, cluster: str, arns: set[str]) -> None:
        with self._lock:
            unknown = sorted(arns - set(self._instances))
        for start in range(0, len(unknown), DESCRIBE_TASKS_BATCH):
            batch = unknown[start : start + DESCRIBE_TASKS_BATCH]
            found = self._call(
                "describe_container_instances", cluster=cluster, containerInstances=batch
            )
            with self._lock:
                for instance in found.get("containerInstances") or ():
                    self._instances[instance["containerInstanceArn"]] = str(
                        instance.get("ec2InstanceId", "")
                    )

    # -- task definitions -------------------------------------------------------

    def task_definition(self, arn: str) -> TaskDefinition:
        """The task definition revision ``arn`` (or ``family:revision``), cached."""
        return self._described(arn).value

    def find_revision(self, family: str, fingerprint: str) -> TaskDefinitionArn | None:
        """The newest ACTIVE revision of ``family`` tagged with ``fingerprint``, if any.

        This is how a revert reuses the old revision and how a revision registered
        just before a crash is reused instead of registered twice. Looks at the
        ``FIND_REVISION_LIMIT`` newest revisions, through the cache.
        """
        for arn in self._newest_revisions(family):
            if self.task_definition(arn).tags.get(TAG_FINGERPRINT) == fingerprint:
                return arn
        return None

    def register_clone(
        self, base: str, images: Mapping[str, str], tags: Mapping[str, str]
    ) -> TaskDefinition:
        """Register a copy of ``base`` with new images for the named containers and ``tags`` added.

        Raises ``ValueError`` (a spec error) when a container name is not in
        ``base``, ``AwsError`` when ECS refuses the registration.
        """
        described = self._described(base)
        request = taskdef.register_request_from(described.raw, described.raw_tags, images, tags)
        response = self._call("register_task_definition", **request)
        return self._remember(
            response["taskDefinition"], response.get("tags", request.get("tags"))
        ).value

    def _newest_revisions(self, family: str) -> list[TaskDefinitionArn]:
        """ARNs of ``family``'s newest ACTIVE revisions, newest first.

        ``familyPrefix`` matches every family starting with ``family``, so others
        are filtered out; sorting is redone here because moto ignores ``sort``.
        """
        revisions: dict[int, str] = {}
        kwargs: dict[str, Any] = {
            "familyPrefix": family,
            "status": "ACTIVE",
            "sort": "DESC",
            "maxResults": 100,
        }
        for _ in range(_LIST_PAGES_MAX):
            response = self._call("list_task_definitions", **kwargs)
            for arn in response.get("taskDefinitionArns") or ():
                name = arn.rsplit("/", 1)[-1]
                match = _REVISION.search(name)
                if match and name[: match.start()] == family:
                    revisions[int(match.group(1))] = arn
            kwargs["nextToken"] = response.get("nextToken")
            if not kwargs["nextToken"] or len(revisions) >= FIND_REVISION_LIMIT:
                break
        newest = sorted(revisions, reverse=True)[:FIND_REVISION_LIMIT]
        return [TaskDefinitionArn(revisions[revision]) for revision in newest]

    def _described(self, arn: str) -> _Described:
        with self._lock:
            cached = self._cache.get(arn)
            if cached is not None:
                self._cache.move_to_end(arn)
                return cached
        response = self._call("describe_task_definition", taskDefinition=arn, include=["TAGS"])
        described = self._remember(response["taskDefinition"], response.get("tags"))
        if _REVISION.search(arn):  # "family" alone means "latest": not immutable, not a key
            self._store(arn, described)
        return described

    def _remember(self, raw: dict[str, Any], raw_tags: list[dict[str, Any]] | None) -> _Described:
        value = TaskDefinition(
            arn=TaskDefinitionArn(raw["taskDefinitionArn"]),
            family=str(raw["family"]),
            revision=int(raw["revision"]),
            images=taskdef.images_of(raw),
            tags=taskdef.tags_of(raw_tags),
        )
        described = _Described(value, raw, list(raw_tags or ()))
        self._store(value.arn, described)
        return described

    def _store(self, key: str, described: _Described) -> None:
        with self._lock:
            self._cache[key] = described
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Call one boto3 client method; botocore failures come out as ``AwsError``."""
        operation = self._client.meta.method_to_api_mapping.get(method, method)
        with aws.translated_errors(operation):
            response: dict[str, Any] = getattr(self._client, method)(**kwargs)
        return response


# -- mapping boto3 dicts to observed values ------------------------------------


def _service_state(cluster: str, raw: dict[str, Any], observed_at: datetime | None) -> ServiceState:
    arn = str(raw["serviceArn"])
    config = raw.get("deploymentConfiguration") or {}
    breaker = config.get("deploymentCircuitBreaker") or {}
    alarms = config.get("alarms") or {}
    events = sorted(_events(raw.get("events")), key=lambda e: e.created_at, reverse=True)
    return ServiceState(
        arn=arn,
        cluster=cluster,
        name=str(raw["serviceName"]),
        status=str(raw.get("status", "")),
        task_definition=_task_definition_arn(raw.get("taskDefinition", ""), arn),
        desired_count=int(raw.get("desiredCount", 0)),
        running_count=int(raw.get("runningCount", 0)),
        deployments=tuple(_deployment(d, arn) for d in raw.get("deployments") or ()),
        tags=taskdef.tags_of(raw.get("tags")),
        circuit_breaker_enabled=bool(breaker.get("enable", False)),
        circuit_breaker_rollback=bool(breaker.get("rollback", False)),
        alarm_names=tuple(alarms.get("alarmNames") or ()) if alarms.get("enable") else (),
        has_load_balancers=bool(raw.get("loadBalancers")),
        load_balancers=tuple(
            LoadBalancer(
                str(lb["targetGroupArn"]),
                str(lb.get("containerName", "")),
                int(lb.get("containerPort") or 0),
            )
            for lb in raw.get("loadBalancers") or ()
            if lb.get("targetGroupArn")
        ),
        health_check_grace_seconds=int(raw.get("healthCheckGracePeriodSeconds") or 0),
        events=tuple(events[:EVENTS_KEPT]),
        observed_at=observed_at,
    )


def _deployment(raw: dict[str, Any], service_arn: str) -> Deployment:
    if raw.get("createdAt") is None:
        # A rollout's deadline counts from here; inventing a time could roll back a
        # healthy deployment, so an answer without it is an error, not a default.
        raise aws.AwsError(
            "IncompleteResponse", f"deployment {raw.get('id')} has no createdAt", "DescribeServices"
        )
    created_at = _time(raw["createdAt"])
    rollout_state = raw.get("rolloutState")
    return Deployment(
        id=str(raw["id"]),
        status=DeploymentStatus(raw["status"]),
        task_definition=_task_definition_arn(raw.get("taskDefinition", ""), service_arn),
        rollout_state=RolloutState(rollout_state) if rollout_state else None,
        rollout_state_reason=str(raw.get("rolloutStateReason", "")),
        desired_count=int(raw.get("desiredCount", 0)),
        running_count=int(raw.get("runningCount", 0)),
        pending_count=int(raw.get("pendingCount", 0)),
        failed_tasks=int(raw.get("failedTasks", 0)),
        created_at=created_at,
        updated_at=_time(raw["updatedAt"]) if raw.get("updatedAt") else created_at,
    )


def _events(raw: list[dict[str, Any]] | None) -> Iterator[ServiceEvent]:
    for event in raw or ():
        if event.get("createdAt") is not None:
            yield ServiceEvent(
                str(event.get("id", "")), _time(event["createdAt"]), str(event.get("message", ""))
            )


def _task_definition_arn(reference: str, like_arn: str) -> TaskDefinitionArn:
    """``reference`` as a full ARN, borrowing partition, region and account from ``like_arn``."""
    if reference.startswith("arn:") or not reference:
        return TaskDefinitionArn(reference)
    parts = like_arn.split(":")
    if len(parts) < 6:
        return TaskDefinitionArn(reference)
    partition, region, account = parts[1], parts[3], parts[4]
    name = reference.removeprefix("task-definition/")
    return TaskDefinitionArn(f"arn:{partition}:ecs:{region}:{account}:task-definition/{name}")


def _time(value: Any) -> datetime:
    """A timezone-aware UTC datetime from whatever botocore parsed (datetime, epoch, ISO)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _response_date(response: Mapping[str, Any]) -> datetime | None:
    """AWS's clock at the response (the HTTP Date header), if it sent one.

    Whole seconds only, which is plenty for timeouts of minutes; the sandbox's
    simulator sets it from its own (faster) clock.
    """
    headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    try:
        return _time(email.utils.parsedate_to_datetime(headers["date"]))
    except (KeyError, TypeError, ValueError):
        return None


def _task_target(task: dict[str, Any], instances: Mapping[str, str]) -> TaskTarget:
    """A task's ENI addresses (awsvpc) and its host port bindings (bridge/host mode)."""
    ips = [
        str(detail.get("value"))
        for attachment in task.get("attachments") or ()
        if attachment.get("type") == "ElasticNetworkInterface"
        for detail in attachment.get("details") or ()
        if detail.get("name") == "privateIPv4Address" and detail.get("value")
    ]
    ports = {
        (str(c.get("name")), int(b["containerPort"])): int(b["hostPort"])
        for c in task.get("containers") or ()
        for b in c.get("networkBindings") or ()
        if b.get("containerPort") is not None and b.get("hostPort") is not None
    }
    return TaskTarget(
        task_arn=str(task["taskArn"]),
        started_at=_time(task["startedAt"]) if task.get("startedAt") else None,
        ips=tuple(dict.fromkeys(ips)),
        instance_id=instances.get(str(task.get("containerInstanceArn", "")), ""),
        host_ports=ports,
    )


def _stopped_reason(task: dict[str, Any]) -> str:
    """One line: stop code, stopped reason, then each container's exit code or reason."""
    head = ": ".join(str(p) for p in (task.get("stopCode"), task.get("stoppedReason")) if p)
    parts = [head or "stopped"]
    for container in task.get("containers") or ():
        name = container.get("name", "?")
        if container.get("exitCode") is not None:
            parts.append(f"container {name} exit code {container['exitCode']}")
        if container.get("reason"):
            parts.append(f"container {name}: {container['reason']}")
    return "; ".join(parts)
