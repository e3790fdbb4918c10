"""The ECS gateway: the only code that calls the ECS API.

``EcsGateway`` wraps one boto3 ECS client (one region, one role) and speaks
``ecsop.observed`` values (read by ``ecsop.ecs_mapping``): boto3's dicts never
leave the gateway, and AWS failures leave it as ``ecsop.aws.AwsError``. The
controller's executor calls it; the reconciler never does.

Cost is designed in. DescribeServices is batched 10 names per call (ECS's
maximum), and task definitions, immutable once registered, are cached by ARN so
steady-state observation makes no DescribeTaskDefinition calls at all.

Task definition references are normalised to full ARNs: ECS returns them so, but
moto (behind the sandbox) answers short ``family:revision`` names in places, and
the cache, the ``ecsop:last-good`` tag and the reconciler all compare ARNs.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecsop.aws import clients as aws
from ecsop.aws import ecs_mapping, taskdef
from ecsop.decision.ecs_state import (
    TAG_FINGERPRINT,
    ServiceMissing,
    ServiceState,
    TaskDefinition,
    TaskDefinitionArn,
    TaskTarget,
    short_name,
)

DESCRIBE_SERVICES_BATCH = 10
"""ECS's maximum number of services per DescribeServices call."""
DESCRIBE_TASKS_BATCH = 100
"""ECS's maximum number of tasks per DescribeTasks call."""
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
                failed[arn] = failed[short_name(arn)] = reason
            observed_at = ecs_mapping.response_date(response)
            for name in batch:
                service = found.get(name)
                if service is None:
                    reason = failed.get(name) or failed.get(short_name(name), "MISSING")
                    result[name] = ServiceMissing(cluster, name, reason)
                elif service.get("status") in {"INACTIVE", "DRAINING"}:
                    result[name] = ServiceMissing(cluster, name, f"status {service['status']}")
                else:
                    result[name] = ecs_mapping.service_state(cluster, service, observed_at)
        return result

    def update_service(self, cluster: str, service: str, task_definition: TaskDefinitionArn) -> str:
        """Point the service at ``task_definition``; the id of the deployment ECS started.

        Only ``taskDefinition`` is sent: desired count, capacity and every other
        setting stay whatever their owners (autoscaling, humans) made them. The
        id (``""`` if the response lacks one) is for logs: it names the rollout
        a person will look for in the ECS console.
        """
        response = self._call(
            "update_service", cluster=cluster, service=service, taskDefinition=task_definition
        )
        for deployment in (response.get("service") or {}).get("deployments") or ():
            if deployment.get("status") == "PRIMARY":
                return str(deployment.get("id", ""))
        return ""

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
        tasks.sort(
            key=lambda t: ecs_mapping.aws_time(t.get("stoppedAt") or t.get("createdAt") or 0),
            reverse=True,
        )
        return [ecs_mapping.stopped_reason(task) for task in tasks]

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
        return [ecs_mapping.task_target(task, instances) for task in tasks]

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
                name = short_name(arn)
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


class GatewayPool:
    """One ``EcsGateway`` (and so one task definition cache) per (region, role)."""

    def __init__(self, clients: aws.ClientFactory) -> None:
        self._clients = clients
        self._lock = threading.Lock()
        self._gateways: dict[tuple[str, str | None], EcsGateway] = {}

    def ecs(self, region: str, role_arn: str | None) -> EcsGateway:
        key = (region, role_arn)
        with self._lock:
            gateway = self._gateways.get(key)
            if gateway is None:
                gateway = EcsGateway(self._clients.client("ecs", region, role_arn))
                self._gateways[key] = gateway
            return gateway
