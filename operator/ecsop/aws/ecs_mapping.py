"""ECS's answers as ``ecsop.observed`` values: the one place boto3's dicts are read.

Pure functions, no I/O; ``ecsop.ecs.EcsGateway`` calls them on every response.
Two rules matter for safety:

- A field the decision depends on and AWS left out is an error, not a default:
  a deployment without ``createdAt`` raises instead of inventing a time that
  could roll back a healthy rollout.
- Task definition references become full ARNs, borrowing partition, region and
  account from the service: ECS answers ARNs, moto short ``family:revision``
  names in places, and the cache, ``ecsop:last-good`` and the reconciler all
  compare ARNs.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from ecsop.aws import clients as aws
from ecsop.aws import taskdef
from ecsop.decision.ecs_state import (
    AwsVpc,
    CapacityProviderItem,
    ContainerLogs,
    Deployment,
    DeploymentStatus,
    LoadBalancer,
    RolloutState,
    ServiceEvent,
    ServiceState,
    TaskDefinitionArn,
    TaskLaunch,
    TaskTarget,
)
from ecsop.decision.observation import ServiceDeploymentRecord
from ecsop.decision.step_state import StepTask

EVENTS_KEPT = 20
"""Newest service events kept per observation: enough to explain a rollout, small to log."""


def service_state(cluster: str, raw: dict[str, Any], observed_at: datetime | None) -> ServiceState:
    """One service of a DescribeServices answer; ``observed_at`` is that answer's ``Date``."""
    arn = str(raw["serviceArn"])
    config = raw.get("deploymentConfiguration") or {}
    breaker = config.get("deploymentCircuitBreaker") or {}
    alarms = config.get("alarms") or {}
    events = sorted(service_events(raw.get("events")), key=lambda e: e.created_at, reverse=True)
    return ServiceState(
        arn=arn,
        cluster=cluster,
        name=str(raw["serviceName"]),
        status=str(raw.get("status", "")),
        task_definition=task_definition_arn(raw.get("taskDefinition", ""), arn),
        desired_count=int(raw.get("desiredCount", 0)),
        running_count=int(raw.get("runningCount", 0)),
        deployments=tuple(deployment_from(d, arn) for d in raw.get("deployments") or ()),
        tags=taskdef.tags_of(raw.get("tags")),
        circuit_breaker_enabled=bool(breaker.get("enable", False)),
        circuit_breaker_rollback=bool(breaker.get("rollback", False)),
        alarm_names=tuple(alarms.get("alarmNames") or ()) if alarms.get("enable") else (),
        alarm_rollback=bool(alarms.get("enable") and alarms.get("rollback")),
        has_load_balancers=bool(raw.get("loadBalancers")),
        load_balancers=tuple(
            load_balancer(lb) for lb in raw.get("loadBalancers") or () if lb.get("targetGroupArn")
        ),
        health_check_grace_seconds=int(raw.get("healthCheckGracePeriodSeconds") or 0),
        events=tuple(events[:EVENTS_KEPT]),
        deployment_controller=str((raw.get("deploymentController") or {}).get("type") or "ECS"),
        strategy=str(config.get("strategy") or "ROLLING"),
        deployment_configuration=dict(config),
        current_service_deployment=str(raw.get("currentServiceDeployment") or ""),
        observed_at=observed_at,
        launch=task_launch(raw),
    )


def task_launch(raw: Mapping[str, Any]) -> TaskLaunch:
    """How a service (DescribeServices) launches tasks: what its one-off tasks repeat."""
    awsvpc = ((raw.get("networkConfiguration") or {}).get("awsvpcConfiguration")) or None
    return TaskLaunch(
        launch_type=str(raw.get("launchType") or ""),
        capacity_provider_strategy=tuple(
            CapacityProviderItem(
                str(item["capacityProvider"]),
                int(item.get("weight") or 0),
                int(item.get("base") or 0),
            )
            for item in raw.get("capacityProviderStrategy") or ()
            if item.get("capacityProvider")
        ),
        platform_version=str(raw.get("platformVersion") or ""),
        awsvpc=AwsVpc(
            tuple(str(s) for s in awsvpc.get("subnets") or ()),
            tuple(str(g) for g in awsvpc.get("securityGroups") or ()),
            str(awsvpc.get("assignPublicIp") or ""),
        )
        if awsvpc
        else None,
    )


