"""The ECS gateway: the only code that calls the ECS API.

``EcsGateway`` wraps one boto3 ECS client (one region, one role) and speaks
``ecsop.decision`` values (read by ``ecsop.aws.ecs_mapping``): boto3's dicts
never leave the gateway, and AWS failures leave it as ``clients.AwsError``.
The reconcile pass and its executor call it; the decision never does. Task
definitions are ``ecsop.aws.revisions``'s half.

Cost is designed in. DescribeServices is batched 10 names per call (ECS's
maximum); task definitions, immutable once registered, are cached by ARN so
steady-state observation makes no DescribeTaskDefinition calls at all; a
stopped task is described once (it never changes again).

Task definition references are normalised to full ARNs: ECS returns them so, but
moto (behind the sandbox) answers short ``family:revision`` names in places, and
the cache, the ``ecsop:last-good`` tag and the reconciler all compare ARNs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from ecsop.aws import clients as aws
from ecsop.aws import ecs_mapping, taskdef
from ecsop.aws.history import HistoryEntry, ServiceHistory, entries
from ecsop.aws.one_off import OneOffTasks
from ecsop.aws.revisions import PreparedClone, Revisions
from ecsop.decision.ecs_state import (
    Fingerprint,
    ServiceMissing,
    ServiceState,
    TaskDefinition,
    TaskDefinitionArn,
    TaskLaunch,
    TaskTarget,
    short_name,
)
from ecsop.decision.memory import FailedRecord, RevisionMemory, StepRecord
from ecsop.decision.observation import ServiceDeploymentRecord, StoppedTasks
from ecsop.decision.step_state import StepTask
from ecsop.spec.model import ServiceRelease

DESCRIBE_SERVICES_BATCH = 10
"""ECS's maximum number of services per DescribeServices call."""
DESCRIBE_TASKS_BATCH = 100
"""ECS's maximum number of tasks per DescribeTasks call."""
STOPPED_TASKS_READ = 100
"""Stopped tasks of a deployment read per look: one ListTasks page."""
STOPPED_TASKS_CACHED = 20_000
"""Stopped tasks' descriptions kept (they never change once STOPPED)."""
HISTORY_READ = 10
"""Service deployments read when ecsop asks what became of its rollout."""


