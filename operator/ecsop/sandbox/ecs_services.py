"""ECS operations on services and their deployments (see ``ecs_api``).

CreateService and UpdateService refuse what ECS refuses about the deployment
strategy and ``loadBalancers[].advancedConfiguration`` (``traffic_config``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecsop.sandbox import events, lifecycle, traffic_config, wire_ecs
from ecsop.sandbox.ecs_api import check_tags, include_tags, operation, paginate, tags_in
from ecsop.sandbox.model import LoadBalancerBinding, Service, TaskDefinition
from ecsop.sandbox.simulator import EcsError, Simulator


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
        advanced = lb.get("advancedConfiguration")
        if advanced is not None:
            _adopt_advanced(sim, arn, advanced)
        bindings.append(
            LoadBalancerBinding(
                target_group_arn=arn,
                container_name=lb["containerName"],
                container_port=int(lb["containerPort"]),
                advanced=dict(advanced) if advanced is not None else None,
            )
        )
    return bindings


def _adopt_advanced(sim: Simulator, primary: str, advanced: Mapping[str, Any]) -> None:
    """The alternate target group and the listener rules must exist (ELBv2 in moto)."""
    alternate = advanced.get("alternateTargetGroupArn")
    if not alternate or not sim.target_groups.adopt(alternate):
        raise EcsError(
            "InvalidParameterException", f"Unable to find the target group {alternate!r}."
        )
    for key in ("productionListenerRule", "testListenerRule"):
        rule = advanced.get(key)
        if rule is not None and ":listener/net/" in rule:
            raise EcsError(
                "UnsupportedFeatureException",
                "The ecsop sandbox does not implement Network Load Balancer listeners "
                "for blue/green deployments.",
            )
        if rule is not None and not sim.rules.exists(rule):
            raise EcsError("InvalidParameterException", f"Unable to find the {key} {rule!r}.")
    production = sim.rules.weights(advanced.get("productionListenerRule"))
    if advanced.get("testListenerRule") is None and not {primary, alternate} <= set(production):
        raise EcsError(
            "InvalidParameterException",
            "For Application LoadBalancer, testListenerRule is required when "
            "productionListenerRule is not associated with both targetGroup and "
            "alternateTargetGroup",
        )


def _check_strategy(
    requested: Mapping[str, Any], merged: Mapping[str, Any], load_balancers: list[Any]
) -> None:
    try:
        traffic_config.check_deployment_configuration(requested, merged)
        traffic_config.check_load_balancers(traffic_config.strategy_of(merged), load_balancers)
    except traffic_config.ConfigurationError as exc:
        raise EcsError(exc.code, exc.message) from exc


def _requested_load_balancers(service: Service) -> list[dict[str, Any]]:
    return [
        {"targetGroupArn": b.target_group_arn, "advancedConfiguration": b.advanced}
        for b in service.load_balancers
    ]


@operation("CreateService")
def create_service(sim: Simulator, request: dict[str, Any]) -> dict[str, Any]:
    cluster = sim.cluster(request.get("cluster"))
    definition = sim.task_definition(request["taskDefinition"])
    check_tags(request.get("tags", []))
    config = request.get("deploymentConfiguration", {})
    _check_strategy(config, config, request.get("loadBalancers", []))
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
        tags=tags_in(request.get("tags", [])),
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
    requested = request.get("deploymentConfiguration", {})
    merged = {**service.deployment_configuration, **requested}
    _check_strategy(
        requested,
        merged,
        request["loadBalancers"]
        if "loadBalancers" in request
        else _requested_load_balancers(service),
    )
    if "deploymentConfiguration" in request:
        service.deployment_configuration = merged
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
        found.append(_service_out(sim, service, include_tags(request)))
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
    return paginate(arns, request, "serviceArns", 10, 100)


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


def _service_out(sim: Simulator, service: Service, include_tags: bool) -> dict[str, Any]:
    return wire_ecs.service(service, include_tags, sim.region, sim.account_id)
