"""What CreateService and UpdateService (and the scenario) accept for the
traffic-shifting strategies, and a service bringing its own ALB resources.

- "Troubleshooting Amazon ECS blue/green deployments":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/troubleshooting-blue-green.html
- API_DeploymentConfiguration, API_AdvancedConfiguration:
  https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentConfiguration.html
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sandbox_harness import (
    GOOD,
    GOOD_2,
    Harness,
    Traffic,
    current_deployment,
    finished,
    scenario,
    service_spec,
    shifting_spec,
    timeline,
)

pytestmark = pytest.mark.sandbox


def _update_error(sb: Harness, **request: Any) -> tuple[str, str]:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as raised:
        sb.ecs.update_service(cluster="prod", service="api", **request)
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


@pytest.mark.parametrize(
    ("config", "code", "message"),
    [
        pytest.param(
            {"strategy": "LINEAR"},
            "ClientException",
            "advancedConfiguration field is required for all loadBalancers when using the "
            "linear deployment strategy",
            id="no-advanced-configuration",
        ),
        pytest.param(
            {"strategy": "BLUE_GREEN"},
            "ClientException",
            "advancedConfiguration field is required for all loadBalancers when using the "
            "Blue/green deployment strategy",
            id="blue-green-without-advanced-configuration",
        ),
        pytest.param(
            {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 0.05}},
            "InvalidParameterException",
            "canaryConfiguration.canaryPercent must be a multiple of 0.1 from 0.1 to 100.0.",
            id="canary-percent",
        ),
        pytest.param(
            {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 2.0}},
            "InvalidParameterException",
            "linearConfiguration.stepPercent must be a multiple of 0.1 from 3.0 to 100.0.",
            id="step-percent",
        ),
        pytest.param(
            {"strategy": "LINEAR", "linearConfiguration": {"stepBakeTimeInMinutes": 1441}},
            "InvalidParameterException",
            "linearConfiguration.stepBakeTimeInMinutes must be an integer from 0 to 1440.",
            id="step-bake",
        ),
        pytest.param(
            {
                "lifecycleHooks": [
                    {"targetType": "PAUSE", "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}
                ]
            },
            "InvalidParameterException",
            "Invalid lifecycle stage provided for Pause Hook",
            id="pause-at-production-shift",
        ),
        pytest.param(
            {"lifecycleHooks": [{"targetType": "SNS", "lifecycleStages": ["PRE_SCALE_UP"]}]},
            "InvalidParameterException",
            "Invalid targetType. Valid values are: AWS_LAMBDA, PAUSE",
            id="target-type",
        ),
    ],
)
def test_update_service_refuses_what_ecs_refuses(
    start_sandbox: Callable[..., Harness], config: dict[str, Any], code: str, message: str
) -> None:
    """CreateService / UpdateService validation (troubleshooting-blue-green.html;
    API_CanaryConfiguration, API_LinearConfiguration, API_DeploymentLifecycleHook);
    a non-ROLLING strategy on a rolling service behind a load balancer lacks the
    advancedConfiguration (terraform-aws-modules/terraform-aws-ecs#377)."""

    sb = start_sandbox(scenario({"api": service_spec(2, lb=True)}))
    config = {"bakeTimeInMinutes": 1, **config}
    assert _update_error(sb, deploymentConfiguration=config) == (code, message)


def test_blue_green_needs_a_bake_time(start_sandbox: Callable[..., Harness]) -> None:
    """ "You must provide this parameter when you use the BLUE_GREEN deployment
    strategy" (API_DeploymentConfiguration, bakeTimeInMinutes)."""
    sb = start_sandbox(scenario({"api": shifting_spec("LINEAR")}))
    assert _update_error(sb, deploymentConfiguration={"strategy": "BLUE_GREEN"}) == (
        "InvalidParameterException",
        "bakeTimeInMinutes is required when the deployment strategy is BLUE_GREEN.",
    )


def test_the_same_rule_cannot_be_production_and_test(
    start_sandbox: Callable[..., Harness],
) -> None:
    """troubleshooting-blue-green.html, "Using the same rule for both production and test
    listeners"."""
    sb = start_sandbox(scenario({"api": shifting_spec(bakeTimeInMinutes=1)}))
    binding = sb.service()["loadBalancers"][0]
    advanced = dict(binding["advancedConfiguration"])
    advanced["testListenerRule"] = advanced["productionListenerRule"]
    code, message = _update_error(
        sb, loadBalancers=[{**binding, "advancedConfiguration": advanced}]
    )
    assert code == "InvalidParameterException"
    assert message.startswith("The following rules cannot be used as both production and test")


def _own_load_balancer(sb: Harness) -> dict[str, str]:
    """What a user builds before a blue/green service (alb-resources-for-blue-green.html):
    two target groups, an ALB, a listener and a rule forwarding to both, weights 1 / 0."""
    import boto3

    ec2 = boto3.client(
        "ec2",
        endpoint_url=sb.server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    groups = [
        sb.elbv2.create_target_group(
            Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        for name in ("web-blue", "web-green")
    ]
    balancer = sb.elbv2.create_load_balancer(Name="web", Subnets=subnets, Type="application")
    listener = sb.elbv2.create_listener(
        LoadBalancerArn=balancer["LoadBalancers"][0]["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
    )["Listeners"][0]["ListenerArn"]
    rule = sb.elbv2.create_rule(
        ListenerArn=listener,
        Priority=1,
        Conditions=[{"Field": "path-pattern", "Values": ["/*"]}],
        Actions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": groups[0], "Weight": 1},
                        {"TargetGroupArn": groups[1], "Weight": 0},
                    ]
                },
            }
        ],
    )["Rules"][0]["RuleArn"]
    return {"blue": groups[0], "green": groups[1], "rule": rule}


