"""The ECS JSON API of the sandbox: operation name + request -> response.

ECS calls never reach moto: the simulator owns clusters, task definitions,
services, tasks and their tags, so one source of truth answers every ECS read
(moto's ECS model keeps a single deployment per service, ignores
``deploymentConfiguration`` and cannot run a rollout).  Operations not listed
in ``OPERATIONS`` are answered with ``UnsupportedFeatureException`` naming the
operation, never silently.

Limits mirror the ECS API reference: DescribeServices takes at most 10
services, DescribeTasks 100; tags hold 50 per resource, keys of 128 and values
of 256 characters (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Tag.html).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ecsop.sandbox import events, lifecycle, rollout, wire_ecs
from ecsop.sandbox.model import LoadBalancerBinding, Service, TaskDefinition
from ecsop.sandbox.simulator import EcsError, Simulator

Handler = Callable[[Simulator, dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, Handler] = {}

MAX_TAGS = 50


def operation(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        OPERATIONS[name] = handler
        return handler

    return register


def handle(sim: Simulator, name: str, request: dict[str, Any]) -> dict[str, Any]:
    handler = OPERATIONS.get(name)
    if handler is None:
        raise EcsError(
            "UnsupportedFeatureException", f"The ecsop sandbox does not implement ECS {name}."
        )
    with sim.lock:
        return handler(sim, request)


def _include_tags(request: dict[str, Any]) -> bool:
    return "TAGS" in (request.get("include") or [])


def _page(items: list[str], request: dict[str, Any], default: int, limit: int) -> dict[str, Any]:
    size = int(request.get("maxResults") or default)
    if not 1 <= size <= limit:
        raise EcsError("InvalidParameterException", f"maxResults must be between 1 and {limit}.")
    start = int(request.get("nextToken") or 0)
    out: dict[str, Any] = {"page": items[start : start + size]}
    if start + size < len(items):
        out["nextToken"] = str(start + size)
    return out


# -- clusters -------------------------------------------------------------
@operation("CreateCluster")
def create_cluster(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    name = request.get("clusterName") or "default"
    cluster = sim.create_cluster(name, wire_ecs_tags_in(request.get("tags", [])))
    if request.get("settings"):
        cluster.settings = request["settings"]
    return {"cluster": wire_ecs.cluster(cluster, [], True)}


@operation("DescribeClusters")
def describe_clusters(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    found, failures = [], []
    for ref in request.get("clusters") or ["default"]:
        try:
            cluster = sim.cluster(ref)
        except EcsError:
            failures.append(
                {
                    "arn": ref if ref.startswith("arn:") else sim.ids.arn(f"cluster/{ref}"),
                    "reason": "MISSING",
                }
            )
            continue
        services = list(sim.services_in(cluster))
        found.append(wire_ecs.cluster(cluster, services, _include_tags(request)))
    return {"clusters": found, "failures": failures}


@operation("ListClusters")
def list_clusters(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    page = _page([c.arn for c in sim.clusters.values()], request, 100, 100)
    return {
        "clusterArns": page["page"],
        **({"nextToken": page["nextToken"]} if "nextToken" in page else {}),
    }


@operation("DeleteCluster")
def delete_cluster(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    cluster = sim.cluster(request.get("cluster"))
    if any(s.status != "INACTIVE" for s in sim.services_in(cluster)):
        raise EcsError(
            "ClusterContainsServicesException",
            "The Cluster cannot be deleted while Services are active.",
        )
    del sim.clusters[cluster.name]
    return {"cluster": {**wire_ecs.cluster(cluster, [], False), "status": "INACTIVE"}}


# -- task definitions -----------------------------------------------------
@operation("RegisterTaskDefinition")
def register_task_definition(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    _check_tags(request.get("tags", []))
    definition = sim.register_task_definition(request)
    return {
        "taskDefinition": wire_ecs.task_definition(definition, sim.account_id),
        "tags": wire_ecs.tags_out(definition.tags),
    }


@operation("DescribeTaskDefinition")
def describe_task_definition(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    definition = sim.task_definition(request["taskDefinition"])
    out: dict[str, Any] = {"taskDefinition": wire_ecs.task_definition(definition, sim.account_id)}
    if _include_tags(request):
        out["tags"] = wire_ecs.tags_out(definition.tags)
    return out


@operation("DeregisterTaskDefinition")
def deregister_task_definition(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    reference = request["taskDefinition"]
    if ":" not in reference.rsplit("/", 1)[-1]:
        raise EcsError("ClientException", "Revision must be specified.")
    definition = sim.task_definition(reference)
    definition.status = "INACTIVE"
    definition.deregistered_at = sim.now
    return {"taskDefinition": wire_ecs.task_definition(definition, sim.account_id)}


@operation("ListTaskDefinitions")
def list_task_definitions(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    status = request.get("status", "ACTIVE")
    prefix = request.get("familyPrefix")
    found = [
        d
        for family, revisions in sorted(sim.task_definitions.items())
        if prefix is None or family == prefix
        for _, d in sorted(revisions.items())
        if d.status == status
    ]
    if request.get("sort") == "DESC":
        found.reverse()
    page = _page([d.arn for d in found], request, 100, 100)
    out: dict[str, Any] = {"taskDefinitionArns": page["page"]}
    if "nextToken" in page:
        out["nextToken"] = page["nextToken"]
    return out


@operation("ListTaskDefinitionFamilies")
def list_task_definition_families(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    prefix = request.get("familyPrefix") or ""
    status = request.get("status", "ACTIVE")
    families = [
        family
        for family, revisions in sorted(sim.task_definitions.items())
        if family.startswith(prefix)
        and (status == "ALL" or any(d.status == status for d in revisions.values()))
    ]
    page = _page(families, request, 100, 100)
    out: dict[str, Any] = {"families": page["page"]}
    if "nextToken" in page:
        out["nextToken"] = page["nextToken"]
    return out


# -- services -------------------------------------------------------------
def _bindings(
    sim: Simulator, definition: TaskDefinition, requested: list[dict[str, Any]]
) -> list[LoadBalancerBinding]:
    bindings = []
    for lb in requested:
        arn = lb.get("targetGroupArn")
        if not arn or not sim.target_groups.adopt(arn):
            raise EcsError(
                "InvalidParameterException",
                f"Unable to find the target group {arn!r}; only target groups are supported.",
            )
        if lb.get("containerName") not in definition.container_names():
            raise EcsError(
                "InvalidParameterException",
                f"The container {lb.get('containerName')} does not exist in the task definition.",
            )
        bindings.append(
            LoadBalancerBinding(
                target_group_arn=arn,
                container_name=lb["containerName"],
                container_port=int(lb["containerPort"]),
            )
        )
    return bindings


@operation("CreateService")
def create_service(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    cluster = sim.cluster(request.get("cluster"))
    definition = sim.task_definition(request["taskDefinition"])
    _check_tags(request.get("tags", []))
    service = sim.new_service(
        cluster,
        request["serviceName"],
        definition,
        int(request.get("desiredCount", 0)),
        request.get("deploymentConfiguration", {}),
        request.get("launchType", "EC2"),
        _bindings(sim, definition, request.get("loadBalancers", [])),
        network_configuration=request.get("networkConfiguration"),
        health_check_grace_period=request.get("healthCheckGracePeriodSeconds"),
        tags=wire_ecs_tags_in(request.get("tags", [])),
        propagate_tags=request.get("propagateTags", "NONE"),
        enable_ecs_managed_tags=bool(request.get("enableECSManagedTags", False)),
        enable_execute_command=bool(request.get("enableExecuteCommand", False)),
        platform_version=request.get("platformVersion"),
        placement_constraints=request.get("placementConstraints", []),
        placement_strategy=request.get("placementStrategy", []),
    )
    sim.new_deployment(service, definition.arn, sim.now)
    return {"service": _service_out(sim, service, False)}


@operation("UpdateService")
def update_service(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    cluster = sim.cluster(request.get("cluster"))
    service = sim.service(cluster, request["service"])
    if service.status != "ACTIVE":
        raise EcsError("ServiceNotActiveException", "Service was not ACTIVE.")
    redeploy = bool(request.get("forceNewDeployment"))
    definition = sim.task_definitions_by_arn[service.task_definition_arn]
    if "taskDefinition" in request:
        definition = sim.task_definition(request["taskDefinition"])
        redeploy = redeploy or definition.arn != service.primary.task_definition_arn
    if "deploymentConfiguration" in request:
        service.deployment_configuration = {
            **service.deployment_configuration,
            **request["deploymentConfiguration"],
        }
    if "desiredCount" in request:
        service.desired_count = int(request["desiredCount"])
        service.steady = False
    if "networkConfiguration" in request:
        redeploy = redeploy or request["networkConfiguration"] != service.network_configuration
        service.network_configuration = request["networkConfiguration"]
    if "loadBalancers" in request:
        service.load_balancers = _bindings(sim, definition, request["loadBalancers"])
        redeploy = True
    if "healthCheckGracePeriodSeconds" in request:
        service.health_check_grace_period = request["healthCheckGracePeriodSeconds"]
    for field, attribute in (
        ("propagateTags", "propagate_tags"),
        ("enableExecuteCommand", "enable_execute_command"),
        ("enableECSManagedTags", "enable_ecs_managed_tags"),
        ("platformVersion", "platform_version"),
    ):
        if field in request:
            setattr(service, attribute, request[field])
    if redeploy:
        sim.new_deployment(service, definition.arn, sim.now)
    sim.wake(service, sim.now)
    return {"service": _service_out(sim, service, False)}


@operation("DescribeServices")
def describe_services(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    names = request.get("services") or []
    if not 1 <= len(names) <= 10:
        raise EcsError("InvalidParameterException", "services must contain 1 to 10 items.")
    cluster = sim.cluster(request.get("cluster"))
    found, failures = [], []
    for name in names:
        try:
            service = sim.service(cluster, name)
        except EcsError:
            arn = name if name.startswith("arn:") else sim.ids.arn(f"service/{cluster.name}/{name}")
            failures.append({"arn": arn, "reason": "MISSING"})
            continue
        found.append(_service_out(sim, service, _include_tags(request)))
    return {"services": found, "failures": failures}


@operation("ListServices")
def list_services(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    cluster = sim.cluster(request.get("cluster"))
    arns = [
        s.arn
        for s in sim.services_in(cluster)
        if s.status != "INACTIVE"
        and (not request.get("launchType") or s.launch_type == request["launchType"])
    ]
    page = _page(arns, request, 10, 100)
    out: dict[str, Any] = {"serviceArns": page["page"]}
    if "nextToken" in page:
        out["nextToken"] = page["nextToken"]
    return out


@operation("DeleteService")
def delete_service(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    cluster = sim.cluster(request.get("cluster"))
    service = sim.service(cluster, request["service"])
    if service.desired_count > 0 and not request.get("force"):
        raise EcsError(
            "InvalidParameterException",
            "The service cannot be stopped while it is scaled above 0.",
        )
    service.desired_count = 0
    service.status = "DRAINING"
    for task in [t for d in service.deployments for t in d.live()]:
        lifecycle.begin_stop(
            sim,
            service,
            task,
            sim.now,
            reason=events.stop_scaling(task.deployment_id),
            code="ServiceSchedulerInitiated",
            failed=False,
        )
    sim.wake(service, sim.now)
    return {"service": _service_out(sim, service, False)}


@operation("StopServiceDeployment")
def stop_service_deployment(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["serviceDeploymentArn"]
    parts = arn.split(":", 5)[-1].split("/")
    if len(parts) != 4 or parts[0] != "service-deployment":
        raise EcsError("InvalidParameterException", "Invalid serviceDeploymentArn.")
    service = sim.service(sim.cluster(parts[1]), parts[2])
    primary = service.primary
    if primary.id != f"ecs-svc/{parts[3]}" or primary.rollout_state != "IN_PROGRESS":
        raise EcsError(
            "ConflictException", "The service deployment is not in progress and cannot be stopped."
        )
    if request.get("stopType", "ROLLBACK") == "ROLLBACK":
        target = service.last_completed
        if target is None:
            raise EcsError(
                "InvalidParameterException", "There is no completed deployment to roll back to."
            )
        primary.rollout_state = "FAILED"
        primary.rollout_state_reason = "ECS deployment stopped."
        rollout.roll_back(sim, service, target, sim.now, events.reason_stopped_rollback(target.id))
    else:
        primary.rollout_state = "FAILED"
        primary.rollout_state_reason = "ECS deployment stopped."
    sim.wake(service, sim.now)
    return {"serviceDeploymentArn": arn}


def _service_out(sim: Simulator, service: Service, include_tags: bool) -> dict[str, Any]:
    return wire_ecs.service(service, include_tags, sim.region, sim.account_id)


# -- tasks ----------------------------------------------------------------
@operation("ListTasks")
def list_tasks(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    cluster = sim.cluster(request.get("cluster"))
    desired = request.get("desiredStatus", "RUNNING")
    group = f"service:{request['serviceName']}" if request.get("serviceName") else None
    family = request.get("family")
    started_by = request.get("startedBy")
    arns = [
        t.arn
        for t in sim.tasks.values()
        if t.cluster_arn == cluster.arn
        and (desired == "PENDING" or t.desired_status == desired)
        and (desired != "PENDING" or t.last_status in ("PROVISIONING", "PENDING"))
        and (group is None or t.group == group)
        and (started_by is None or t.deployment_id == started_by)
        and (family is None or sim.task_definitions_by_arn[t.task_definition_arn].family == family)
    ]
    page = _page(arns, request, 100, 100)
    out: dict[str, Any] = {"taskArns": page["page"]}
    if "nextToken" in page:
        out["nextToken"] = page["nextToken"]
    return out


@operation("DescribeTasks")
def describe_tasks(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    refs = request.get("tasks") or []
    if not 1 <= len(refs) <= 100:
        raise EcsError("InvalidParameterException", "tasks must contain 1 to 100 items.")
    cluster = sim.cluster(request.get("cluster"))
    found, failures = [], []
    for ref in refs:
        arn = ref if ref.startswith("arn:") else sim.ids.arn(f"task/{cluster.name}/{ref}")
        task = sim.tasks.get(arn)
        if task is None:
            failures.append({"arn": arn, "reason": "MISSING"})
            continue
        definition = sim.task_definitions_by_arn.get(task.task_definition_arn)
        found.append(wire_ecs.task(task, definition, _include_tags(request)))
    return {"tasks": found, "failures": failures}


@operation("StopTask")
def stop_task(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    cluster = sim.cluster(request.get("cluster"))
    ref = request["task"]
    arn = ref if ref.startswith("arn:") else sim.ids.arn(f"task/{cluster.name}/{ref}")
    task = sim.tasks.get(arn)
    if task is None:
        raise EcsError("InvalidParameterException", "The referenced task was not found.")
    service = sim.services[task.service_key]
    lifecycle.begin_stop(
        sim,
        service,
        task,
        sim.now,
        reason=request.get("reason") or events.STOP_USER,
        code="UserInitiated",
        failed=False,
    )
    service.steady = False
    sim.wake(service, sim.now)
    definition = sim.task_definitions_by_arn.get(task.task_definition_arn)
    return {"task": wire_ecs.task(task, definition, False)}


# -- tags -----------------------------------------------------------------
def wire_ecs_tags_in(tags: list[dict[str, str]]) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in tags}


def _check_tags(tags: list[dict[str, str]], existing: dict[str, str] | None = None) -> None:
    for tag in tags:
        key, value = tag.get("key", ""), tag.get("value", "")
        if not 1 <= len(key) <= 128:
            raise EcsError(
                "InvalidParameterException", f"Tag key {key!r} must be 1 to 128 characters."
            )
        if len(value) > 256:
            raise EcsError(
                "InvalidParameterException", f"Tag value of {key!r} exceeds 256 characters."
            )
        if key.lower().startswith("aws:"):
            raise EcsError("InvalidParameterException", "Tag keys may not begin with 'aws:'.")
    merged = {**(existing or {}), **wire_ecs_tags_in(tags)}
    if len(merged) > MAX_TAGS:
        raise EcsError("InvalidParameterException", f"A resource holds at most {MAX_TAGS} tags.")


def _tagged(sim: Simulator, arn: str) -> dict[str, str]:
    """The live tag dict of the resource named by ``arn``."""
    resource = arn.split(":", 5)[-1] if arn.startswith("arn:") else ""
    kind, _, rest = resource.partition("/")
    if kind == "cluster":
        return sim.cluster(rest).tags
    if kind == "service":
        cluster_name, _, name = rest.rpartition("/")
        return sim.service(sim.cluster(cluster_name), name).tags
    if kind == "task-definition":
        definition = sim.task_definitions_by_arn.get(arn)
        if definition is not None:
            return definition.tags
    if kind == "task" and arn in sim.tasks:
        return sim.tasks[arn].tags
    raise EcsError("InvalidParameterException", "The specified resource could not be found.")


@operation("TagResource")
def tag_resource(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    tags = _tagged(sim, request["resourceArn"])
    _check_tags(request.get("tags", []), tags)
    tags.update(wire_ecs_tags_in(request.get("tags", [])))
    return {}


@operation("UntagResource")
def untag_resource(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    tags = _tagged(sim, request["resourceArn"])
    for key in request.get("tagKeys", []):
        tags.pop(key, None)
    return {}


@operation("ListTagsForResource")
def list_tags_for_resource(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    return {"tags": wire_ecs.tags_out(_tagged(sim, request["resourceArn"]))}
