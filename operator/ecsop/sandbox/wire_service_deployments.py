"""Service deployments and service revisions as the ECS JSON API renders them.

Shapes and field names follow botocore's ECS model (``ServiceDeployment``,
``ServiceDeploymentBrief``, ``ServiceRevision``, ``ServiceRevisionSummary``,
``Rollback``, ``ServiceDeploymentCircuitBreaker``, ``ServiceDeploymentAlarms``);
absent values are omitted.  The monitors' ``status`` (DISABLED, MONITORING,
TRIGGERED, MONITORING_COMPLETE) follows API_ServiceDeploymentAlarms
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ServiceDeploymentAlarms.html):
DISABLED when ECS is not using the method for this deployment, which includes
alarms ignored because one was in ALARM when the deployment began.
"""

from __future__ import annotations

import copy
from typing import Any

from ecsop.sandbox import breaker, traffic_shift
from ecsop.sandbox.model import Deployment, Service, ServiceDeployment, ServiceRevision


def _compact(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


def brief(sd: ServiceDeployment) -> dict[str, Any]:
    return _compact(
        {
            "serviceDeploymentArn": sd.arn,
            "serviceArn": sd.service_arn,
            "clusterArn": sd.cluster_arn,
            "startedAt": sd.started_at,
            "createdAt": sd.created_at,
            "finishedAt": sd.finished_at,
            "targetServiceRevisionArn": sd.target.arn,
            "status": sd.status,
            "statusReason": sd.status_reason or None,
        }
    )


def _summary(revision: ServiceRevision, deployment: Deployment | None) -> dict[str, Any]:
    return {
        "arn": revision.arn,
        "requestedTaskCount": deployment.desired_count if deployment else 0,
        "runningTaskCount": deployment.running_count() if deployment else 0,
        "pendingTaskCount": deployment.pending_count() if deployment else 0,
    }


def service_deployment(sd: ServiceDeployment, service: Service) -> dict[str, Any]:
    """DescribeServiceDeployments' view of ``sd``; task counts are live."""
    current = {d.id: d for d in service.deployments}
    target = sd.target_deployment
    out = _compact(
        {
            **brief(sd),
            "stoppedAt": sd.stopped_at,
            "updatedAt": sd.updated_at,
            "sourceServiceRevisions": [
                _summary(revision, current.get(d.id)) for revision, d in sd.sources
            ],
            "targetServiceRevision": _summary(
                sd.target, current.get(target.id) if target else None
            ),
            "lifecycleStage": sd.lifecycle_stage,
            "deploymentConfiguration": copy.deepcopy(sd.deployment_configuration),
            "deploymentCircuitBreaker": _breaker(sd),
            "alarms": _alarms(sd),
            "lifecycleHookDetails": traffic_shift.hook_details(sd) or None,
        }
    )
    if sd.rollback_deployment is not None:
        out["rollback"] = {
            "reason": sd.rollback_reason,
            "startedAt": sd.rollback_started_at,
            "serviceRevisionArn": sd.rollback_deployment.revision.arn,
        }
    return out


def _breaker(sd: ServiceDeployment) -> dict[str, Any]:
    """The failures the breaker counted: the target's, or its rollback's if more."""
    config = sd.deployment_configuration.get("deploymentCircuitBreaker") or {}
    watched = [d for d in (sd.target_deployment, sd.rollback_deployment) if d is not None]
    if not config.get("enable"):
        status = "DISABLED"
    elif sd.breaker_triggered:
        status = "TRIGGERED"
    elif sd.ongoing:
        status = "MONITORING"
    else:
        status = "MONITORING_COMPLETE"
    desired = watched[-1].desired_count if watched else 0
    return {
        "status": status,
        "failureCount": max((d.failed_tasks for d in watched), default=0),
        "threshold": breaker.threshold(desired, config),
    }


def _alarms(sd: ServiceDeployment) -> dict[str, Any]:
    config = sd.deployment_configuration.get("alarms") or {}
    names = list(config.get("alarmNames", []))
    target = sd.target_deployment
    if not config.get("enable") or (target is not None and target.alarms_ignored):
        status = "DISABLED"
    elif sd.triggered_alarms:
        status = "TRIGGERED"
    elif sd.ongoing:
        status = "MONITORING"
    else:
        status = "MONITORING_COMPLETE"
    out: dict[str, Any] = {"status": status, "alarmNames": names}
    if sd.triggered_alarms:
        out["triggeredAlarmNames"] = list(sd.triggered_alarms)
    return out


def revision(r: ServiceRevision) -> dict[str, Any]:
    fargate = r.launch_type == "FARGATE"
    return _compact(
        {
            "serviceRevisionArn": r.arn,
            "serviceArn": r.service_arn,
            "clusterArn": r.cluster_arn,
            "taskDefinition": r.task_definition_arn,
            "launchType": r.launch_type,
            "platformVersion": "1.4.0" if fargate else None,
            "platformFamily": "Linux" if fargate else None,
            "loadBalancers": copy.deepcopy(r.load_balancers),
            "serviceRegistries": [],
            "networkConfiguration": copy.deepcopy(r.network_configuration),
            "containerImages": [
                {
                    "containerName": c["containerName"],
                    "imageDigest": _digest(c["image"]),
                    "image": c["image"],
                }
                for c in r.container_images
            ],
            "guardDutyEnabled": False,
            "createdAt": r.created_at,
            "resolvedConfiguration": _resolved(r),
        }
    )


def _resolved(r: ServiceRevision) -> dict[str, Any] | None:
    """Which target group serves the revision, behind which production rule
    (API_ResolvedConfiguration): the one of the pair its deployment was given."""
    balancers = [
        {
            "targetGroupArn": r.resolved_target_groups.get(
                lb["targetGroupArn"], lb["targetGroupArn"]
            ),
            "productionListenerRule": lb["advancedConfiguration"]["productionListenerRule"],
        }
        for lb in r.load_balancers
        if lb.get("advancedConfiguration")
    ]
    return {"loadBalancers": balancers} if balancers else None


def _digest(image: str) -> str:
    from ecsop.sandbox.behaviours import image_digest

    return image_digest(image)
