"""ECS operations on service deployments and service revisions (see ``ecs_api``).

ListServiceDeployments, DescribeServiceDeployments, DescribeServiceRevisions,
StopServiceDeployment and ContinueServiceDeployment, as the API Reference
describes them
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListServiceDeployments.html,
API_DescribeServiceDeployments.html, API_DescribeServiceRevisions.html,
API_StopServiceDeployment.html): at most 20 ARNs per Describe call; List
pages of 20 by default, 1 to 100; ``status`` and ``createdAt`` (``before``,
``after``) filter.  List answers newest first (ECS does not document an
order).  What the records say, and when, lives in ``service_deployments``.
"""

from __future__ import annotations

import re
from typing import Any

from ecsop.sandbox import service_deployments, traffic_shift, wire_service_deployments
from ecsop.sandbox.ecs_api import operation, paginate
from ecsop.sandbox.lifecycle_hooks import LifecycleHooks
from ecsop.sandbox.model import Service, ServiceDeployment
from ecsop.sandbox.simulator import EcsError, Simulator

MAX_DESCRIBE = 20


@operation("ListServiceDeployments")
def list_service_deployments(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    cluster = sim.cluster(request.get("cluster"))
    service = sim.service(cluster, request["service"])
    statuses = set(request.get("status") or [])
    created = request.get("createdAt") or {}
    after, before = created.get("after"), created.get("before")
    found = [
        sd
        for sd in reversed(service_deployments.retained(sim, service))
        if (not statuses or sd.status in statuses)
        and (after is None or sd.created_at >= float(after))
        and (before is None or sd.created_at <= float(before))
    ]
    page = paginate([sd.arn for sd in found], request, "serviceDeployments", 20, 100)
    by_arn = {sd.arn: sd for sd in found}
    page["serviceDeployments"] = [
        wire_service_deployments.brief(by_arn[arn]) for arn in page["serviceDeployments"]
    ]
    return page


def _owner(sim: Simulator, sd: ServiceDeployment) -> Service | None:
    cluster_name, name = sd.arn.rsplit(":", 1)[-1].split("/")[1:3]
    return sim.services.get((cluster_name, name))


def _checked(arns: list[str], what: str) -> list[str]:
    if not 1 <= len(arns) <= MAX_DESCRIBE:
        raise EcsError(
            "InvalidParameterException", f"{what} must contain 1 to {MAX_DESCRIBE} items."
        )
    return arns


@operation("DescribeServiceDeployments")
def describe_service_deployments(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    found, failures = [], []
    for arn in _checked(request.get("serviceDeploymentArns") or [], "serviceDeploymentArns"):
        sd = sim.service_deployments.get(arn)
        service = _owner(sim, sd) if sd is not None else None
        if sd is None or service is None or sd not in service_deployments.retained(sim, service):
            failures.append({"arn": arn, "reason": "MISSING"})
            continue
        found.append(wire_service_deployments.service_deployment(sd, service))
    return {"serviceDeployments": found, "failures": failures}


@operation("DescribeServiceRevisions")
def describe_service_revisions(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    found, failures = [], []
    for arn in _checked(request.get("serviceRevisionArns") or [], "serviceRevisionArns"):
        revision = sim.service_revisions.get(arn)
        if revision is None:
            failures.append({"arn": arn, "reason": "MISSING"})
            continue
        found.append(wire_service_deployments.revision(revision))
    return {"serviceRevisions": found, "failures": failures}


@operation("StopServiceDeployment")
def stop_service_deployment(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    """ROLLBACK: ROLLBACK_REQUESTED, then the rollback starts; ABORT: STOP_REQUESTED,
    then STOPPED (stop-service-deployment.html).  Asking again while it stops or
    rolls back changes nothing."""
    arn = request["serviceDeploymentArn"]
    sd = sim.service_deployments.get(arn)
    service = _owner(sim, sd) if sd is not None else None
    if sd is None or service is None:
        raise EcsError(
            "ServiceDeploymentNotFoundException", "The service deployment does not exist."
        )
    if not sd.ongoing:
        raise EcsError(
            "ConflictException", "The service deployment is not in progress and cannot be stopped."
        )
    if sd.status in ("PENDING", "IN_PROGRESS"):
        stop_type = request.get("stopType", "ROLLBACK")
        if stop_type == "ROLLBACK" and service.last_completed is None:
            raise EcsError(
                "InvalidParameterException", "There is no completed deployment to roll back to."
            )
        service_deployments.stop_requested(sd, stop_type, sim.now)
        sim.wake(service, sim.now + sim.timings.stop_request_seconds)
    return {"serviceDeploymentArn": arn}


@operation("ContinueServiceDeployment")
def continue_service_deployment(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    """Answer a pause hook: CONTINUE (default) or ROLLBACK (API_ContinueServiceDeployment;
    errors worded as in troubleshooting-blue-green.html, "Lifecycle hook issues")."""
    arn = request["serviceDeploymentArn"]
    hook_id = request.get("hookId", "")
    action = request.get("action", "CONTINUE")
    if action not in ("CONTINUE", "ROLLBACK"):
        raise EcsError("InvalidParameterException", "action must be CONTINUE or ROLLBACK.")
    if not re.fullmatch(r"ecs-[a-z]+-\S+", hook_id):
        raise EcsError(
            "InvalidParameterException",
            "Invalid hookId: hookId must follow the format: ecs-{hookType}-{id}",
        )
    sd = sim.service_deployments.get(arn)
    service = _owner(sim, sd) if sd is not None else None
    if sd is None or service is None:
        raise EcsError(
            "ServiceDeploymentNotFoundException", "The service deployment does not exist."
        )
    if not sd.ongoing:
        raise EcsError(
            "ClientException",
            "Continuing a service deployment is not allowed for service deployment in "
            "terminal states.",
        )
    run = traffic_shift.pause_hook(sd, hook_id)
    if run is None:
        raise EcsError(
            "InvalidParameterException",
            "Provided hookId is either completed, unavailable, or not associated with the "
            "given Resource ARN",
        )
    LifecycleHooks.answer_pause(run, action)
    sim.wake(service, sim.now)
    return {"serviceDeploymentArn": arn}
