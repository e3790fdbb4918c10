"""Helpers of the sandbox tests: scenarios, a boto3 harness, rollout summaries.

The clock runs at speed 0 and tests step it by hand (``Harness.advance``,
``Harness.run_until``), so every assertion is about simulated time and no
test sleeps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

from ecsop.sandbox.scenario import Scenario
from ecsop.sandbox.server import SandboxServer

GOOD = "registry.example/api@sha256:" + "a" * 64
GOOD_2 = "registry.example/api@sha256:" + "b" * 64
CRASH = "registry.example/api@sha256:" + "c" * 64
UNHEALTHY = "registry.example/api@sha256:" + "d" * 64
PULL_ERROR = "registry.example/api@sha256:" + "e" * 64
SLOW = "registry.example/api@sha256:" + "f" * 64
FLAKY = "registry.example/api@sha256:" + "1" * 64
ALARM = "registry.example/api@sha256:" + "2" * 64
UNKNOWN = "registry.example/api@sha256:" + "9" * 64

IMAGES: dict[str, Any] = {
    GOOD: {"behavior": "healthy", "startSeconds": 10},
    GOOD_2: {"behavior": "healthy", "startSeconds": 10},
    CRASH: {"behavior": "crashloop", "exitCode": 3, "crashAfterSeconds": 5},
    UNHEALTHY: {"behavior": "unhealthy"},
    PULL_ERROR: {"behavior": "pull-error"},
    SLOW: {"behavior": "slow", "startSeconds": 120},
    FLAKY: {"behavior": "flaky", "failRate": 0.5, "startSeconds": 10},
    ALARM: {"behavior": "alarm", "alarm": "api-{cluster}-5xx", "startSeconds": 10},
}


def task_definition(image: str = GOOD, family: str = "api") -> dict[str, Any]:
    return {
        "family": family,
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [{"name": "api", "image": image, "essential": True}],
    }


def service_spec(
    desired: int = 2,
    *,
    breaker: bool = True,
    rollback: bool = True,
    lb: bool = False,
    image: str = GOOD,
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "desiredCount": desired,
        "deploymentConfiguration": {
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "deploymentCircuitBreaker": {"enable": breaker, "rollback": rollback},
        },
        "taskDefinition": task_definition(image),
    }
    if lb:
        spec["loadBalancer"] = {
            "containerName": "api",
            "containerPort": 8000,
            "deregistrationDelaySeconds": 20,
            "unhealthyAfterSeconds": 30,
        }
    spec.update(extra)
    return spec


def scenario(services: dict[str, Any] | None = None, **top: Any) -> Scenario:
    raw: dict[str, Any] = {
        "clockSpeed": 0,
        "seed": 7,
        "images": copy.deepcopy(IMAGES),
        "alarms": ["api-prod-5xx"],
        "clusters": {"prod": {"services": services or {"api": service_spec()}}},
    }
    raw.update(top)
    return Scenario.model_validate(raw)


class Harness:
    def __init__(self, server: SandboxServer, retries: int = 1) -> None:
        self.server = server
        config = Config(retries={"mode": "standard", "total_max_attempts": retries})
        kw: dict[str, Any] = {
            "endpoint_url": server.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "config": config,
        }
        self.ecs = boto3.client("ecs", **kw)
        self.elbv2 = boto3.client("elbv2", **kw)
        self.cloudwatch = boto3.client("cloudwatch", **kw)

    def advance(self, seconds: float) -> None:
        self.server.advance(seconds)

    def service(self, name: str = "api", cluster: str = "prod") -> dict[str, Any]:
        found: dict[str, Any] = self.ecs.describe_services(cluster=cluster, services=[name])[
            "services"
        ][0]
        return found

    def run_until(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        name: str = "api",
        step: float = 1.0,
        limit: float = 1800.0,
    ) -> float:
        """Step the clock until ``predicate(service)``; return simulated seconds taken."""
        waited = 0.0
        while not predicate(self.service(name)):
            if waited >= limit:
                raise AssertionError(f"not reached within {limit} simulated seconds")
            self.advance(step)
            waited += step
        return waited

    def register(self, image: str, family: str = "api") -> str:
        arn: str = self.ecs.register_task_definition(**task_definition(image, family))[
            "taskDefinition"
        ]["taskDefinitionArn"]
        return arn

    def deploy(self, image: str, name: str = "api") -> str:
        arn = self.register(image)
        self.ecs.update_service(cluster="prod", service=name, taskDefinition=arn)
        return arn

    def tasks(self, name: str = "api", desired: str = "RUNNING") -> list[dict[str, Any]]:
        arns = self.ecs.list_tasks(cluster="prod", serviceName=name, desiredStatus=desired)[
            "taskArns"
        ]
        if not arns:
            return []
        found: list[dict[str, Any]] = self.ecs.describe_tasks(cluster="prod", tasks=arns)["tasks"]
        return found


def rollout(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(status, task definition revision, rolloutState) of each deployment."""
    return [
        (d["status"], d["taskDefinition"].rsplit("/", 1)[-1], d["rolloutState"])
        for d in service["deployments"]
    ]


def messages(service: dict[str, Any]) -> list[str]:
    return [e["message"] for e in service["events"]]


