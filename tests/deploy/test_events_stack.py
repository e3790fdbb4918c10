"""helm-free-deploy/events: the CloudFormation stack of the ECS events queue and rule.

- ``cfn-lint`` (the CloudFormation resource specification) finds nothing wrong;
- the queue policy lets only EventBridge, only this rule, only send;
- deployed into the sandbox (moto's CloudFormation), the rule delivers the
  managed clusters' task and service events to the queue and no other
  cluster's, and every deployment state change (they name no cluster).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecsop.sandbox.scenario import Scenario
from ecsop.sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "helm-free-deploy" / "events" / "ecsop-events.yaml"
IMAGE = "registry.example/api@sha256:" + "a" * 64
IMAGE_2 = "registry.example/api@sha256:" + "b" * 64


def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text())
    return loaded


def test_cfn_lint_finds_nothing() -> None:
    cfn_lint = shutil.which("cfn-lint")
    if cfn_lint is None:
        pytest.skip("cfn-lint is not installed (pip install -e '.[test]' brings it)")
    done = subprocess.run([cfn_lint, str(TEMPLATE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_only_this_rule_may_send_to_the_queue() -> None:
    resources = template()["Resources"]
    (statement,) = resources["QueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["Rule", "Arn"]}}
    }
    assert resources["QueuePolicy"]["Properties"]["Queues"] == [{"Ref": "Queue"}]


def test_the_rule_covers_the_three_kinds_of_ecs_events_the_daemon_reads() -> None:
    pattern = template()["Resources"]["Rule"]["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.ecs"]
    kinds = {kind for branch in pattern["$or"] for kind in branch["detail-type"]}
    assert kinds == {"ECS Task State Change", "ECS Service Action", "ECS Deployment State Change"}
    (tasks,) = [b for b in pattern["$or"] if b["detail-type"] == ["ECS Task State Change"]]
    assert tasks["detail"]["desiredStatus"] == ["STOPPED"]  # what can wake a release


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    def service() -> dict[str, Any]:
        return {
            "desiredCount": 1,
            "taskDefinition": {
                "family": "api",
                "requiresCompatibilities": ["FARGATE"],
                "networkMode": "awsvpc",
                "cpu": "256",
                "memory": "512",
                "containerDefinitions": [{"name": "api", "image": IMAGE, "essential": True}],
            },
        }

    scenario = Scenario.model_validate(
        {
            "clockSpeed": 0,
            "images": {IMAGE: {"behavior": "healthy"}, IMAGE_2: {"behavior": "healthy"}},
            "clusters": {
                "prod": {"services": {"api": service()}},
                "sandbox": {"services": {"api": service()}},
            },
        }
    )
    with SandboxServer(scenario) as running:
        yield running


def test_deployed_the_rule_delivers_the_managed_clusters_events(server: SandboxServer) -> None:
    from e2e import event_stack  # the helper the end-to-end tests deploy it with

    endpoint = server.endpoint_url
    ecs = event_stack.client(endpoint, "ecs")
    prod = ecs.describe_clusters(clusters=["prod"])["clusters"][0]["clusterArn"]
    outputs = event_stack.deploy(endpoint, [prod])
    assert outputs["QueueArn"].endswith(":ecsop-events")
    assert outputs["RuleArn"].endswith(":rule/ecsop-events-ecs")

    for cluster in ("prod", "sandbox"):
        family = ecs.register_task_definition(
            family="api",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            containerDefinitions=[{"name": "api", "image": IMAGE_2, "essential": True}],
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.update_service(cluster=cluster, service="api", taskDefinition=family)
    server.advance(120)

    sqs = event_stack.client(endpoint, "sqs")
    seen: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=outputs["QueueUrl"], MaxNumberOfMessages=10).get(
        "Messages"
    ):
        for message in messages:
            seen.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=outputs["QueueUrl"], ReceiptHandle=message["ReceiptHandle"])
    by_kind: dict[str, set[str]] = {}
    for event in seen:
        cluster = event["resources"][0].split("/")[1]
        by_kind.setdefault(event["detail-type"], set()).add(cluster)
    assert by_kind["ECS Task State Change"] == {"prod"}
    tasks = [e["detail"] for e in seen if e["detail-type"] == "ECS Task State Change"]
    assert tasks and all(t["desiredStatus"] == "STOPPED" for t in tasks)
    assert by_kind["ECS Service Action"] == {"prod"}
    assert by_kind["ECS Deployment State Change"] == {"prod", "sandbox"}
