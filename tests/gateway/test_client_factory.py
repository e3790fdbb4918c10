"""ClientFactory: one client per key, shared config, endpoint from the environment, roles."""

from __future__ import annotations

import collections
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.sts.models import sts_backends

from ecsop import __version__
from ecsop.aws import clients as aws

REGION = "us-east-1"
ROLE = "arn:aws:iam::210987654321:role/ecsop-deployer"


def assumed_roles() -> list[Any]:
    return [role for account in sts_backends.values() for role in account["aws"].assumed_roles]


def test_clients_are_cached_per_service_region_and_role(aws_env: str) -> None:
    created: list[Any] = []
    factory = aws.ClientFactory(on_client_created=created.append)
    ecs = factory.client("ecs", REGION)
    assert factory.client("ecs", REGION) is ecs
    assert factory.client("ecs", "eu-west-1") is not ecs
    assert factory.client("ecs", REGION, ROLE) is not ecs
    assert factory.client("ecs", REGION, ROLE) is factory.client("ecs", REGION, ROLE)
    assert factory.client("cloudwatch", REGION) is not ecs
    assert len(created) == 4


def test_concurrent_callers_share_one_client(aws_env: str) -> None:
    created: list[Any] = []
    factory = aws.ClientFactory(on_client_created=created.append)
    barrier = threading.Barrier(16)
    seen: list[Any] = []

    def grab() -> None:
        barrier.wait()
        seen.append(factory.client("ecs", REGION, ROLE))

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(client) for client in seen}) == 1
    assert len(created) == 1


@pytest.mark.parametrize(
    ("settings", "retries"),
    [
        pytest.param(
            aws.AwsSettings(), {"mode": "adaptive", "total_max_attempts": 10}, id="default"
        ),
        pytest.param(
            aws.AwsSettings(retry_mode="standard", max_attempts=3),
            {"mode": "standard", "total_max_attempts": 3},
            id="standard",
        ),
    ],
)
def test_every_client_gets_the_configuration(
    aws_env: str, settings: aws.AwsSettings, retries: dict[str, Any]
) -> None:
    client = aws.ClientFactory(settings).client("ecs", REGION)
    config = client.meta.config
    assert config.retries == retries
    assert (config.connect_timeout, config.read_timeout) == (
        settings.connect_timeout,
        settings.read_timeout,
    )
    assert config.user_agent_extra == f"ecsop/{__version__}"


def test_user_agent_reaches_the_wire(aws_env: str) -> None:
    agents: list[str] = []
    client = aws.ClientFactory().client("ecs", REGION)
    client.meta.events.register(
        "before-send", lambda request, **_: agents.append(request.headers["User-Agent"].decode())
    )
    client.list_clusters()
    assert f"ecsop/{__version__}" in agents[0]


def test_aws_endpoint_url_is_honoured(aws_env: str) -> None:
    factory = aws.ClientFactory()
    assert factory.client("ecs", REGION).meta.endpoint_url == aws_env
    assert factory.client("ecs", REGION, ROLE).meta.endpoint_url == aws_env


def test_role_is_assumed_with_the_ecsop_session_name(aws_env: str) -> None:
    factory = aws.ClientFactory()
    base = factory.client("sts", REGION).get_caller_identity()
    assumed = factory.client("sts", REGION, ROLE).get_caller_identity()
    assert assumed["Arn"] == "arn:aws:sts::210987654321:assumed-role/ecsop-deployer/ecsop"
    assert assumed["Account"] == "210987654321" != base["Account"]
    (role,) = assumed_roles()
    assert (role.role_arn, role.session_name) == (ROLE, "ecsop")
    lifetime = role.expiration - datetime.now(UTC).replace(tzinfo=None)
    assert timedelta(minutes=59) < lifetime <= timedelta(hours=1)


def test_one_assume_role_serves_many_calls(aws_env: str) -> None:
    factory = aws.ClientFactory()
    ecs = factory.client("ecs", REGION, ROLE)
    cloudwatch = factory.client("cloudwatch", REGION, ROLE)
    for _ in range(3):
        ecs.list_clusters()
        cloudwatch.describe_alarms()
    assert len(assumed_roles()) == 1


def test_credentials_are_refreshed_before_expiry(aws_env: str) -> None:
    # 15-minute credentials are already inside botocore's 15-minute advisory window,
    # so every call refreshes them: the refresh path runs without waiting an hour.
    factory = aws.ClientFactory(aws.AwsSettings(role_duration_seconds=900))
    ecs = factory.client("ecs", REGION, ROLE)
    ecs.list_clusters()
    ecs.list_clusters()
    roles = assumed_roles()
    assert len(roles) >= 2
    assert len({role.access_key_id for role in roles}) == len(roles)


def test_connection_failures_become_retryable_aws_errors(
    aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: refused
    settings = aws.AwsSettings(max_attempts=1, connect_timeout=1)
    client = aws.ClientFactory(settings).client("ecs", REGION)
    with pytest.raises(aws.AwsError) as caught, aws.translated_errors("ListClusters"):
        client.list_clusters()
    assert caught.value.code == "EndpointConnectionError"
    assert caught.value.operation == "ListClusters"
    assert caught.value.retryable


def test_client_errors_keep_code_and_message(aws_env: str) -> None:
    calls: collections.Counter[str] = collections.Counter()
    client = aws.ClientFactory().client("ecs", REGION)
    client.meta.events.register("before-call", lambda model, **_: calls.update([model.name]))
    with pytest.raises(aws.AwsError) as caught, aws.translated_errors("DescribeServices"):
        client.describe_services(cluster="missing", services=["x"])
    assert (caught.value.code, caught.value.message) == (
        "ClusterNotFoundException",
        "Cluster not found.",
    )
    assert not caught.value.retryable
    assert calls["DescribeServices"] == 1  # not retried: it would not help


def test_parameter_errors_name_the_field_not_the_value() -> None:
    client = boto3.client(
        "ecs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    container = {"name": "api", "environment": [{"name": "TOKEN", "value": 987654321}]}
    with pytest.raises(aws.AwsError) as caught, aws.translated_errors("RegisterTaskDefinition"):
        client.register_task_definition(family="f", containerDefinitions=[container])
    assert caught.value.code == "ParamValidationError"
    assert "containerDefinitions[0].environment[0].value" in caught.value.message
    assert "987654321" not in str(caught.value)
