"""DynamoDB, SQS and EventBridge on the sandbox's one endpoint (moto behind it).

The sandbox answers ECS itself and passes every other call to moto's server, so
the operator's locks (DynamoDB conditional writes), queues and event rules work
against the same endpoint, counted in the call log like any call.
Conditional writes fail with ``ConditionalCheckFailedException``
(API_PutItem / API_UpdateItem, Amazon DynamoDB API Reference).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from sandbox_harness import Harness

pytestmark = pytest.mark.sandbox


def client(sb: Harness, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=sb.server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def counted(sb: Harness) -> set[tuple[str, str]]:
    rows = requests.get(f"{sb.server.endpoint_url}/_sandbox/calls", timeout=5).json()["calls"]
    return {(r["service"], r["operation"]) for r in rows}


def test_dynamodb_conditional_writes_and_ttl(sandbox: Harness) -> None:
    db = client(sandbox, "dynamodb")
    db.create_table(
        TableName="ecsop-locks",
        AttributeDefinitions=[{"AttributeName": "lockName", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "lockName", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    db.update_time_to_live(
        TableName="ecsop-locks",
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"},
    )
    ttl = db.describe_time_to_live(TableName="ecsop-locks")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}

    item = {"lockName": {"S": "shop"}, "owner": {"S": "a"}, "lockVersion": {"N": "1"}}
    db.put_item(
        TableName="ecsop-locks", Item=item, ConditionExpression="attribute_not_exists(lockName)"
    )
    with pytest.raises(ClientError) as caught:
        db.put_item(
            TableName="ecsop-locks",
            Item={**item, "owner": {"S": "b"}},
            ConditionExpression="attribute_not_exists(lockName)",
        )
    assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"

    def bump(expected: str) -> None:
        db.update_item(
            TableName="ecsop-locks",
            Key={"lockName": {"S": "shop"}},
            UpdateExpression="SET lockVersion = lockVersion + :one",
            ConditionExpression="lockVersion = :expected",
            ExpressionAttributeValues={":one": {"N": "1"}, ":expected": {"N": expected}},
        )

    bump("1")
    with pytest.raises(ClientError) as stale:
        bump("1")
    assert stale.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    got = db.get_item(TableName="ecsop-locks", Key={"lockName": {"S": "shop"}})["Item"]
    assert got["owner"] == {"S": "a"}
    assert got["lockVersion"] == {"N": "2"}
    assert ("dynamodb", "PutItem") in counted(sandbox)


def test_eventbridge_rules_deliver_to_sqs(sandbox: Harness) -> None:
    sqs = client(sandbox, "sqs")
    events = client(sandbox, "events")
    queue_url = sqs.create_queue(QueueName="ecsop-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="ecs-task-stopped",
        EventPattern=json.dumps({"source": ["ecsop.test"], "detail-type": ["Task Stopped"]}),
    )
    events.put_targets(Rule="ecs-task-stopped", Targets=[{"Id": "queue", "Arn": queue_arn}])
    sent = events.put_events(
        Entries=[
            {
                "Source": "ecsop.test",
                "DetailType": "Task Stopped",
                "Detail": json.dumps({"taskArn": "arn:x"}),
            },
            {"Source": "other", "DetailType": "Task Stopped", "Detail": "{}"},
        ]
    )
    assert sent["FailedEntryCount"] == 0
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)[
        "Messages"
    ]
    assert [json.loads(m["Body"])["detail"] for m in messages] == [{"taskArn": "arn:x"}]

    sqs.send_message(QueueUrl=queue_url, MessageBody="direct")
    (direct,) = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    assert direct["Body"] == "direct"
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=direct["ReceiptHandle"])
    assert {("sqs", "SendMessage"), ("events", "PutEvents")} <= counted(sandbox)
