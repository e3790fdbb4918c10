"""ECS resources as the ECS JSON API renders them.

Field names and shapes follow botocore's ECS service model (``Service``,
``Deployment``, ``Task``, ``Container``, ``TaskDefinition``); timestamps are
epoch seconds, as the JSON protocol sends them.  Absent values are omitted,
not sent as null, as ECS does.
"""

from __future__ import annotations

import copy
from typing import Any

from ecsop.sandbox.model import (
    Cluster,
    Container,
    Deployment,
    LoadBalancerBinding,
    Service,
    Task,
    TaskDefinition,
)


def _compact(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


def tags_out(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def cluster(c: Cluster, services: list[Service], include_tags: bool) -> dict[str, Any]:
    tasks = [t for s in services for d in s.deployments for t in d.tasks.values()]
    out: dict[str, Any] = {
        "clusterArn": c.arn,
        "clusterName": c.name,
        "status": "ACTIVE",
        "registeredContainerInstancesCount": 0,
        "runningTasksCount": sum(1 for t in tasks if t.last_status == "RUNNING"),
        "pendingTasksCount": sum(1 for t in tasks if t.last_status in ("PROVISIONING", "PENDING")),
        "activeServicesCount": sum(1 for s in services if s.status == "ACTIVE"),
        "statistics": [],
        "settings": c.settings or [{"name": "containerInsights", "value": "disabled"}],
        "capacityProviders": [],
        "defaultCapacityProviderStrategy": [],
    }
    if include_tags:
        out["tags"] = tags_out(c.tags)
    return out


def task_definition(td: TaskDefinition, account_id: str) -> dict[str, Any]:
    body = copy.deepcopy(td.body)
    fargate = "FARGATE" in body.get("requiresCompatibilities", [])
    out: dict[str, Any] = {
        "taskDefinitionArn": td.arn,
        **body,
        "revision": td.revision,
        "status": td.status,
        "requiresAttributes": [],
        "compatibilities": ["EC2", "FARGATE"] if fargate else ["EC2"],
        "registeredAt": td.registered_at,
        "registeredBy": f"arn:aws:iam::{account_id}:root",
    }
    if td.deregistered_at is not None:
        out["deregisteredAt"] = td.deregistered_at
    return out


def deployment(d: Deployment) -> dict[str, Any]:
    return _compact(
        {
            "id": d.id,
            "status": d.status,
            "taskDefinition": d.task_definition_arn,
            "desiredCount": d.desired_count,
            "pendingCount": d.pending_count(),
            "runningCount": d.running_count(),
            "failedTasks": d.failed_tasks,
            "createdAt": d.created_at,
            "updatedAt": d.updated_at,
            "launchType": d.launch_type,
            "platformVersion": "1.4.0" if d.launch_type == "FARGATE" else None,
            "platformFamily": "Linux" if d.launch_type == "FARGATE" else None,
            "networkConfiguration": d.network_configuration,
            "rolloutState": d.rollout_state,
            "rolloutStateReason": d.rollout_state_reason,
        }
    )


def load_balancer(b: LoadBalancerBinding) -> dict[str, Any]:
    out: dict[str, Any] = {
        "targetGroupArn": b.target_group_arn,
        "containerName": b.container_name,
        "containerPort": b.container_port,
    }
    if b.advanced is not None:
        out["advancedConfiguration"] = copy.deepcopy(b.advanced)
    return out


def service(s: Service, include_tags: bool, region: str, account_id: str) -> dict[str, Any]:
    out = _compact(
        {
            "serviceArn": s.arn,
            "serviceName": s.name,
            "clusterArn": s.cluster.arn,
            "loadBalancers": [load_balancer(b) for b in s.load_balancers],
            "serviceRegistries": [],
            "status": s.status,
            "desiredCount": s.desired_count,
            "runningCount": sum(d.running_count() for d in s.deployments),
            "pendingCount": sum(d.pending_count() for d in s.deployments),
            "launchType": s.launch_type,
            "platformVersion": s.platform_version
            or ("LATEST" if s.launch_type == "FARGATE" else None),
            "platformFamily": "Linux" if s.launch_type == "FARGATE" else None,
            "taskDefinition": s.task_definition_arn,
            "deploymentConfiguration": copy.deepcopy(s.deployment_configuration),
            "deployments": [deployment(d) for d in s.deployments],
            "events": [
                {"id": e.id, "createdAt": e.created_at, "message": e.message} for e in s.events
            ],
            "createdAt": s.created_at,
            "currentServiceDeployment": s.service_deployments[-1].arn
            if s.service_deployments
            else None,
            "placementConstraints": s.placement_constraints,
            "placementStrategy": s.placement_strategy,
            "networkConfiguration": s.network_configuration,
            "healthCheckGracePeriodSeconds": s.health_check_grace_period,
            "schedulingStrategy": s.scheduling_strategy,
            "deploymentController": {"type": "ECS"},
            "createdBy": f"arn:aws:iam::{account_id}:root",
            "enableECSManagedTags": s.enable_ecs_managed_tags,
            "propagateTags": s.propagate_tags,
            "enableExecuteCommand": s.enable_execute_command,
        }
    )
    if include_tags:
        out["tags"] = tags_out(s.tags)
    return out


def container(c: Container, task: Task) -> dict[str, Any]:
    return _compact(
        {
            "containerArn": c.arn,
            "taskArn": task.arn,
            "name": c.name,
            "image": c.image,
            "imageDigest": c.image_digest,
            "runtimeId": c.runtime_id,
            "lastStatus": c.last_status,
            "exitCode": c.exit_code,
            "reason": c.reason,
            "networkBindings": [],
            "networkInterfaces": [
                {
                    "attachmentId": f"eni-attach-{task.id[:17]}",
                    "privateIpv4Address": task.private_ip,
                }
            ],
            "healthStatus": c.health_status,
            "cpu": "0",
        }
    )


def task(t: Task, td: TaskDefinition | None, include_tags: bool) -> dict[str, Any]:
    body = td.body if td is not None else {}
    out = _compact(
        {
            "attachments": [
                {
                    "id": f"{t.id[:8]}-eni",
                    "type": "ElasticNetworkInterface",
                    "status": "ATTACHED" if t.last_status != "STOPPED" else "DELETED",
                    "details": [{"name": "privateIPv4Address", "value": t.private_ip}],
                }
            ],
            "availabilityZone": "us-east-1a",
            "clusterArn": t.cluster_arn,
            "connectivity": "CONNECTED" if t.connectivity_at is not None else None,
            "connectivityAt": t.connectivity_at,
            "containers": [container(c, t) for c in t.containers],
            "cpu": body.get("cpu"),
            "memory": body.get("memory"),
            "createdAt": t.created_at,
            "desiredStatus": t.desired_status,
            "enableExecuteCommand": False,
            "executionStoppedAt": t.execution_stopped_at,
            "group": t.group,
            "healthStatus": t.health_status,
            "lastStatus": str(t.last_status),
            "launchType": t.launch_type,
            "overrides": {
                "containerOverrides": [{"name": c.name} for c in t.containers],
                "inferenceAcceleratorOverrides": [],
            },
            "platformVersion": "1.4.0" if t.launch_type == "FARGATE" else None,
            "platformFamily": "Linux" if t.launch_type == "FARGATE" else None,
            "pullStartedAt": t.pull_started_at,
            "pullStoppedAt": t.pull_stopped_at,
            "startedAt": t.started_at,
            "startedBy": t.deployment_id,
            "stopCode": t.stop_code,
            "stoppedAt": t.stopped_at,
            "stoppedReason": t.stopped_reason,
            "stoppingAt": t.stopping_at,
            "taskArn": t.arn,
            "taskDefinitionArn": t.task_definition_arn,
            "version": t.version,
        }
    )
    if include_tags:
        out["tags"] = tags_out(t.tags)
    return out
