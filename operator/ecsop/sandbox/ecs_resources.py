"""ECS operations on clusters, task definitions, tasks and tags (see ``ecs_api``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ecsop.sandbox import ecs_run_task, events, lifecycle, wire_ecs
from ecsop.sandbox.ecs_api import check_tags, include_tags, operation, paginate, tags_in
from ecsop.sandbox.model import Service, Task
from ecsop.sandbox.oneoff import OneOffTask
from ecsop.sandbox.simulator import EcsError, Simulator


# -- clusters -------------------------------------------------------------
@operation("CreateCluster")
def create_cluster(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    name = request.get("clusterName") or "default"
    cluster = sim.create_cluster(name, tags_in(request.get("tags", [])))
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
        found.append(wire_ecs.cluster(cluster, services, include_tags(request)))
    return {"clusters": found, "failures": failures}


@operation("ListClusters")
def list_clusters(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    return paginate([c.arn for c in sim.clusters.values()], request, "clusterArns", 100, 100)


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
    check_tags(request.get("tags", []))
    definition = sim.register_task_definition(request)
    return {
        "taskDefinition": wire_ecs.task_definition(definition, sim.account_id),
        "tags": wire_ecs.tags_out(definition.tags),
    }


@operation("DescribeTaskDefinition")
def describe_task_definition(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    definition = sim.task_definition(request["taskDefinition"])
    out: dict[str, Any] = {"taskDefinition": wire_ecs.task_definition(definition, sim.account_id)}
    if include_tags(request):
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
    return paginate([d.arn for d in found], request, "taskDefinitionArns", 100, 100)


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
    return paginate(families, request, "families", 100, 100)


# -- tasks ----------------------------------------------------------------
@operation("ListTasks")
def list_tasks(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    """Reads only the candidates' indexes (cluster -> service -> deployment ->
    live or stopped tasks), never every task of the account."""
    cluster = sim.cluster(request.get("cluster"))
    desired = request.get("desiredStatus", "RUNNING")
    family = request.get("family")
    started_by = request.get("startedBy")
    if request.get("serviceName"):
        found = sim.services_by_cluster.get(cluster.name, {}).get(
            request["serviceName"].rsplit("/", 1)[-1]
        )
        services = [found] if found is not None else []
    elif started_by is not None:
        owner = sim.services_by_deployment.get(started_by)
        services = [owner] if owner is not None and owner.cluster is cluster else []
    else:
        services = list(sim.services_in(cluster))
    arns = []
    for service in services:
        for task in _tasks_of(service, desired, started_by):
            sim.task_visits += 1
            if desired == "PENDING" and task.last_status not in ("PROVISIONING", "PENDING"):
                continue
            if family is not None and (
                sim.task_definitions_by_arn[task.task_definition_arn].family != family
            ):
                continue
            arns.append(task.arn)
    if not request.get("serviceName"):  # one-off tasks (RunTask) belong to no service
        arns.extend(
            sim.oneoff.listed(cluster.name, desired=desired, family=family, started_by=started_by)
        )
    return paginate(arns, request, "taskArns", 100, 100)


def _tasks_of(service: Service, desired: str, started_by: str | None) -> Iterator[Task]:
    """The service's tasks whose desiredStatus matches (PENDING: still wanted)."""
    deployments = [d for d in service.deployments if started_by is None or d.id == started_by]
    for deployment in deployments:
        for task in deployment.tasks.values():
            if (task.desired_status == "STOPPED") == (desired == "STOPPED"):
                yield task
    if desired == "STOPPED":
        if started_by is None:
            for stopped in service.stopped.values():
                yield from stopped.values()
        else:
            yield from service.stopped.get(started_by, {}).values()


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
        found.append(ecs_run_task.render(sim, task, include_tags(request)))
    return {"tasks": found, "failures": failures}


@operation("StopTask")
def stop_task(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    cluster = sim.cluster(request.get("cluster"))
    ref = request["task"]
    arn = ref if ref.startswith("arn:") else sim.ids.arn(f"task/{cluster.name}/{ref}")
    task = sim.tasks.get(arn)
    if task is None:
        raise EcsError("InvalidParameterException", "The referenced task was not found.")
    if isinstance(task, OneOffTask):
        return ecs_run_task.stop(sim, task, request.get("reason") or events.STOP_USER)
    service = sim.services[task.service_key]
    task.tags = {}  # "Any tags associated with the task will be deleted" (API_StopTask)
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
    check_tags(request.get("tags", []), tags)
    tags.update(tags_in(request.get("tags", [])))
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
