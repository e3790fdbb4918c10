"""The lease store against moto's DynamoDB: the conditional writes leases rely on.

``ecsop.aws.coordination.DynamoLeaseStore`` is what ``ecsop.runtime.shards``
runs on in production; here every write it makes is checked to succeed or to
refuse exactly as the lease protocol needs, through boto3 over HTTP.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from ecsop.aws import clients as aws
from ecsop.aws.coordination import DynamoLeaseStore, create_table

REGION = "us-east-1"


@pytest.fixture
def dynamodb(aws_env: str) -> Any:
    return boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def store(dynamodb: Any, factory: aws.ClientFactory) -> DynamoLeaseStore:
    assert create_table(dynamodb, "leases") == "created"
    client = factory.quick_client("dynamodb", REGION, timeout=2.0)
    return DynamoLeaseStore(client, "leases", lease_seconds=15.0, wall=lambda: 1000.0)


def test_create_table_is_idempotent_on_demand_with_ttl(
    dynamodb: Any, store: DynamoLeaseStore
) -> None:
    assert create_table(dynamodb, "leases") == "already exists"
    table = dynamodb.describe_table(TableName="leases")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    ttl = dynamodb.describe_time_to_live(TableName="leases")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}


def test_a_lease_is_taken_once_renewed_by_its_holder_only_and_released(
    store: DynamoLeaseStore,
) -> None:
    assert store.take(0, "a", 1, "v1", expected=None)
    assert not store.take(0, "b", 1, "v1b", expected=None), "exists: the create condition fails"
    assert not store.take(0, "b", 2, "v2b", expected="stale"), "version moved: refused"
    assert store.renew(0, "a", 1, "v2")
    assert not store.renew(0, "b", 1, "v3"), "not the holder"
    assert not store.renew(0, "a", 2, "v3"), "not the holder's token"
    (lease,) = store.read().leases
    assert (lease.shard, lease.holder, lease.token, lease.version) == (0, "a", 1, "v2")
    assert lease.expires_at == 1015.0
    assert store.take(0, "b", 2, "v3", expected="v2"), "unchanged since observed: taken"
    assert not store.release(0, "a", 1, "v4"), "a lost it: its release is refused"
    assert store.release(0, "b", 2, "v4")
    (lease,) = store.read().leases
    assert (lease.holder, lease.token, lease.version) == ("", 2, "v4"), "the token is kept"


def test_members_heartbeat_and_leave_and_the_shard_count_is_claimed_once(
    store: DynamoLeaseStore, dynamodb: Any
) -> None:
    store.beat("a", "b1", "http://a:9100", 8)
    store.beat("b", "b1", "http://b:9100", 4)
    store.beat("a", "b2", "http://a:9100", 8)
    store.leave("b")
    assert store.claim_shards(8) == 8
    assert store.claim_shards(4) == 8, "a replica with another count learns the table's"
    table = store.read()
    members = {m.member: (m.beat, m.url, m.gone, m.shards) for m in table.members}
    assert members == {
        "a": ("b2", "http://a:9100", False, 8),
        "b": ("b1", "http://b:9100", True, 4),
    }, "each member says its --shards: a replica of another count is waited for"
    assert table.shards == 8 and table.leases == ()
    item = dynamodb.get_item(TableName="leases", Key={"pk": {"S": "member#a"}})["Item"]
    assert int(item["ttl"]["N"]) == 1000 + 3600, "members expire by TTL; leases never do"


def test_the_store_uses_only_scan_and_update_item(store: DynamoLeaseStore, calls: Any) -> None:
    store.read()
    store.take(1, "a", 1, "v", expected=None)
    store.renew(1, "a", 1, "w")
    store.release(1, "a", 1, "x")
    store.beat("a", "b", "u", 2)
    store.leave("a")
    store.claim_shards(2)
    store.claim_shards(3)
    assert set(calls) == {"Scan", "UpdateItem"}, "the daemon's IAM policy allows exactly these"
