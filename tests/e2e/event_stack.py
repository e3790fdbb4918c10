"""helm-free-deploy's events stack, deployed into the sandbox as a user deploys it into AWS.

``deploy`` creates ``helm-free-deploy/events/ecsop-events.yaml`` with
CloudFormation (moto's, behind the sandbox endpoint): the SQS queue, its
dead-letter queue and the EventBridge rule on the managed clusters' ECS
events. moto's CloudFormation does not implement ``AWS::SQS::QueuePolicy``
(and moto's EventBridge delivers to SQS without one), so the policy is
checked statically in ``tests/deploy/test_events_stack.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3

TEMPLATE = Path(__file__).resolve().parents[2] / "helm-free-deploy" / "events" / "ecsop-events.yaml"


def client(endpoint: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def deploy(endpoint: str, clusters: list[str], name: str = "ecsop-events") -> dict[str, str]:
    """Create the stack for these cluster ARNs; its outputs (``QueueUrl``, ``QueueArn``...)."""
    cloudformation = client(endpoint, "cloudformation")
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[
            {"ParameterKey": "ClusterArns", "ParameterValue": ",".join(clusters)},
            {"ParameterKey": "QueueName", "ParameterValue": name},
        ],
    )
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

