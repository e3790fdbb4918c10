"""RunTask, and the one-off tasks' side of StopTask, ListTasks and DescribeTasks.

Request checks and defaults follow the RunTask API reference
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RunTask.html, read
from botocore's service model): ``count`` 1 to 10; ``launchType`` and
``capacityProviderStrategy`` exclusive, neither meaning the cluster's default
strategy (none here, so the ``EC2`` launch type); ``networkConfiguration``
required for ``awsvpc`` task definitions and refused for others;
``platformVersion`` for Fargate only (``LATEST`` is 1.4.0); ``startedBy`` up to
128 letters, numbers, hyphens, forward slashes and underscores; ``group``
``family:<family>`` by default; ``overrides`` up to 8192 characters, naming
containers of the task definition; ``propagateTags`` ``SERVICE`` refused;
``clientToken`` idempotent (the same token with other parameters is a
``ConflictException``).  A cluster without room (``capacity.maxTasks``) answers
``failures`` instead of tasks: "RESOURCE:CPU" on EC2, Fargate's "Capacity is
unavailable at this time..." ("API failure reasons",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/api_failures_messages.html).
The scenario's clusters count as having the ``FARGATE`` and ``FARGATE_SPOT``
capacity providers; any other provider is not associated with them.

``render`` draws any task for DescribeTasks/StopTask: service tasks through
``wire_ecs.task``, one-off tasks with their ``startedBy``, ``group``,
``overrides``, capacity provider and subnet.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from ecsop.sandbox import wire_ecs
from ecsop.sandbox.ecs_api import check_tags, operation, tags_in
from ecsop.sandbox.model import Task, TaskDefinition
from ecsop.sandbox.oneoff import OneOffTask
from ecsop.sandbox.simulator import EcsError, Simulator

MAX_COUNT = 10
MAX_OVERRIDES_CHARACTERS = 8192
FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
FARGATE_PLATFORM_VERSIONS = {"LATEST": "1.4.0", "1.4.0": "1.4.0", "1.3.0": "1.3.0"}
STARTED_BY = re.compile(r"^[A-Za-z0-9_/-]{1,128}$")
FARGATE_NO_CAPACITY = (
    "Capacity is unavailable at this time. Please try again later or in a different "
    "availability zone"
)
EC2_NO_CAPACITY = "RESOURCE:CPU"


@operation("RunTask")
def run_task(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    cluster = sim.cluster(request.get("cluster"))
    definition = sim.task_definition(request["taskDefinition"])
    if definition.status != "ACTIVE":
        raise EcsError("ClientException", "TaskDefinition is inactive")
    token = request.get("clientToken")
    fingerprint = json.dumps(
        {k: v for k, v in request.items() if k != "clientToken"}, sort_keys=True
    )
    if token is not None:
        known = sim.oneoff.client_tokens.get((cluster.name, token))
        if known is not None:
            if known[0] != fingerprint:
                raise EcsError(
                    "ConflictException",
                    "The specified clientToken is already in use with a different RunTask "
                    f"request. Existing tasks: {', '.join(known[1])}",
                )
            return {
                "tasks": [render(sim, sim.tasks[a], False) for a in known[1] if a in sim.tasks],
                "failures": [],
            }
    count = int(request.get("count", 1))
    if not 1 <= count <= MAX_COUNT:
        raise EcsError("InvalidParameterException", f"count must be between 1 and {MAX_COUNT}.")
    launch_type, provider = _launch_type(request, definition)
    platform_version = _platform_version(request, launch_type)
    subnet_id = _network(request, definition, launch_type)
    started_by = request.get("startedBy")
    if started_by is not None and not STARTED_BY.match(started_by):
        raise EcsError(
            "InvalidParameterException",
            "startedBy may contain up to 128 letters (uppercase and lowercase), numbers, "
            "hyphens, forward slashes and underscores.",
        )
    overrides = _overrides(request, definition)
    tags = _tags(request, definition)
    group = request.get("group") or f"family:{definition.family}"
    limit = sim.capacity.get(cluster.name)
    used = sum(len(d.tasks) for s in sim.services_in(cluster) for d in s.deployments)
    used += sim.oneoff.occupying(cluster.name)
    tasks: list[Task] = []
    failures: list[dict[str, Any]] = []
    for _ in range(count):
        if limit is not None and used >= limit:
            reason = EC2_NO_CAPACITY if launch_type == "EC2" else FARGATE_NO_CAPACITY
            failures.append({"reason": reason})
            continue
        used += 1
        tasks.append(
            sim.oneoff.launch(
                cluster,
                definition,
                launch_type=launch_type,
                started_by=started_by,
                group=group,
                overrides=overrides,
                tags=dict(tags),
                capacity_provider_name=provider,
                platform_version=platform_version,
                subnet_id=subnet_id,
            )
        )
    if token is not None:
        sim.oneoff.client_tokens[(cluster.name, token)] = (fingerprint, [t.arn for t in tasks])
    return {"tasks": [render(sim, t, False) for t in tasks], "failures": failures}


def _launch_type(request: dict[str, Any], definition: TaskDefinition) -> tuple[str, str | None]:
    strategy = request.get("capacityProviderStrategy") or []
    launch_type = request.get("launchType")
    if strategy and launch_type:
        raise EcsError(
            "InvalidParameterException",
            "Specifying both a launch type and capacity provider strategy is not supported. "
            "Remove one and try again.",
        )
    provider: str | None = None
    if strategy:
        names = [item.get("capacityProvider") for item in strategy]
        unknown = [n for n in names if n not in FARGATE_PROVIDERS]
        if unknown:
            raise EcsError(
                "InvalidParameterException",
                "The specified capacity provider strategy cannot contain a capacity provider "
                "that is not associated with the cluster. Associate the capacity provider with "
                "the cluster or specify a valid capacity provider and try again.",
            )
        based = [i for i in strategy if int(i.get("base", 0)) > 0]
        weighted = [i for i in strategy if int(i.get("weight", 0)) > 0]
        provider = str((based or weighted or strategy)[0]["capacityProvider"])
        launch_type = "FARGATE"
    launch_type = launch_type or "EC2"
    if launch_type == "FARGATE" and "FARGATE" not in definition.body.get(
        "requiresCompatibilities", []
    ):
        raise EcsError("ClientException", "Task definition does not support launch_type FARGATE.")
    return str(launch_type), provider


def _platform_version(request: dict[str, Any], launch_type: str) -> str | None:
    requested = request.get("platformVersion")
    if launch_type != "FARGATE":
        if requested is not None:
            raise EcsError(
                "InvalidParameterException",
                "The platform version must be null when specifying an EC2 launch type.",
            )
        return None
    version = FARGATE_PLATFORM_VERSIONS.get(requested or "LATEST")
    if version is None:
        raise EcsError("PlatformUnknownException", "The specified platform does not exist.")
    return version


def _network(request: dict[str, Any], definition: TaskDefinition, launch_type: str) -> str | None:
    mode = definition.body.get("networkMode", "bridge")
    configuration = request.get("networkConfiguration")
    if launch_type == "FARGATE" and mode != "awsvpc":
        raise EcsError("InvalidParameterException", "Fargate only supports network mode 'awsvpc'.")
    if mode != "awsvpc":
        if configuration:
            raise EcsError(
                "InvalidParameterException",
                "Network Configuration is not valid for the given networkMode of this task "
                "definition.",
            )
        return None
    subnets = ((configuration or {}).get("awsvpcConfiguration") or {}).get("subnets") or []
    if not subnets:
        raise EcsError(
            "InvalidParameterException",
            "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
        )
    return str(subnets[0])


def _overrides(request: dict[str, Any], definition: TaskDefinition) -> dict[str, Any]:
    overrides: dict[str, Any] = copy.deepcopy(request.get("overrides") or {})
    if len(json.dumps(overrides)) > MAX_OVERRIDES_CHARACTERS:
        raise EcsError(
            "InvalidParameterException",
            f"Container Overrides length must be at most {MAX_OVERRIDES_CHARACTERS}",
        )
    names = definition.container_names()
    for override in overrides.get("containerOverrides") or []:
        if override.get("name") not in names:
            raise EcsError(
                "InvalidParameterException",
                f"Override for container named {override.get('name')} is not a container in "
                "the TaskDefinition.",
            )
    return overrides


def _tags(request: dict[str, Any], definition: TaskDefinition) -> dict[str, str]:
    propagate = request.get("propagateTags")
    if propagate == "SERVICE":
        raise EcsError(
            "InvalidParameterException",
            "The SERVICE option of propagateTags is not supported when running a task.",
        )
    check_tags(request.get("tags", []))
    tags = dict(definition.tags) if propagate == "TASK_DEFINITION" else {}
    tags.update(tags_in(request.get("tags", [])))
    return tags


def render(sim: Simulator, task: Task, include_tags: bool) -> dict[str, Any]:
    """A task as DescribeTasks shows it, service task or one-off."""
    definition = sim.task_definitions_by_arn.get(task.task_definition_arn)
    out = wire_ecs.task(task, definition, include_tags)
    if not isinstance(task, OneOffTask):
        return out
    out["group"] = task.group
    out.pop("startedBy", None)
    if task.started_by is not None:
        out["startedBy"] = task.started_by
    requested = {o.get("name"): o for o in task.overrides.get("containerOverrides") or []}
    out["overrides"] = {
        **{k: v for k, v in task.overrides.items() if k != "containerOverrides"},
        "containerOverrides": [
            {**requested.get(c.name, {}), "name": c.name} for c in task.containers
        ],
        "inferenceAcceleratorOverrides": [],
    }
    for field in ("cpu", "memory"):
        if field in task.overrides:
            out[field] = task.overrides[field]
    out.pop("platformVersion", None)
    out.pop("platformFamily", None)
    if task.platform_version is not None:
        out["platformVersion"] = task.platform_version
        out["platformFamily"] = "Linux"
    if task.capacity_provider_name is not None:
        out["capacityProviderName"] = task.capacity_provider_name
    if not task.awsvpc:
        out["attachments"] = []
    else:
        details = out["attachments"][0]["details"]
        details.insert(0, {"name": "networkInterfaceId", "value": f"eni-{task.id[:17]}"})
        if task.subnet_id is not None:
            details.insert(0, {"name": "subnetId", "value": task.subnet_id})
    return out


def stop(sim: Simulator, task: OneOffTask, reason: str) -> dict[str, Any]:
    sim.oneoff.stop(task, reason)
    return {"task": render(sim, task, False)}