class EcsGateway:
    """ECS operations for one (region, role); thread-safe, so workers share one."""

    def __init__(self, client: Any, register_client: Any = None, *, cache_size: int = 4096) -> None:
        self._client = client
        self._register_client = register_client or client
        self.revisions = Revisions(self._call, self._register, cache_size=cache_size)
        self._history = ServiceHistory(self._call, self.revisions)
        self.one_off = OneOffTasks(self._call, self.revisions)
        """Steps' one-off tasks and their records (``spec.preDeploy``, ``spec.verify``)."""
        self._lock = threading.Lock()
        self._instances: dict[str, str] = {}
        """Container instance ARN -> EC2 instance id (fixed for the instance's life)."""
        self._revisions: OrderedDict[str, dict[str, Any]] = OrderedDict()
        """Service revision ARN -> DescribeServiceRevisions' answer (revisions never change)."""
        self._stopped: OrderedDict[str, tuple[float, str]] = OrderedDict()
        """Stopped task ARN -> (when it stopped, its one-line reason)."""

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

    def update_service(
        self,
        cluster: str,
        service: str,
        task_definition: TaskDefinitionArn,
        deployment_configuration: Mapping[str, Any] | None = None,
    ) -> str:
        """Point the service at ``task_definition``; the id of the deployment ECS started.

        Only ``taskDefinition`` is sent, and ``deploymentConfiguration`` when the
        spec sets a strategy: desired count, capacity and every other setting
        stay whatever their owners (autoscaling, humans) made them. The id
        (``""`` if the response lacks one) is for logs: it names the rollout a
        person will look for in the ECS console.
        """
        extra: dict[str, Any] = {}
        if deployment_configuration is not None:
            extra["deploymentConfiguration"] = taskdef.accepted(
                deployment_configuration, "UpdateService", "deploymentConfiguration"
            )
        response = self._call(
            "update_service",
            cluster=cluster,
            service=service,
            taskDefinition=task_definition,
            **extra,
        )
        for deployment in (response.get("service") or {}).get("deployments") or ():
            if deployment.get("status") == "PRIMARY":
                return str(deployment.get("id", ""))
        return ""

    def stop_service_deployment(self, service_deployment: str) -> None:
        """Roll a service deployment back (ECS sends traffic back to the source revision)."""
        self._call(
            "stop_service_deployment", serviceDeploymentArn=service_deployment, stopType="ROLLBACK"
        )

    def continue_service_deployment(
        self, service_deployment: str, hook_id: str, action: str
    ) -> None:
        """Act on a PAUSE hook ECS waits at: ``CONTINUE`` or ``ROLLBACK``."""
        self._call(
            "continue_service_deployment",
            serviceDeploymentArn=service_deployment,
            hookId=hook_id,
            action=action,
        )

    def service_deployment(self, arn: str) -> dict[str, Any] | None:
        """One service deployment as DescribeServiceDeployments reports it (None if unknown)."""
        found = self._call("describe_service_deployments", serviceDeploymentArns=[arn])
        for deployment in found.get("serviceDeployments") or ():
            return dict(deployment)
        return None

    def service_revision(self, arn: str) -> dict[str, Any] | None:
        """One service revision (immutable: described once and cached)."""
        with self._lock:
            cached = self._revisions.get(arn)
        if cached is not None:
            return cached
        found = self._call("describe_service_revisions", serviceRevisionArns=[arn])
        for revision in found.get("serviceRevisions") or ():
            with self._lock:
                self._revisions[arn] = dict(revision)
                while len(self._revisions) > STOPPED_TASKS_CACHED:
                    self._revisions.popitem(last=False)
            return dict(revision)
        return None

    def tag_service(self, service_arn: str, tags: Mapping[str, str]) -> None:
        """Set tags on a service (ecsop's memory: last-good, failed fingerprint)."""
        if tags:
            self._call("tag_resource", resourceArn=service_arn, tags=taskdef.tag_list(tags))

    def untag_service(self, service_arn: str, keys: Sequence[str]) -> None:
        """Remove tags from a service (``ecsop retry`` clears the failed record so)."""
        if keys:
            self._call("untag_resource", resourceArn=service_arn, tagKeys=list(keys))

    def stopped_tasks(
        self, cluster: str, deployment_id: str, limit: int = STOPPED_TASKS_READ
    ) -> StoppedTasks:
        """Why the deployment's stopped tasks stopped, newest first, one line each.

        ECS sets a service task's ``startedBy`` to its deployment id and keeps
        stopped tasks listed for about an hour. Read only while a rollout is
        judged: one ListTasks, and a DescribeTasks only for tasks not seen
        before (a STOPPED task never changes), so a crash loop polled every few
        seconds costs one call per poll once its tasks are known.
        """
        page = self._call(
            "list_tasks",
            cluster=cluster,
            startedBy=deployment_id,
            desiredStatus="STOPPED",
            maxResults=min(limit, DESCRIBE_TASKS_BATCH),
        )
        arns = list(page.get("taskArns") or ())[:limit]
        with self._lock:
            unknown = [arn for arn in arns if arn not in self._stopped]
        described: list[dict[str, Any]] = []
        for start in range(0, len(unknown), DESCRIBE_TASKS_BATCH):
            batch = unknown[start : start + DESCRIBE_TASKS_BATCH]
            described.extend(self._call("describe_tasks", cluster=cluster, tasks=batch)["tasks"])
        fresh: dict[str, tuple[float, str]] = {}
        for task in described:
            stopped_at = task.get("stoppedAt") or task.get("createdAt") or 0
            fresh[str(task["taskArn"])] = (
                ecs_mapping.aws_time(stopped_at).timestamp(),
                ecs_mapping.stopped_reason(task),
            )
        with self._lock:
            for task in described:
                if task.get("lastStatus") == "STOPPED":  # final: exit codes are known
                    self._stopped[str(task["taskArn"])] = fresh[str(task["taskArn"])]
            while len(self._stopped) > STOPPED_TASKS_CACHED:
                self._stopped.popitem(last=False)
            known = {arn: fresh.get(arn) or self._stopped.get(arn) for arn in arns}
        found = sorted((entry for entry in known.values() if entry), reverse=True)
        return StoppedTasks(
            lines=tuple(line for _, line in found), complete=not page.get("nextToken")
        )

    def service_deployments(
        self, cluster: str, service: str
    ) -> tuple[ServiceDeploymentRecord, ...] | None:
        """The service's newest deployments, newest first; None if ECS cannot say.

        Read only to learn what became of a rollout ecsop no longer sees: a
        ListServiceDeployments and a DescribeServiceRevisions (for the task
        definitions). "View service history using Amazon ECS service
        deployments", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-deployment.html
        """
        try:
            listed = self._call(
                "list_service_deployments",
                cluster=cluster,
                service=service,
                maxResults=HISTORY_READ,
            )
            briefs = list(listed.get("serviceDeployments") or ())
            revisions = [
                b["targetServiceRevisionArn"] for b in briefs if b.get("targetServiceRevisionArn")
            ]
            task_definitions: dict[str, str] = {}
            if revisions:
                found = self._call("describe_service_revisions", serviceRevisionArns=revisions)
                for revision in found.get("serviceRevisions") or ():
                    task_definitions[str(revision["serviceRevisionArn"])] = str(
                        revision.get("taskDefinition", "")
                    )
        except aws.AwsError as error:
            if error.retryable:
                raise
            return None  # not supported here, or not allowed: the caller falls back
        records = [
            ecs_mapping.service_deployment_record(brief, task_definitions) for brief in briefs
        ]
        return tuple(sorted(records, key=lambda r: r.created_at, reverse=True))

    def release_history(
        self,
        cluster: str,
        service: str,
        release: ServiceRelease,
        failed: FailedRecord | None,
        limit: int,
    ) -> list[HistoryEntry]:
        """The release's newest ``limit`` deployments, newest first, and what became of each.

        For ``ecsop history`` and ``/status``, on demand (``ecsop.aws.history``).
        """
        raws, revisions = self._history.read(cluster, service, limit)
        return entries(raws, revisions, release, failed)

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

    # -- task definitions (``ecsop.aws.revisions``) ------------------------------

    def task_definition(self, arn: str) -> TaskDefinition:
        """The task definition revision ``arn`` (or ``family:revision``), cached."""
        return self.revisions.get(arn)

    def prepare_clone(
        self,
        base: TaskDefinitionArn,
        images: Mapping[str, str],
        release: str,
        fingerprint: str,
        commit: str | None,
    ) -> PreparedClone:
        return self.revisions.prepare_clone(
            base, images, RevisionMemory(release, Fingerprint(fingerprint), "", commit or "")
        )

    def reusable(self, arn: TaskDefinitionArn, clone: PreparedClone) -> bool:
        return self.revisions.reusable(arn, clone)

    def find_revision(self, clone: PreparedClone) -> TaskDefinitionArn | None:
        return self.revisions.find(clone)

    def register(self, clone: PreparedClone) -> TaskDefinition:
        return self.revisions.register(clone)

    def release_revisions(self, family: str, release: str) -> list[TaskDefinition]:
        """The newest ACTIVE revisions of ``family`` registered for ``release`` (cached tags)."""
        return self.revisions.of_release(family, release)

    # -- steps (``ecsop.aws.one_off``) ---------------------------------------------

    def fresh_revision(self, arn: str) -> TaskDefinition:
        return self.one_off.fresh(arn)

    def record_step(self, arn: str, step: str, record: StepRecord) -> TaskDefinition:
        return self.one_off.record(arn, step, record)

    def step_tasks(self, cluster: str, started_by: str, container: str) -> tuple[StepTask, ...]:
        return self.one_off.tasks(cluster, started_by, container)

    def run_step(
        self,
        cluster: str,
        revision: str,
        launch: TaskLaunch,
        *,
        container: str,
        command: tuple[str, ...],
        environment: Mapping[str, str],
        started_by: str,
        client_token: str,
        tags: Mapping[str, str],
    ) -> StepTask:
        return self.one_off.run(
            cluster,
            revision,
            launch,
            container=container,
            command=command,
            environment=environment,
            started_by=started_by,
            client_token=client_token,
            tags=tags,
        )

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        self.one_off.stop(cluster, task_arn, reason)
    def newest_revisions(self, family: str) -> list[TaskDefinitionArn]:
        """The family's newest ACTIVE revisions, newest first (``Revisions.newest``)."""
        return self.revisions.newest(family)

    def tag_task_definition(self, arn: str, tags: Mapping[str, str]) -> None:
        """Tag a revision after it was registered (a proof: ``ecsop.aws.proofs``)."""
        if tags:
            self._call("tag_resource", resourceArn=arn, tags=taskdef.tag_list(tags))

    def resource_tags(self, arn: str) -> dict[str, str]:
        """A resource's tags as they are now (a revision's proof may postdate the cache)."""
        response = self._call("list_tags_for_resource", resourceArn=arn)
        return taskdef.tags_of(response.get("tags"))

    def _register(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """RegisterTaskDefinition through the single-attempt client (``Revisions.register``)."""
        operation = self._register_client.meta.method_to_api_mapping.get(method, method)
        with aws.translated_errors(operation):
            response: dict[str, Any] = getattr(self._register_client, method)(**kwargs)
        return response

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Call one boto3 client method; botocore failures come out as ``AwsError``."""
        operation = self._client.meta.method_to_api_mapping.get(method, method)
        with aws.translated_errors(operation):
            response: dict[str, Any] = getattr(self._client, method)(**kwargs)
        return response


class GatewayPool:
    """One ``EcsGateway`` (and so one task definition cache) per (region, role)."""

    def __init__(self, clients: aws.ClientFactory, cache_size: int = 4096) -> None:
        self._clients = clients
        self.cache_size = cache_size
        """Task definition revisions cached per gateway (see ``fit_cache``)."""
        self._lock = threading.Lock()
        self._gateways: dict[tuple[str, str | None], EcsGateway] = {}

    def ecs(self, region: str, role_arn: str | None) -> EcsGateway:
        key = (region, role_arn)
        with self._lock:
            gateway = self._gateways.get(key)
            if gateway is None:
                gateway = EcsGateway(
                    self._clients.client("ecs", region, role_arn),
                    self._clients.client("ecs", region, role_arn, retries=False),
                    cache_size=self.cache_size,
                )
                self._gateways[key] = gateway
            return gateway

    def fit_cache(self, releases: int) -> None:
        """Size every gateway's revision cache for ``releases`` releases.

        Steady state reads, per release, the revision it runs and its
        last-good (more during a rollout): four per release, with room for
        searches, keeps every resync free of DescribeTaskDefinition calls.
        """
        size = max(4096, 4 * releases + 1024)
        with self._lock:
            self.cache_size = size
            for gateway in self._gateways.values():
                gateway.revisions.cache_size = size
