"""Steps' one-off tasks: RunTask, StopTask, finding them again, and their records' tags.

``OneOffTasks`` is the step half of ``ecsop.aws.ecs.EcsGateway`` (as
``Revisions`` is its task definition half). What makes a step run exactly once
lives in AWS, so this module only speaks it:

- **Finding a step's task.** ListTasks by the attempt's ``startedBy`` (once for
  running tasks, once for stopped ones: ListTasks filters by one desired
  status, RUNNING by default), then DescribeTasks
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTasks.html).
- **Starting it.** RunTask on the release's revision with the service's own
  launch type or capacity provider strategy, network configuration and
  platform version; only the step's container's command (and environment) is
  overridden; ``startedBy``, tags and an idempotency ``clientToken``, so a retry
  after a lost answer returns the same task
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RunTask.html).
  A RunTask that places no task answers ``failures`` (no capacity): that is an
  error here, and no task exists.
- **Stopping it** on a timeout: StopTask with a reason
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_StopTask.html).
- **Records** on the revision's tags: read fresh with ListTagsForResource (the
  cache's copy may predate ``ecsop retry`` in another process), written with
  TagResource; the cached revision follows both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ecsop.aws import clients, ecs_mapping, taskdef
from ecsop.aws.revisions import Revisions
from ecsop.decision.ecs_state import TaskDefinition, TaskLaunch
from ecsop.decision.memory import StepRecord, step_tag
from ecsop.decision.step_state import StepTask

Call = Callable[..., dict[str, Any]]
DESCRIBE_TASKS_BATCH = 100
RUN_TASK_FAILED = "RunTaskFailed"
"""The error code of a RunTask that answered ``failures`` and started no task."""


class OneOffTasks:
    """Step tasks and step records for one (region, role); thread-safe (no state of its own)."""

    def __init__(self, call: Call, revisions: Revisions) -> None:
        self._call = call
        self._revisions = revisions

    # -- records on revisions -------------------------------------------------------

    def fresh(self, arn: str) -> TaskDefinition:
        """Revision ``arn`` with its tags as they are now (one ListTagsForResource)."""
        response = self._call("list_tags_for_resource", resourceArn=arn)
        return self._revisions.tagged(arn, taskdef.tags_of(response.get("tags")))

    def record(self, arn: str, step: str, record: StepRecord) -> TaskDefinition:
        """Write ``record`` as step ``step``'s tag on revision ``arn``."""
        self._call(
            "tag_resource", resourceArn=arn, tags=taskdef.tag_list({step_tag(step): record.value()})
        )
        current = self._revisions.get(arn)
        return self._revisions.tagged(arn, {**current.tags, step_tag(step): record.value()})

    # -- tasks ----------------------------------------------------------------------

    def tasks(self, cluster: str, started_by: str, container: str) -> tuple[StepTask, ...]:
        """The tasks started with ``started_by``, running or stopped, oldest first."""
        arns: list[str] = []
        for desired in ("RUNNING", "STOPPED"):
            listing: dict[str, Any] = {"cluster": cluster, "startedBy": started_by}
            while True:
                page = self._call(
                    "list_tasks", desiredStatus=desired, maxResults=DESCRIBE_TASKS_BATCH, **listing
                )
                arns.extend(a for a in page.get("taskArns") or () if a not in arns)
                listing["nextToken"] = page.get("nextToken")
                if not listing["nextToken"]:
                    break
        found: list[StepTask] = []
        for start in range(0, len(arns), DESCRIBE_TASKS_BATCH):
            batch = arns[start : start + DESCRIBE_TASKS_BATCH]
            described = self._call("describe_tasks", cluster=cluster, tasks=batch)
            found.extend(ecs_mapping.step_task(t, container) for t in described.get("tasks") or ())
        return tuple(sorted(found, key=lambda task: task.created_at))

    def run(
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
        """Start one task of ``revision`` as the service would launch it; raises if none started."""
        override: dict[str, Any] = {"name": container, "command": list(command)}
        if environment:
            override["environment"] = [
                {"name": k, "value": v} for k, v in sorted(environment.items())
            ]
        request: dict[str, Any] = {
            "cluster": cluster,
            "taskDefinition": revision,
            "count": 1,
            "startedBy": started_by,
            "clientToken": client_token,
            "overrides": {"containerOverrides": [override]},
            "tags": taskdef.tag_list(tags),
            **run_task_launch(launch),
        }
        response = self._call("run_task", **request)
        tasks = response.get("tasks") or ()
        if not tasks:
            failures = response.get("failures") or ()
            why = "; ".join(
                ": ".join(str(f[k]) for k in ("reason", "detail") if f.get(k)) for f in failures
            )
            raise clients.AwsError(
                RUN_TASK_FAILED,
                f"RunTask started no task of {revision}: {why or 'no failure given'}",
                "RunTask",
            )
        return ecs_mapping.step_task(tasks[0], container)

    def stop(self, cluster: str, task_arn: str, reason: str) -> None:
        self._call("stop_task", cluster=cluster, task=task_arn, reason=reason[:255])


def run_task_launch(launch: TaskLaunch) -> dict[str, Any]:
    """RunTask's launch parameters repeating the service's (``DescribeServices``)."""
    request: dict[str, Any] = {}
    if launch.capacity_provider_strategy:
        request["capacityProviderStrategy"] = [
            {"capacityProvider": item.provider, "weight": item.weight, "base": item.base}
            for item in launch.capacity_provider_strategy
        ]
    elif launch.launch_type:
        request["launchType"] = launch.launch_type
    if launch.platform_version:
        request["platformVersion"] = launch.platform_version
    if launch.awsvpc is not None:
        awsvpc: dict[str, Any] = {"subnets": list(launch.awsvpc.subnets)}
        if launch.awsvpc.security_groups:
            awsvpc["securityGroups"] = list(launch.awsvpc.security_groups)
        if launch.awsvpc.assign_public_ip:
            awsvpc["assignPublicIp"] = launch.awsvpc.assign_public_ip
        request["networkConfiguration"] = {"awsvpcConfiguration": awsvpc}
    return request
