"""The SQS gateway against moto, and ECS's events read from queue messages.

``EventQueue`` is the only code that calls SQS; ``ecs_events.parse`` turns a
message body into an ``EcsEvent`` (never raising: a queue may hold anything).
Event bodies follow the ECS Developer Guide's examples (``ecs_cwe_events.html``).
"""

from __future__ import annotations

import collections
import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from ecsop.aws import clients as aws
from ecsop.aws import ecs_events, event_queue
from ecsop.aws.ecs_events import EventKind

REGION = "us-east-1"


@pytest.fixture
def queue_url(aws_env: str) -> str:
    sqs = boto3.client("sqs", region_name=REGION)
    dead = sqs.create_queue(QueueName="ecsop-events-dlq")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url: str = sqs.create_queue(
        QueueName="ecsop-events",
        Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 5}),
        },
    )["QueueUrl"]
    return url


def test_receive_delete_and_describe(
    factory: aws.ClientFactory, queue_url: str, calls: collections.Counter[str]
) -> None:
    queue = event_queue.open_queue(factory.client, queue_url, REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    for n in range(12):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"m{n}")

    info = queue.describe()
    assert info.arn.endswith(":ecsop-events")
    assert info.visibility_timeout == 60
    assert info.waiting == 12
    assert info.dead_letter_queue.endswith(":ecsop-events-dlq")

    first = queue.receive(wait_seconds=0)
    assert len(first.messages) == 10  # SQS's most per call
    assert first.at is not None and first.at.tzinfo is UTC
    second = queue.receive(wait_seconds=0)
    assert len(second.messages) == 2
    refused = queue.delete([m.receipt for m in first.messages + second.messages])
    assert refused == []
    assert queue.receive(wait_seconds=0).messages == ()
    assert calls["DeleteMessageBatch"] == 2  # 12 receipts, ten per call
    assert calls["GetQueueAttributes"] == 1


def test_an_unreachable_or_missing_queue_is_an_aws_error(
    factory: aws.ClientFactory, aws_env: str
) -> None:
    queue = event_queue.open_queue(
        factory.client, "https://sqs.us-east-1.amazonaws.com/123456789012/missing", REGION
    )
    with pytest.raises(aws.AwsError) as caught:
        queue.receive(wait_seconds=0)
    assert caught.value.operation == "ReceiveMessage"
    assert "NonExistentQueue" in caught.value.code or "QueueDoesNotExist" in caught.value.code


@pytest.mark.parametrize(
    ("url", "region"),
    [
        pytest.param("https://sqs.eu-west-1.amazonaws.com/1/q", "eu-west-1", id="regional"),
        pytest.param("https://eu-west-1.queue.amazonaws.com/1/q", "eu-west-1", id="legacy"),
        pytest.param("https://sqs.cn-north-1.amazonaws.com.cn/1/q", "cn-north-1", id="china"),
        pytest.param("http://127.0.0.1:4566/123456789012/q", None, id="local-endpoint"),
    ],
)
def test_the_queue_region_comes_from_its_url(url: str, region: str | None) -> None:
    assert event_queue.queue_region(url) == region


# --- ECS events -------------------------------------------------------------------------

ACCOUNT = "111122223333"
TASK = f"arn:aws:ecs:us-west-2:{ACCOUNT}:task/prod/c13b4cb40f1f4fe4a2971f76ae5a47ad"
SERVICE = f"arn:aws:ecs:us-west-2:{ACCOUNT}:service/prod/web"


def sample_event(kind: EventKind, **fields: Any) -> ecs_events.EcsEvent:
    """What the samples' envelope (id, time, account, region) reads as, with ``fields``."""
    return ecs_events.EcsEvent(
        kind,
        id="3317b2af-7005-947d-b652-f55e762e571a",
        time=datetime(2020, 1, 23, 17, 57, 58, tzinfo=UTC),
        account=ACCOUNT,
        region="us-west-2",
        **fields,
    )


def envelope(detail_type: str, resources: list[str], detail: dict[str, Any], **top: Any) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": "3317b2af-7005-947d-b652-f55e762e571a",
            "detail-type": detail_type,
            "source": "aws.ecs",
            "account": ACCOUNT,
            "time": "2020-01-23T17:57:58Z",
            "region": "us-west-2",
            "resources": resources,
            "detail": detail,
            **top,
        }
    )


