"""Target groups for services behind a load balancer, kept in moto's ELBv2.

moto serves DescribeTargetHealth, DescribeTargetGroups and the rest of the
ELBv2 API; what it cannot do is let target health change over time (it calls
every registered target ``healthy``).  The simulator therefore registers each
task's IP in moto's target group and answers health itself, through a
per-target-group ``health_for`` that reads the states set here:
``initial`` -> ``healthy``/``unhealthy`` -> ``draining`` -> deregistered,
with the reason codes the ELB API documents
(https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetHealth.html).

A target that fails its checks stays ``unhealthy`` (and visible so) until ECS
stops its task and deregisters it; how long ECS takes is counted in the target
group's ``HealthCheckIntervalSeconds`` (``ecs_notice_seconds``), which the
ELBv2 API sets (CreateTargetGroup / ModifyTargetGroup; 30 by default, the
ALB default in "Health checks for Application Load Balancer target groups",
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html).
"""

from __future__ import annotations

import hashlib
import re
import types
from typing import Any

_REASONS: dict[str, tuple[str | None, str | None]] = {
    "initial": ("Elb.RegistrationInProgress", "Target registration is in progress"),
    "healthy": (None, None),
    "draining": ("Target.DeregistrationInProgress", "Target deregistration is in progress"),
}


ECS_NOTICE_INTERVALS = 2
"""Health-check intervals between the ELB marking a target ``unhealthy`` and the
ECS service scheduler stopping its task: ECS learns of it by polling target
health, not at once, so DescribeTargetHealth shows ``unhealthy`` meanwhile."""


class TargetGroups:
    """Creates target groups and drives their targets' health."""

    def __init__(self, account_id: str, region: str) -> None:
        from moto.ec2.models import ec2_backends
        from moto.elbv2.models import elbv2_backends

        self._elbv2 = elbv2_backends[account_id][region]
        ec2 = ec2_backends[account_id][region]
        vpc = ec2.get_default_vpc() or ec2.create_vpc("172.31.0.0/16")
        self._vpc_id: str = vpc.id
        self._health: dict[str, dict[str, tuple[str, str | None, str | None]]] = {}

    def create(self, cluster: str, service: str, port: int) -> str:
        name = _target_group_name(cluster, service)
        group = self._elbv2.create_target_group(
            name,
            protocol="HTTP",
            port=port,
            vpc_id=self._vpc_id,
            target_type="ip",
            healthcheck_path="/",
        )
        self.adopt(group.arn)
        return str(group.arn)

    def adopt(self, target_group_arn: str) -> bool:
        """Take over health reporting of an existing target group (False: no such group)."""
        group = self._elbv2.target_groups.get(target_group_arn)
        if group is None:
            return False
        if target_group_arn not in self._health:
            states = self._health[target_group_arn] = {}
            # moto asks the group for each target's health; answer from ``states``.
            setattr(group, "health_for", types.MethodType(_health_reader(states), group))  # noqa: B010
        return True

    def ecs_notice_seconds(self, target_group_arn: str) -> float:
        """How long an ``unhealthy`` target keeps serving before ECS replaces its task."""
        group = self._elbv2.target_groups.get(target_group_arn)
        interval = float(getattr(group, "health_check_interval_seconds", None) or 30)
        return ECS_NOTICE_INTERVALS * interval

    def register(self, target_group_arn: str, ip: str, port: int) -> None:
        self._elbv2.target_groups[target_group_arn].register([{"Id": ip, "Port": port}])
        self.set_state(target_group_arn, ip, "initial")

    def set_state(self, target_group_arn: str, ip: str, state: str, codes: str = "[500]") -> None:
        if state == "unhealthy":
            # An HTTP check answered with codes outside the matcher (API_TargetHealth).
            reason: tuple[str | None, str | None] = (
                "Target.ResponseCodeMismatch",
                f"Health checks failed with these codes: {codes}",
            )
        else:
            reason = _REASONS[state]
        self._health[target_group_arn][ip] = (state, reason[0], reason[1])

    def deregister(self, target_group_arn: str, ip: str) -> None:
        group = self._elbv2.target_groups.get(target_group_arn)
        self._health.get(target_group_arn, {}).pop(ip, None)
        if group is not None and ip in group.targets:
            group.deregister([{"Id": ip}])


def _health_reader(
    states: dict[str, tuple[str, str | None, str | None]],
) -> Any:
    from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

    original = FakeTargetGroup.health_for

    def health_for(group: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
        found = states.get(target["Id"])
        registered = group.targets.get(target["Id"])
        if found is None or registered is None:
            return original(group, target, ec2_backend)
        state, reason, description = found
        return FakeHealthStatus(
            target["Id"], registered["Port"], group.health_check_port, state, reason, description
        )

    return health_for


def _target_group_name(cluster: str, service: str) -> str:
    """ELB names: <= 32 characters of [A-Za-z0-9-], no leading/trailing/double '-'."""
    digest = hashlib.sha1(f"{cluster}/{service}".encode()).hexdigest()[:7]
    stem = re.sub(r"[^A-Za-z0-9]+", "-", f"{cluster}-{service}").strip("-")[:24].strip("-")
    return f"{stem}-{digest}" if stem else f"tg-{digest}"
