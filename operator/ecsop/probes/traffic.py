"""Where a traffic-shifting rollout is: its stage, a pause, and the listener rules' weights.

For a service deploying with blue/green, canary or linear, ECS reports the
rollout as a service deployment (status, ``lifecycleStage``,
``lifecycleHookDetails``: "View service history using Amazon ECS service
deployments", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-deployment.html)
and moves traffic by the forward-action weights of the production (and test)
listener rules of ``advancedConfiguration``. Green's target group alternates
between the two every deployment, so it is read from the target service
revision's ``resolvedConfiguration`` (DescribeServiceRevisions, cached:
revisions never change). Read only while a rollout or a rollback of such a
service is under way: a DescribeServiceDeployments and a DescribeRules per look.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ecsop.aws import clients as aws
from ecsop.aws import ecs_mapping
from ecsop.decision.ecs_state import LoadBalancer, ServiceState
from ecsop.decision.observation import PausedHook, Traffic
from ecsop.decision.strategy import TRAFFIC_SHIFTING

ClientFor = Callable[[str, str | None, str | None], Any]


class ServiceDeployments(Protocol):
    """The part of ``ecsop.aws.ecs.EcsGateway`` this probe needs."""

    def service_deployment(self, arn: str) -> dict[str, Any] | None: ...

    def service_revision(self, arn: str) -> dict[str, Any] | None: ...


def read_traffic(
    elbv2: Any, deployments: ServiceDeployments, service: ServiceState
) -> Traffic | None:
    """The current service deployment of ``service``, and where its traffic is."""
    arn = service.current_service_deployment
    if not arn or service.strategy not in TRAFFIC_SHIFTING:
        return None
    raw = deployments.service_deployment(arn)
    if raw is None:
        return None
    config = raw.get("deploymentConfiguration") or {}
    target = (raw.get("targetServiceRevision") or {}).get("arn") or ""
    revision = deployments.service_revision(target) if target else None
    green = _target_groups(revision)
    rules = [
        rule
        for balancer in service.load_balancers
        for rule in (balancer.production_listener_rule, balancer.test_listener_rule)
        if rule
    ]
    weights = _weights(elbv2, rules) if rules and green else {}
    balancers = service.load_balancers
    production = [
        weights[rule]
        for rule in (b.production_listener_rule for b in balancers)
        if rule in weights
    ]
    test = [weights[b.test_listener_rule] for b in balancers if b.test_listener_rule in weights]
    return Traffic(
        service_deployment=arn,
        status=str(raw.get("status") or ""),
        stage=str(raw.get("lifecycleStage") or ""),
        strategy=str(config.get("strategy") or service.strategy),
        green_target_group=first_balancers(green, balancers),
        production_on_green=_share(production, green),
        test_on_green=_share(test, green),
        paused=_paused(raw),
        target_task_definition=ecs_mapping.task_definition_arn(
            str((revision or {}).get("taskDefinition") or ""), service.arn
        ),
        stage_since=ecs_mapping.aws_time(raw["updatedAt"]) if raw.get("updatedAt") else None,
        configuration=config,
    )


def first_balancers(green: set[str], balancers: Sequence[LoadBalancer]) -> str:
    """Green's target group of the service's first load balancer, the one an analysis's
    ``{{targetGroup}}`` names; with none of its pair, the first of green's by name.

    Never a set's first element: with two load balancers that changes with the
    process's string hashing, and an analysis would measure blue after a restart.
    """
    if balancers:
        first = balancers[0]
        for arn in (first.target_group_arn, first.alternate_target_group_arn):
            if arn and arn in green:
                return arn
    return min(green, default="")


def _target_groups(revision: Mapping[str, Any] | None) -> set[str]:
    """The target groups the revision's tasks register in (its resolved configuration)."""
    if revision is None:
        return set()
    resolved = revision.get("resolvedConfiguration") or {}
    return {
        str(lb["targetGroupArn"])
        for lb in resolved.get("loadBalancers") or revision.get("loadBalancers") or ()
        if lb.get("targetGroupArn")
    }


def _weights(elbv2: Any, rules: Sequence[str]) -> dict[str, Mapping[str, int]]:
    """Each listener rule -> its forward action's target group weights."""
    with aws.translated_errors("DescribeRules"):
        found = elbv2.describe_rules(RuleArns=list(dict.fromkeys(rules)))
    weights: dict[str, Mapping[str, int]] = {}
    for rule in found.get("Rules") or ():
        for action in rule.get("Actions") or ():
            if action.get("Type") != "forward":
                continue
            groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or ()
            if groups:
                weights[str(rule["RuleArn"])] = {
                    str(g["TargetGroupArn"]): int(g.get("Weight", 1)) for g in groups
                }
            elif action.get("TargetGroupArn"):
                weights[str(rule["RuleArn"])] = {str(action["TargetGroupArn"]): 1}
    return weights


def _share(rules: Sequence[Mapping[str, int]], green: set[str]) -> float | None:
    """Percent of the rules' weight on ``green`` (the first rule's; they move together)."""
    for weights in rules:
        total = sum(weights.values())
        if total:
            return round(100.0 * sum(w for g, w in weights.items() if g in green) / total, 1)
    return None


def _paused(raw: Mapping[str, Any]) -> PausedHook | None:
    for hook in raw.get("lifecycleHookDetails") or ():
        if hook.get("targetType") == "PAUSE" and hook.get("status") == "AWAITING_ACTION":
            expires = hook.get("expiresAt")
            return PausedHook(
                str(hook.get("hookId") or ""),
                ecs_mapping.aws_time(expires) if expires is not None else None,
            )
    return None