def container_logs(described: Mapping[str, Any]) -> dict[str, ContainerLogs]:
    """Container name -> where its logs go, from a task definition's ``logConfiguration``s.

    awslogs: ``awslogs-group``, ``awslogs-stream-prefix``, ``awslogs-region``;
    FireLens to CloudWatch (``Name`` cloudwatch or cloudwatch_logs):
    ``log_group_name``, ``log_stream_prefix``, ``region``. Other drivers are
    named only.
    """
    found: dict[str, ContainerLogs] = {}
    for container in described.get("containerDefinitions") or ():
        config = container.get("logConfiguration") or {}
        driver = str(config.get("logDriver") or "")
        if not driver:
            continue
        options = {str(k): str(v) for k, v in (config.get("options") or {}).items()}
        if driver == "awslogs":
            logs = ContainerLogs(
                driver,
                options.get("awslogs-group", ""),
                options.get("awslogs-stream-prefix", ""),
                options.get("awslogs-region", ""),
            )
        elif driver == "awsfirelens" and options.get("Name") in ("cloudwatch", "cloudwatch_logs"):
            logs = ContainerLogs(
                driver,
                options.get("log_group_name", ""),
                options.get("log_stream_prefix", ""),
                options.get("region", ""),
            )
        else:
            logs = ContainerLogs(driver)
        found[str(container["name"])] = logs
    return found


def step_task(task: Mapping[str, Any], container: str) -> StepTask:
    """A step's task (DescribeTasks), with its step container's exit code and reason.

    ``container`` "" (an earlier spec's step, its container not known): the one whose
    command the task overrides (``one_off.run`` overrides the step's container only).
    """
    container = container or _command_overridden(task)
    named: Mapping[str, Any] = next(
        (c for c in task.get("containers") or () if c.get("name") == container), {}
    )
    exit_code = named.get("exitCode")
    created = task.get("createdAt") or task.get("startedAt")
    if created is None:
        raise aws.AwsError(
            "IncompleteResponse", f"task {task.get('taskArn')} has no createdAt", "DescribeTasks"
        )
    return StepTask(
        arn=str(task["taskArn"]),
        last_status=str(task.get("lastStatus", "")),
        desired_status=str(task.get("desiredStatus", "")),
        created_at=aws_time(created),
        stopped_at=aws_time(task["stoppedAt"]) if task.get("stoppedAt") else None,
        exit_code=int(exit_code) if exit_code is not None else None,
        stop_code=str(task.get("stopCode") or ""),
        stopped_reason=str(task.get("stoppedReason") or "")[:300],
        container_reason=str(named.get("reason") or "")[:300],
    )


def _command_overridden(task: Mapping[str, Any]) -> str:
    """The container whose command ``task`` overrides ("" if none): DescribeTasks lists an
    override entry for every container, with ``command`` only where RunTask set one
    (``Task.overrides``, https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Task.html)."""
    overrides = (task.get("overrides") or {}).get("containerOverrides") or ()
    return next((str(o.get("name") or "") for o in overrides if o.get("command")), "")


def load_balancer(raw: Mapping[str, Any]) -> LoadBalancer:
    """One ``loadBalancers`` entry, with its ``advancedConfiguration`` when it has one."""
    advanced = raw.get("advancedConfiguration") or {}
    return LoadBalancer(
        str(raw["targetGroupArn"]),
        str(raw.get("containerName", "")),
        int(raw.get("containerPort") or 0),
        alternate_target_group_arn=str(advanced.get("alternateTargetGroupArn") or ""),
        production_listener_rule=str(advanced.get("productionListenerRule") or ""),
        test_listener_rule=str(advanced.get("testListenerRule") or ""),
    )


def deployment_from(raw: dict[str, Any], service_arn: str) -> Deployment:
    """One member of a service's ``deployments``."""
    if raw.get("createdAt") is None:
        # A rollout's deadline counts from here; inventing a time could roll back a
        # healthy deployment, so an answer without it is an error, not a default.
        raise aws.AwsError(
            "IncompleteResponse", f"deployment {raw.get('id')} has no createdAt", "DescribeServices"
        )
    created_at = aws_time(raw["createdAt"])
    rollout_state = raw.get("rolloutState")
    return Deployment(
        id=str(raw["id"]),
        status=DeploymentStatus(raw["status"]),
        task_definition=task_definition_arn(raw.get("taskDefinition", ""), service_arn),
        rollout_state=RolloutState(rollout_state) if rollout_state else None,
        rollout_state_reason=str(raw.get("rolloutStateReason", "")),
        desired_count=int(raw.get("desiredCount", 0)),
        running_count=int(raw.get("runningCount", 0)),
        pending_count=int(raw.get("pendingCount", 0)),
        failed_tasks=int(raw.get("failedTasks", 0)),
        created_at=created_at,
        updated_at=aws_time(raw["updatedAt"]) if raw.get("updatedAt") else created_at,
    )


