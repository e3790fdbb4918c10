"""Service deployments and service revisions: what happened to each deployment request.

ECS keeps, next to ``deployments`` in DescribeServices, a history of service
deployments (ListServiceDeployments / DescribeServiceDeployments) and of the
service revisions they deploy (DescribeServiceRevisions).  A deployment tool
reads them to learn what happened while it was not looking, so the sandbox
moves them in the same scheduler step that moves ``deployments``: both are
consistent at every instant.

Semantics, from "View service history using Amazon ECS service deployments"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-deployment.html),
"Stopping Amazon ECS service deployments"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stop-service-deployment.html)
and API_ServiceDeployment
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ServiceDeployment.html):

- a service deployment is created when a service is created, force-redeployed
  or updated in a way that needs a deployment; its target revision is new,
  its sources are the revisions running then;
- Pending: PENDING; Ongoing: IN_PROGRESS, STOP_REQUESTED, ROLLBACK_REQUESTED,
  ROLLBACK_IN_PROGRESS; Completed: SUCCESSFUL, STOPPED, ROLLBACK_SUCCESSFUL,
  ROLLBACK_FAILED;
- a failure detected by the circuit breaker or the alarms rolls back *within*
  the failed service deployment (ROLLBACK_IN_PROGRESS, ``rollback`` names the
  source revision) when rollback is on; "stoppedAt: ... The rollback option is
  not in use for the failure detection mechanism ... and the service fails",
  so without rollback it is STOPPED;
- StopServiceDeployment moves it to ROLLBACK_REQUESTED (then the rollback
  starts) or STOP_REQUESTED (then STOPPED);
- the most recent 90 days are kept (``timings.serviceDeploymentRetentionSeconds``).

ECS is silent on what becomes of an ongoing service deployment that a newer
one replaces: the sandbox says STOPPED, the least flattering reading for a
tool that waits for SUCCESSFUL.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from ecsop.sandbox import events, wire_ecs
from ecsop.sandbox.model import Deployment, Service, ServiceDeployment, ServiceRevision

if TYPE_CHECKING:
    from ecsop.sandbox.simulator import Simulator


def new_revision(
    sim: Simulator, service: Service, task_definition_arn: str, at: float
) -> ServiceRevision:
    """Snapshot the service's configuration as a new service revision."""
    definition = sim.task_definitions_by_arn[task_definition_arn]
    revision = ServiceRevision(
        arn=sim.ids.arn(
            f"service-revision/{service.cluster.name}/{service.name}/{sim.ids.revision_id()}"
        ),
        service_arn=service.arn,
        cluster_arn=service.cluster.arn,
        task_definition_arn=task_definition_arn,
        launch_type=service.launch_type,
        load_balancers=[wire_ecs.load_balancer(b) for b in service.load_balancers],
        network_configuration=service.network_configuration,
        container_images=[
            {"containerName": c["name"], "image": c["image"]}
            for c in definition.body["containerDefinitions"]
        ],
        created_at=at,
    )
    sim.service_revisions[revision.arn] = revision
    return revision


def begin(sim: Simulator, service: Service, target: Deployment, at: float) -> None:
    """The service deployment of a new (not rollback) deployment; an ongoing
    earlier one is superseded."""
    sd = target.service_deployment
    for earlier in service.service_deployments:
        if earlier is not sd and earlier.ongoing:
            _finish(earlier, "STOPPED", events.SD_SUPERSEDED, at, stopped=True)
    sd.status = "IN_PROGRESS"
    sd.started_at = at
    sd.updated_at = at
    sd.target_deployment = target
    sd.lifecycle_stage = "SCALE_UP"
    service.service_deployments.append(sd)
    sim.service_deployments[sd.arn] = sd