STOPPED_TASK = {
    "clusterArn": f"arn:aws:ecs:us-west-2:{ACCOUNT}:cluster/prod",
    "group": "service:web",
    "startedBy": "ecs-svc/1234567890123456789",
    "lastStatus": "STOPPED",
    "desiredStatus": "STOPPED",
    "stopCode": "EssentialContainerExited",
    "stoppedReason": "Essential container in task exited",
    "containers": [{"name": "web", "exitCode": 1, "lastStatus": "STOPPED"}],
    "taskArn": TASK,
    "version": 5,
    "someFutureField": {"nested": True},
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            envelope("ECS Task State Change", [TASK], STOPPED_TASK),
            sample_event(
                EventKind.TASK,
                cluster="prod",
                service="web",
                deployment="ecs-svc/1234567890123456789",
                name="STOPPED/STOPPED",
                stopping=True,
                task=TASK,
                stop="EssentialContainerExited: Essential container in task exited; "
                "container web exit code 1",
            ),
            id="service-task-stopped",
        ),
        pytest.param(
            envelope(
                "ECS Task State Change",
                [TASK],
                {**STOPPED_TASK, "group": "family:migrate", "startedBy": "ci"},
                account=None,
            ),
            sample_event(
                EventKind.TASK,
                cluster="prod",
                deployment="ci",
                name="STOPPED/STOPPED",
                stopping=True,
                task=TASK,
                stop="EssentialContainerExited: Essential container in task exited; "
                "container web exit code 1",
            ),
            id="one-off-task-account-from-the-arn",
        ),
        pytest.param(
            envelope(
                "ECS Deployment State Change",
                [SERVICE],
                {
                    "eventType": "ERROR",
                    "eventName": "SERVICE_DEPLOYMENT_FAILED",
                    "deploymentId": "ecs-svc/123",
                    "updatedAt": "2020-05-23T11:11:11Z",
                    "reason": "ECS deployment circuit breaker: task failed to start.",
                },
            ),
            sample_event(
                EventKind.DEPLOYMENT,
                cluster="prod",
                service="web",
                deployment="ecs-svc/123",
                name="SERVICE_DEPLOYMENT_FAILED",
            ),
            id="deployment-failed",
        ),
        pytest.param(
            envelope(
                "ECS Service Action",
                [f"arn:aws:ecs:us-west-2:{ACCOUNT}:service/web"],
                {
                    "eventType": "INFO",
                    "eventName": "SERVICE_STEADY_STATE",
                    "clusterArn": f"arn:aws:ecs:us-west-2:{ACCOUNT}:cluster/prod",
                    "createdAt": "2019-11-19T19:27:22.695Z",
                },
            ),
            sample_event(
                EventKind.SERVICE_ACTION,
                cluster="prod",
                service="web",
                name="SERVICE_STEADY_STATE",
            ),
            id="steady-state-old-arn-format-cluster-from-detail",
        ),
        pytest.param(
            json.dumps({"source": "aws.ec2", "detail-type": "EC2 Instance", "detail": {}}),
            ecs_events.EcsEvent(EventKind.OTHER),
            id="another-source",
        ),
        pytest.param("not json", ecs_events.MALFORMED, id="not-json"),
        pytest.param("[1, 2]", ecs_events.MALFORMED, id="not-an-object"),
        pytest.param('{"source": "aws.ecs"}', ecs_events.MALFORMED, id="no-detail"),
        pytest.param(
            envelope("ECS Task State Change", "not a list", {"group": 7}, time="yesterday"),  # type: ignore[arg-type]
            ecs_events.EcsEvent(
                EventKind.TASK,
                id="3317b2af-7005-947d-b652-f55e762e571a",
                account=ACCOUNT,
                region="us-west-2",
                name="/",
            ),
            id="wrong-types-everywhere",
        ),
        pytest.param(
            envelope("ECS Deployment State Change", 5, {"eventName": "X"}),  # type: ignore[arg-type]
            sample_event(
                EventKind.DEPLOYMENT,
                name="X",
            ),
            id="resources-a-number",
        ),
        pytest.param("[" * 100_000 + "]" * 100_000, ecs_events.MALFORMED, id="nested-too-deep"),
    ],
)
def test_events_are_read_whatever_the_queue_holds(body: str, expected: ecs_events.EcsEvent) -> None:
    assert ecs_events.parse(body) == expected
