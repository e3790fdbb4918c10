"""The API budget and the timestamp parser on real botocore clients, against moto over HTTP.

Every client the factory makes waits for its budget before each HTTP attempt
(botocore's ``before-send``), whichever code calls it; and every session
parses AWS's timestamps straight to UTC (botocore's parser factory).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from ecsop.aws import clients as aws
from ecsop.aws import timestamps
from ecsop.aws.budget import BudgetSettings, CallBudget

REGION = "us-east-1"
ROLE = "arn:aws:iam::210987654321:role/ecsop-deployer"


class Recorded:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[tuple[str, str, float]] = []

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def paced_factory(share: float) -> tuple[aws.ClientFactory, Recorded]:
    seen = Recorded()
    budget = CallBudget(
        BudgetSettings(share=share),
        monotonic=lambda: seen.now,
        sleep=seen.sleep,
        on_wait=lambda service, operation, seconds: seen.waits.append(
            (service, operation, seconds)
        ),
    )
    return aws.ClientFactory(budget=budget), seen


def test_every_attempt_of_every_client_waits_for_its_budget(aws_env: str) -> None:
    # A share of 0.05 of ECS's service-read bucket: 5 at once, then 1 a second.
    factory, seen = paced_factory(share=0.05)
    ecs = factory.client("ecs", REGION)
    ecs.create_cluster(clusterName="prod")
    for _ in range(8):
        ecs.describe_services(cluster="prod", services=["api"])
    waited = [w for w in seen.waits if w[1] == "DescribeServices"]
    assert len(waited) == 3
    assert seen.now == pytest.approx(3.0)
    # Another client of the same account and region spends the same budget...
    factory.client("ecs", REGION, retries=False).list_services(cluster="prod")
    assert seen.waits[-1][1] == "ListServices"
    # ...another account (a role) its own.
    other = factory.client("ecs", REGION, ROLE)
    other.create_cluster(clusterName="prod")
    before = len(seen.waits)
    other.describe_services(cluster="prod", services=["api"])
    assert len(seen.waits) == before


def test_without_a_budget_nothing_waits(aws_env: str) -> None:
    factory, seen = paced_factory(share=0)
    ecs = factory.client("ecs", REGION)
    ecs.create_cluster(clusterName="prod")
    for _ in range(30):
        ecs.describe_clusters(clusters=["prod"])
    assert seen.waits == [] and seen.now == 0


def test_the_events_queue_and_the_lease_table_are_never_paced(aws_env: str) -> None:
    """SQS and DynamoDB meter no request rate per account: a lease renewal never waits for a
    token, even with a budget so small that every ECS call does; the fence still runs on the
    queue's client (the lease table's is the fence's own machinery: never fenced)."""
    seen = Recorded()
    fenced: list[str] = []
    budget = CallBudget(
        BudgetSettings(share=0.01),
        monotonic=lambda: seen.now,
        sleep=seen.sleep,
        on_wait=lambda service, operation, seconds: seen.waits.append(
            (service, operation, seconds)
        ),
    )
    factory = aws.ClientFactory(budget=budget, before_attempt=lambda: fenced.append("x"))
    sqs = factory.client("sqs", REGION)
    url = sqs.create_queue(QueueName="ecsop-events")["QueueUrl"]
    for _ in range(30):
        sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    leases = factory.quick_client("dynamodb", REGION, timeout=2.0)
    for _ in range(30):
        leases.list_tables()
    assert seen.waits == [] and seen.now == 0
    assert len(fenced) == 31  # CreateQueue and the 30 receives
    ecs = factory.client("ecs", REGION)
    for _ in range(3):
        ecs.list_clusters()
    assert [op for _, op, _ in seen.waits] == ["ListClusters", "ListClusters"]


def created_at(client: Any) -> datetime:
    found = client.describe_services(cluster="prod", services=["api"])["services"][0]
    moment: datetime = found["deployments"][0]["createdAt"]
    return moment


def test_the_factorys_clients_parse_timestamps_to_utc(aws_env: str) -> None:
    setup = boto3.client("ecs", region_name=REGION)
    setup.create_cluster(clusterName="prod")
    setup.register_task_definition(
        family="api", containerDefinitions=[{"name": "app", "image": "nginx", "memory": 128}]
    )
    setup.create_service(cluster="prod", serviceName="api", taskDefinition="api", desiredCount=0)
    ours = created_at(aws.ClientFactory().client("ecs", REGION))
    stock = created_at(setup)
    assert ours.tzinfo is UTC
    assert stock.tzinfo is not UTC  # botocore's own: the local zone, rebuilt every call
    assert ours == stock


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(1764480000, datetime(2025, 11, 30, 5, 20, tzinfo=UTC), id="epoch-int"),
        pytest.param(
            1764480000.5, datetime(2025, 11, 30, 5, 20, 0, 500000, tzinfo=UTC), id="epoch-float"
        ),
        pytest.param("1764480000", datetime(2025, 11, 30, 5, 20, tzinfo=UTC), id="epoch-string"),
        pytest.param(
            "2025-11-30T05:20:00.250Z",
            datetime(2025, 11, 30, 5, 20, 0, 250000, tzinfo=UTC),
            id="iso-z",
        ),
        pytest.param(
            "2025-11-30T07:20:00+02:00", datetime(2025, 11, 30, 5, 20, tzinfo=UTC), id="iso-offset"
        ),
        pytest.param("2025-11-30T05:20:00", datetime(2025, 11, 30, 5, 20, tzinfo=UTC), id="naive"),
        pytest.param(
            "Sun, 30 Nov 2025 05:20:00 GMT", datetime(2025, 11, 30, 5, 20, tzinfo=UTC), id="rfc822"
        ),
    ],
)
def test_every_timestamp_form_aws_sends_is_the_same_instant(value: Any, expected: datetime) -> None:
    parsed = timestamps.parse(value)
    assert parsed == expected
    assert parsed.utcoffset() is not None


class Lost(Exception):
    pass


def test_a_shard_lost_while_a_call_waits_for_its_token_stops_that_call(aws_env: str) -> None:
    """The budget's wait comes before the fence: a write that waited seconds for its token
    is not sent by a replica that lost the release meanwhile."""
    lost = [False]
    sent: list[str] = []

    def fence() -> None:
        if lost[0]:
            raise Lost("shard 3 lost")

    def sleep(seconds: float) -> None:
        lost[0] = True  # the lease expired while this call waited

    budget = CallBudget(BudgetSettings(share=0.05), monotonic=lambda: 0.0, sleep=sleep)
    factory = aws.ClientFactory(budget=budget, before_attempt=fence)
    ecs = factory.client("ecs", REGION)
    ecs.meta.events.register("before-send", lambda **_: sent.append("sent"))
    ecs.create_cluster(clusterName="prod")  # cluster-modify: a burst of one at this share
    assert sent == ["sent"]
    with pytest.raises(Lost):
        ecs.create_cluster(clusterName="again")  # waits for a token, then the fence says no
    assert sent == ["sent"]
    assert [
        c["clusterName"]
        for c in boto3.client("ecs", region_name=REGION).describe_clusters(
            clusters=["prod", "again"]
        )["clusters"]
    ] == ["prod"]