def make(
    sim: Simulator,
    service: Service,
    deployment_id: str,
    revision: ServiceRevision,
    at: float,
) -> ServiceDeployment:
    """A PENDING service deployment toward ``revision`` from what runs now."""
    suffix = deployment_id.split("/", 1)[1]
    sources = [
        (d.revision, d) for d in service.deployments if d.live() and d.revision is not revision
    ]
    return ServiceDeployment(
        arn=sim.ids.arn(f"service-deployment/{service.cluster.name}/{service.name}/{suffix}"),
        service_arn=service.arn,
        cluster_arn=service.cluster.arn,
        created_at=at,
        target=revision,
        sources=sources,
        deployment_configuration=_configuration(service),
        strategy=str(service.deployment_configuration.get("strategy") or "ROLLING"),
        updated_at=at,
    )


def _configuration(service: Service) -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(service.deployment_configuration)
    config.setdefault("strategy", "ROLLING")
    return config


def stage(sd: ServiceDeployment, lifecycle_stage: str, at: float) -> None:
    if sd.ongoing and sd.lifecycle_stage != lifecycle_stage:
        sd.lifecycle_stage = lifecycle_stage
        sd.updated_at = at


def completed(deployment: Deployment, at: float) -> None:
    """``deployment`` reached COMPLETED: its service deployment succeeded (or its rollback did)."""
    sd = deployment.service_deployment
    if deployment is sd.rollback_deployment and sd.status == "ROLLBACK_IN_PROGRESS":
        _finish(sd, "ROLLBACK_SUCCESSFUL", sd.status_reason, at)
    elif deployment is sd.target_deployment and sd.status == "IN_PROGRESS":
        _finish(sd, "SUCCESSFUL", "", at)


def failed(
    deployment: Deployment, at: float, *, reason: str, alarms: list[str], rolling_back: bool
) -> None:
    """The breaker or the alarms failed ``deployment``."""
    sd = deployment.service_deployment
    if alarms:
        sd.triggered_alarms = sorted(set(sd.triggered_alarms) | set(alarms))
    else:
        sd.breaker_triggered = True
    sd.updated_at = at
    if deployment is sd.rollback_deployment:
        if sd.ongoing:
            _finish(sd, "ROLLBACK_FAILED", reason, at)
    elif not rolling_back and sd.ongoing:
        _finish(sd, "STOPPED", reason, at, stopped=True)
    else:
        sd.status_reason = reason


def rolling_back(sd: ServiceDeployment, rollback: Deployment, reason: str, at: float) -> None:
    """The rollback deployment of ``sd`` started."""
    sd.status = "ROLLBACK_IN_PROGRESS"
    sd.rollback_deployment = rollback
    sd.rollback_reason = reason
    sd.rollback_started_at = at
    sd.lifecycle_stage = "SCALE_UP"
    sd.updated_at = at


def rollback_failed(sd: ServiceDeployment, reason: str, at: float) -> None:
    """A rollback that did not happen for another reason than the breaker or alarms
    (a lifecycle hook failing while it runs)."""
    if sd.ongoing:
        _finish(sd, "ROLLBACK_FAILED", reason, at)


def stop_requested(sd: ServiceDeployment, stop_type: str, at: float) -> None:
    sd.stop_requested = stop_type
    sd.stop_requested_at = at
    sd.status = "ROLLBACK_REQUESTED" if stop_type == "ROLLBACK" else "STOP_REQUESTED"
    sd.updated_at = at


def stopped(sd: ServiceDeployment, at: float) -> None:
    _finish(sd, "STOPPED", events.SD_STOPPED, at, stopped=True)


def _finish(
    sd: ServiceDeployment, status: str, reason: str, at: float, *, stopped: bool = False
) -> None:
    sd.status = status
    sd.status_reason = reason
    sd.finished_at = at
    if stopped:
        sd.stopped_at = at
    sd.lifecycle_stage = None
    sd.stop_requested = None
    sd.updated_at = at


def retained(sim: Simulator, service: Service) -> list[ServiceDeployment]:
    """The service's service deployments still within retention (older ones are dropped)."""
    horizon = sim.now - sim.timings.service_deployment_retention_seconds
    while service.service_deployments and service.service_deployments[0].created_at < horizon:
        gone = service.service_deployments.pop(0)
        if gone.ongoing:  # never drop the one still running
            service.service_deployments.insert(0, gone)
            break
        sim.service_deployments.pop(gone.arn, None)
    return service.service_deployments
