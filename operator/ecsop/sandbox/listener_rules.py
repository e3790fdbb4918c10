"""Application Load Balancers, listeners and their rules for traffic-shifting services,
kept in moto's ELBv2.

A service with ``loadBalancers[].advancedConfiguration`` names a production
listener rule (and optionally a test listener rule) whose forward action lists
both of its target groups, the one serving traffic with a weight and the other
with weight 0.  During a blue/green, linear or canary deployment ECS itself
changes those weights ("traffic is gradually shifted from the blue service
revision to the green service revision by adjusting the weights of the target
groups in the listener rules", troubleshooting-blue-green.html,
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/troubleshooting-blue-green.html);
this module does that to moto's rules, so ``elbv2.describe_rules`` shows what a
client would see on AWS.

For scenario services the sandbox also creates what a user would have built
("Application Load Balancer resources for blue/green, linear, and canary
deployments",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/alb-resources-for-blue-green.html):
an internal ALB in the default VPC, a production listener (HTTP 80) and
optionally a test listener (HTTP 8080), each with a 404 default action and one
rule (priority 1, path ``/*``) forwarding to both target groups, weights
100 / 0.  Network Load Balancer listeners are not modelled.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

from ecsop.sandbox import traffic_config

NOT_FOUND = {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}
DEFAULT_ROLE = "arn:aws:iam::{account}:role/ecsInfrastructureRoleForLoadBalancers"


class ListenerRules:
    """Creates the listener rules of scenario services; reads and sets their weights."""

    def __init__(self, account_id: str, region: str) -> None:
        from moto.ec2.models import ec2_backends
        from moto.elbv2.models import elbv2_backends

        self._account_id = account_id
        self._elbv2: Any = elbv2_backends[account_id][region]
        self._ec2: Any = ec2_backends[account_id][region]

    def create(
        self,
        name: str,
        primary_target_group: str,
        alternate_target_group: str,
        *,
        production_port: int,
        test_port: int | None,
        role_arn: str | None,
    ) -> dict[str, Any]:
        """Make the ALB, listeners and rules; return the ``advancedConfiguration``."""
        vpc = self._ec2.get_default_vpc()
        subnets = [s.id for s in self._ec2.describe_subnets(filters={"vpc-id": [vpc.id]})][:2]
        balancer = self._elbv2.create_load_balancer(
            _elb_name(name), [], subnets, scheme="internal", loadbalancer_type="application"
        )
        forward = _forward({primary_target_group: 100, alternate_target_group: 0})
        rules: dict[str, str] = {}
        for role, port in (
            ("productionListenerRule", production_port),
            ("testListenerRule", test_port),
        ):
            if port is None:
                continue
            listener = self._elbv2.create_listener(
                balancer.arn, "HTTP", port, None, None, [copy.deepcopy(NOT_FOUND)]
            )
            rule = self._elbv2.create_rule(
                listener.arn,
                [{"Field": "path-pattern", "Values": ["/*"]}],
                1,
                [copy.deepcopy(forward)],
            )
            rules[role] = rule.arn
        return {
            "alternateTargetGroupArn": alternate_target_group,
            **rules,
            "roleArn": role_arn or DEFAULT_ROLE.format(account=self._account_id),
        }

    def _rule(self, rule_arn: str) -> Any | None:
        for balancer in self._elbv2.load_balancers.values():
            for listener in balancer.listeners.values():
                rule = listener.rules.get(rule_arn)
                if rule is not None:
                    return rule
        return None

    def exists(self, rule_arn: str) -> bool:
        return self._rule(rule_arn) is not None

    def weights(self, rule_arn: str | None) -> dict[str, int]:
        """Target group -> weight of the rule's forward action ({} if none)."""
        rule = self._rule(rule_arn) if rule_arn else None
        if rule is None:
            return {}
        for action in rule.actions:
            if action.type != "forward":
                continue
            groups = (action.data.get("ForwardConfig") or {}).get("TargetGroups")
            if groups:
                return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
            if action.data.get("TargetGroupArn"):
                return {action.data["TargetGroupArn"]: 1}
        return {}

    def share(self, rule_arn: str | None, target_group: str) -> float:
        """``target_group``'s share of the rule's traffic, in percent."""
        weights = self.weights(rule_arn)
        total = sum(weights.values())
        return 100.0 * weights.get(target_group, 0) / total if total else 0.0

    def shift(self, rule_arn: str, blue: str, green: str, green_percent: float) -> None:
        """Set the rule's forward action to ``green_percent`` on ``green``, the rest on
        ``blue`` (ModifyRule), keeping the order of the target groups it lists."""
        rule = self._rule(rule_arn)
        if rule is None:
            return
        blue_weight, green_weight = traffic_config.weights_for(green_percent)
        wanted = {blue: blue_weight, green: green_weight}
        order = [g for g in self.weights(rule_arn) if g in wanted]
        order += [g for g in wanted if g not in order]
        actions = [copy.deepcopy(a.data) for a in rule.actions if a.type != "forward"]
        actions.append(_forward({g: wanted[g] for g in order}))
        self._elbv2.modify_rule(rule_arn, [], actions)


def _forward(weights: dict[str, int]) -> dict[str, Any]:
    return {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": g, "Weight": w} for g, w in weights.items()]
        },
    }


def _elb_name(name: str) -> str:
    """ELB names: <= 32 characters of [A-Za-z0-9-], no leading/trailing/double '-'."""
    digest = hashlib.sha1(name.encode()).hexdigest()[:7]
    stem = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:24].strip("-")
    return f"{stem}-{digest}" if stem else f"alb-{digest}"