HOOK = "arn:aws:lambda:us-east-1:123456789012:function:smoke-test"
HOOK_ROLE = "arn:aws:iam::123456789012:role/ecsLambdaInvokeRole"


def shifting_spec(
    strategy: str = "BLUE_GREEN",
    desired: int = 2,
    *,
    test_listener: bool = True,
    hooks: list[dict[str, Any]] | None = None,
    **config: Any,
) -> dict[str, Any]:
    """A service behind a load balancer whose deployments shift traffic (``strategy``)."""
    spec = service_spec(desired, lb=True)
    spec["loadBalancer"]["advancedConfiguration"] = {"testListener": test_listener}
    spec["deploymentConfiguration"].update({"strategy": strategy, **config})
    if hooks:
        spec["deploymentConfiguration"]["lifecycleHooks"] = [
            {"roleArn": HOOK_ROLE, **hook} for hook in hooks
        ]
    return spec


class Traffic:
    """What the service's listener rules forward, read back through ELBv2."""

    def __init__(self, sb: Harness, name: str = "api") -> None:
        binding = sb.service(name)["loadBalancers"][0]
        advanced = binding["advancedConfiguration"]
        self.sb = sb
        self.primary: str = binding["targetGroupArn"]
        self.alternate: str = advanced["alternateTargetGroupArn"]
        self.production_rule: str = advanced["productionListenerRule"]
        self.test_rule: str | None = advanced.get("testListenerRule")

    def both(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(primary, alternate) weights of the production rule and of the test rule
        ((0, 0) without one), in one DescribeRules call."""
        arns = [r for r in (self.production_rule, self.test_rule) if r]
        found: dict[str, tuple[int, int]] = {}
        for rule in self.sb.elbv2.describe_rules(RuleArns=arns)["Rules"]:
            forward = next(a for a in rule["Actions"] if a["Type"] == "forward")
            groups = {
                g["TargetGroupArn"]: g["Weight"] for g in forward["ForwardConfig"]["TargetGroups"]
            }
            found[rule["RuleArn"]] = (groups.get(self.primary, 0), groups.get(self.alternate, 0))
        return found[self.production_rule], found.get(self.test_rule or "", (0, 0))

    @property
    def production(self) -> tuple[int, int]:
        return self.both()[0]

    @property
    def test(self) -> tuple[int, int]:
        return self.both()[1]

    def targets(self, target_group: str) -> list[tuple[str, str]]:
        found = self.sb.elbv2.describe_target_health(TargetGroupArn=target_group)
        return sorted(
            (t["Target"]["Id"], t["TargetHealth"]["State"])
            for t in found["TargetHealthDescriptions"]
        )


def current_deployment(sb: Harness, name: str = "api") -> dict[str, Any]:
    arn = sb.service(name)["currentServiceDeployment"]
    found: dict[str, Any] = sb.ecs.describe_service_deployments(serviceDeploymentArns=[arn])[
        "serviceDeployments"
    ][0]
    return found


def hook_invocations(sb: Harness) -> list[dict[str, Any]]:
    import requests

    answer = requests.get(f"{sb.server.endpoint_url}/_sandbox/hooks", timeout=10).json()
    found: list[dict[str, Any]] = answer["invocations"]
    return found


ShiftState = tuple[str, str | None, tuple[int, int], tuple[int, int]]


def shift_state(sb: Harness, traffic: Traffic, arn: str | None = None) -> ShiftState:
    if arn is None:
        sd = current_deployment(sb)
    else:
        sd = sb.ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"][
            0
        ]
    return (sd["status"], sd.get("lifecycleStage"), *traffic.both())


def timeline(
    sb: Harness,
    traffic: Traffic,
    done: Callable[[ShiftState], bool],
    limit: int = 1200,
    check: Callable[[ShiftState], None] | None = None,
) -> list[tuple[int, ShiftState]]:
    """Step the clock a second at a time; each distinct state of the current service
    deployment with when it began."""
    arn = sb.service()["currentServiceDeployment"]
    seen: list[tuple[int, ShiftState]] = []
    for second in range(limit):
        state = shift_state(sb, traffic, arn)
        if check is not None:
            check(state)
        if not seen or seen[-1][1] != state:
            seen.append((second, state))
        if done(state):
            return seen
        sb.advance(1)
    raise AssertionError(f"not done within {limit} s: {seen}")


def finished(state: ShiftState) -> bool:
    return state[0] in ("SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED", "STOPPED")


def rollouts(sb: Harness) -> list[tuple[str, str]]:
    return [(d["status"], d["rolloutState"]) for d in sb.service()["deployments"]]


def consistent(sb: Harness) -> Callable[[ShiftState], None]:
    """``deployments`` in DescribeServices agrees with the service deployment's status."""

    def check(state: ShiftState) -> None:
        found = rollouts(sb)
        primary, failed = found[0], [r for r in found if r[1] == "FAILED"]
        if state[0] in ("IN_PROGRESS", "ROLLBACK_REQUESTED"):
            assert primary == ("PRIMARY", "IN_PROGRESS") and not failed, (state, found)
        elif state[0] == "ROLLBACK_IN_PROGRESS":
            assert primary == ("PRIMARY", "IN_PROGRESS") and failed, (state, found)
        else:
            assert primary == ("PRIMARY", "COMPLETED") and not failed, (state, found)

    return check
