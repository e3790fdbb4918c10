"""Fixtures for contract tests of the AWS gateway against moto's server over HTTP.

The server runs once per session in this process; each test starts from an empty
moto (``/moto-api/reset``). The gateway finds the server through
``AWS_ENDPOINT_URL`` exactly as the daemon does in the sandbox, and API calls are
counted from botocore's ``before-call`` events, the same events metrics use.
"""

from __future__ import annotations

import collections
from typing import Any

import boto3
import pytest

from ecsop.aws import clients as aws
from ecsop.aws import ecs

REGION = "us-east-1"
ACCOUNT = "123456789012"
"""moto's default account."""


@pytest.fixture
def calls() -> collections.Counter[str]:
    """API calls made by factory-built clients, by operation name."""
    return collections.Counter()


@pytest.fixture
def factory(aws_env: str, calls: collections.Counter[str]) -> aws.ClientFactory:
    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    def instrument(client: Any) -> None:
        client.meta.events.register("before-call", count)

    settings = aws.AwsSettings(retry_mode="standard", max_attempts=2)
    return aws.ClientFactory(settings, on_client_created=instrument)


@pytest.fixture
def gateway(factory: aws.ClientFactory) -> ecs.EcsGateway:
    return ecs.EcsGateway(factory.client("ecs", REGION))


@pytest.fixture
def setup(aws_env: str) -> Any:
    """A plain boto3 ECS client for arranging the world; its calls are not counted."""
    return boto3.client("ecs", region_name=REGION)