def test_a_service_created_through_the_api_with_its_own_load_balancer(
    sandbox: Harness,
) -> None:
    """CreateService with ``advancedConfiguration`` naming the caller's own resources; its
    first deployment has no blue to shift from and fills ``targetGroupArn``; the next
    one is blue/green (API_AdvancedConfiguration; alb-resources-for-blue-green.html)."""

    own = _own_load_balancer(sandbox)
    created = sandbox.ecs.create_service(
        cluster="prod",
        serviceName="web",
        taskDefinition=sandbox.register(GOOD),
        desiredCount=1,
        launchType="FARGATE",
        loadBalancers=[
            {
                "targetGroupArn": own["blue"],
                "containerName": "api",
                "containerPort": 8000,
                "advancedConfiguration": {
                    "alternateTargetGroupArn": own["green"],
                    "productionListenerRule": own["rule"],
                    "roleArn": "arn:aws:iam::123456789012:role/ecs-elb",
                },
            }
        ],
        deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0},
    )["service"]
    assert (
        created["loadBalancers"][0]["advancedConfiguration"]["alternateTargetGroupArn"]
        == (own["green"])
    )
    sandbox.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED", name="web")
    traffic = Traffic(sandbox, "web")
    assert traffic.production == (1, 0)
    assert [s for _, s in traffic.targets(own["blue"])] == ["healthy"]
    sandbox.deploy(GOOD_2, name="web")
    sandbox.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED", name="web")
    assert traffic.production == (0, 100)
    assert [s for _, s in traffic.targets(own["green"])] == ["healthy"]


def test_a_scenario_strategy_that_shifts_traffic_needs_advanced_configuration() -> None:
    """The scenario refuses what CreateService would (troubleshooting-blue-green.html)."""
    from pydantic import ValidationError

    spec = service_spec(2, lb=True)
    spec["deploymentConfiguration"].update({"strategy": "CANARY"})
    with pytest.raises(ValidationError, match="advancedConfiguration"):
        scenario({"api": spec})
    spec = shifting_spec("CANARY", canaryConfiguration={"canaryPercent": 200})
    with pytest.raises(ValidationError, match="canaryPercent"):
        scenario({"api": spec})


def test_a_rule_serving_both_target_groups_rolls_the_deployment_back(
    start_sandbox: Callable[..., Harness],
) -> None:
    """ "productionListenerRule ... should have exactly one target group serving traffic"
    is found when the deployment starts: it rolls back (troubleshooting-blue-green.html,
    "Multiple target groups with traffic in listener rule")."""
    sb = start_sandbox(scenario({"api": shifting_spec(bakeTimeInMinutes=0)}))
    traffic = Traffic(sb)
    groups = [
        {"TargetGroupArn": traffic.primary, "Weight": 50},
        {"TargetGroupArn": traffic.alternate, "Weight": 50},
    ]
    sb.elbv2.modify_rule(
        RuleArn=traffic.production_rule,
        Actions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}],
    )
    sb.deploy(GOOD_2)
    seen = timeline(sb, traffic, finished)
    assert seen[-1][1][0] == "ROLLBACK_SUCCESSFUL"
    assert current_deployment(sb)["statusReason"] == (
        "Service deployment rolled back because of invalid networking configuration. "
        f"productionListenerRule {traffic.production_rule} should have exactly one target "
        "group serving traffic but found 2 target groups which are serving traffic"
    )
