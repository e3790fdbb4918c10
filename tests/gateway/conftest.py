"""Fixtures for contract tests of the AWS gateway against moto's server over HTTP.

The server runs once per session in this process; each test starts from an empty
moto (``/moto-api/reset``). The gateway finds the server through
``AWS_ENDPOINT_URL`` exactly as the daemon does in the sandbox, and API calls are
counted from botocore's ``before-call`` events, the same events metrics use.
"""

from __future__ import annotations

import collections
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from ecsop import aws, ecs

REGION = "us-east-1"
ACCOUNT = "123456789012"
"""moto's default account."""


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> str:
    """Dummy credentials and the endpoint in the environment; moto emptied."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return moto_endpoint


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