def service_events(raw: list[dict[str, Any]] | None) -> Iterator[ServiceEvent]:
    """A service's ``events``, skipping any without a time (they cannot be ordered)."""
    for event in raw or ():
        if event.get("createdAt") is not None:
            yield ServiceEvent(
                str(event.get("id", "")),
                aws_time(event["createdAt"]),
                str(event.get("message", "")),
            )


def task_definition_arn(reference: str, like_arn: str) -> TaskDefinitionArn:
    """``reference`` as a full ARN, borrowing partition, region and account from ``like_arn``."""
    if reference.startswith("arn:") or not reference:
        return TaskDefinitionArn(reference)
    parts = like_arn.split(":")
    if len(parts) < 6:
        return TaskDefinitionArn(reference)
    partition, region, account = parts[1], parts[3], parts[4]
    name = reference.removeprefix("task-definition/")
    return TaskDefinitionArn(f"arn:{partition}:ecs:{region}:{account}:task-definition/{name}")


def aws_time(value: Any) -> datetime:
    """A timezone-aware UTC datetime from whatever botocore parsed (datetime, epoch, ISO)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def response_date(response: Mapping[str, Any]) -> datetime | None:
    """AWS's clock at the response (the HTTP Date header), if it sent one.

    Whole seconds only, which is plenty for timeouts of minutes; the sandbox's
    simulator sets it from its own (faster) clock.
    """
    headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    try:
        return aws_time(email.utils.parsedate_to_datetime(headers["date"]))
    except (KeyError, TypeError, ValueError):
        return None


def task_target(task: dict[str, Any], instances: Mapping[str, str]) -> TaskTarget:
    """A task's ENI addresses (awsvpc) and its host port bindings (bridge/host mode)."""
    ips = [
        str(detail.get("value"))
        for attachment in task.get("attachments") or ()
        if attachment.get("type") == "ElasticNetworkInterface"
        for detail in attachment.get("details") or ()
        if detail.get("name") == "privateIPv4Address" and detail.get("value")
    ]
    ports = {
        (str(c.get("name")), int(b["containerPort"])): int(b["hostPort"])
        for c in task.get("containers") or ()
        for b in c.get("networkBindings") or ()
        if b.get("containerPort") is not None and b.get("hostPort") is not None
    }
    return TaskTarget(
        task_arn=str(task["taskArn"]),
        started_at=aws_time(task["startedAt"]) if task.get("startedAt") else None,
        ips=tuple(dict.fromkeys(ips)),
        instance_id=instances.get(str(task.get("containerInstanceArn", "")), ""),
        host_ports=ports,
    )


def stopped_reason(task: dict[str, Any]) -> str:
    """One line: stop code, stopped reason, then each container's exit code or reason."""
    head = ": ".join(str(p) for p in (task.get("stopCode"), task.get("stoppedReason")) if p)
    parts = [head or "stopped"]
    for container in task.get("containers") or ():
        name = container.get("name", "?")
        if container.get("exitCode") is not None:
            parts.append(f"container {name} exit code {container['exitCode']}")
        if container.get("reason"):
            parts.append(f"container {name}: {container['reason']}")
    return "; ".join(parts)


def service_deployment_record(
    brief: Mapping[str, Any], task_definitions: Mapping[str, str]
) -> ServiceDeploymentRecord:
    """One ListServiceDeployments entry, with its target revision's task definition."""
    target = str(brief.get("targetServiceRevisionArn", ""))
    arn = str(brief.get("serviceArn", ""))
    created = brief.get("createdAt") or brief.get("startedAt")
    return ServiceDeploymentRecord(
        arn=str(brief.get("serviceDeploymentArn", "")),
        status=str(brief.get("status", "")),
        target_task_definition=task_definition_arn(task_definitions.get(target, ""), arn),
        created_at=aws_time(created) if created is not None else datetime.fromtimestamp(0, UTC),
        status_reason=str(brief.get("statusReason", "")),
    )
