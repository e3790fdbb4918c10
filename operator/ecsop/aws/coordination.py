"""The coordination table in DynamoDB: shard leases and replica membership, by conditional writes.

Implements ``ecsop.runtime.lease.LeaseStore`` (structurally: this layer does
not import the runtime). One table, partition key ``pk`` (string), on-demand
capacity, TTL on ``ttl``. Items:

- ``lease#<shard>``: ``holder`` (replica id, "" once released), ``token`` (the
  fencing token, +1 per take), ``version`` (new on every write), and, for
  people reading the table, ``renewedAt`` / ``expiresAt`` (epoch seconds of the
  writer's clock; never used to decide anything). No ``ttl``: a lease item
  must never vanish, or its token would start again at 1.
- ``member#<replica>``: ``beat`` (new on every heartbeat), ``url``, ``gone``
  (left cleanly), ``shards`` (its ``--shards``), ``heartbeatAt``, and ``ttl``
  an hour ahead, so DynamoDB deletes the items of replicas long gone.
- ``config``: ``shards``, the shard count the first replica recorded.

Every call is UpdateItem or one consistent Scan: the daemon's IAM policy needs
``dynamodb:Scan`` and ``dynamodb:UpdateItem`` on this one table, nothing else.
``create_table`` (``ecsop coordination create-table``) is run by whoever sets
the table up, with their own permissions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecsop.aws.clients import translated_errors

KEY = "pk"
TTL_ATTRIBUTE = "ttl"
MEMBER_TTL_SECONDS = 3600
"""How long after its last heartbeat a replica's item may be deleted by DynamoDB's TTL."""
CONDITION_FAILED = "ConditionalCheckFailedException"


@dataclass(frozen=True)
class LeaseItem:
    shard: int
    holder: str
    token: int
    version: str
    renewed_at: float = 0.0
    expires_at: float = 0.0


@dataclass(frozen=True)
class MemberItem:
    member: str
    beat: str
    url: str
    gone: bool
    heartbeat_at: float = 0.0
    shards: int = 0
    """The replica's ``--shards``; 0 from a replica of an earlier version."""


@dataclass(frozen=True)
class TableItems:
    leases: tuple[LeaseItem, ...]
    members: tuple[MemberItem, ...]
    shards: int | None


def lease_key(shard: int) -> str:
    return f"lease#{shard}"


def member_key(member: str) -> str:
    return f"member#{member}"


CONFIG_KEY = "config"


class DynamoLeaseStore:
    """Leases and membership in one DynamoDB table, through one client."""

    def __init__(
        self,
        client: Any,
        table: str,
        lease_seconds: float,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.table = table
        self._lease_seconds = lease_seconds
        self._wall = wall

    def read(self) -> TableItems:
        leases: list[LeaseItem] = []
        members: list[MemberItem] = []
        shards: int | None = None
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
            if start:
                kwargs["ExclusiveStartKey"] = start
            with translated_errors("Scan"):
                page = self._client.scan(**kwargs)
            for item in page.get("Items", []):
                key = _s(item, KEY)
                if key.startswith("lease#"):
                    leases.append(
                        LeaseItem(
                            shard=_n(item, "shard"),
                            holder=_s(item, "holder"),
                            token=_n(item, "token"),
                            version=_s(item, "version"),
                            renewed_at=float(_n(item, "renewedAt")),
                            expires_at=float(_n(item, "expiresAt")),
                        )
                    )
                elif key.startswith("member#"):
                    members.append(
                        MemberItem(
                            member=_s(item, "member"),
                            beat=_s(item, "beat"),
                            url=_s(item, "url"),
                            gone=bool(item.get("gone", {}).get("BOOL", False)),
                            heartbeat_at=float(_n(item, "heartbeatAt")),
                            shards=_n(item, "shards"),
                        )
                    )
                elif key == CONFIG_KEY:
                    shards = _n(item, "shards")
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        return TableItems(tuple(leases), tuple(members), shards)

    def take(self, shard: int, holder: str, token: int, version: str, expected: str | None) -> bool:
        condition = "attribute_not_exists(#pk)" if expected is None else "#version = :expected"
        values: dict[str, Any] = {":token": _num(token), ":shard": _num(shard)}
        if expected is not None:
            values[":expected"] = {"S": expected}
        return self._lease_write(
            shard,
            holder,
            version,
            "SET #holder = :holder, #token = :token, #shard = :shard, "
            "#version = :version, #renewed = :now, #expires = :expires",
            condition,
            values,
        )

    def renew(self, shard: int, holder: str, token: int, version: str) -> bool:
        return self._lease_write(
            shard,
            holder,
            version,
            "SET #version = :version, #renewed = :now, #expires = :expires",
            "#holder = :holder AND #token = :token",
            {":token": _num(token)},
        )

    def release(self, shard: int, holder: str, token: int, version: str) -> bool:
        return self._lease_write(
            shard,
            holder,
            version,
            "SET #holder = :empty, #version = :version, #renewed = :now, #expires = :now",
            "#holder = :holder AND #token = :token",
            {":token": _num(token), ":empty": {"S": ""}},
        )

    def beat(self, member: str, beat: str, url: str, shards: int) -> None:
        now = self._wall()
        with translated_errors("UpdateItem"):
            self._client.update_item(
                TableName=self.table,
                Key={KEY: {"S": member_key(member)}},
                UpdateExpression="SET #member = :member, #beat = :beat, #url = :url, "
                "#gone = :false, #shards = :shards, #at = :now, #ttl = :ttl",
                ExpressionAttributeNames={
                    "#member": "member",
                    "#beat": "beat",
                    "#url": "url",
                    "#gone": "gone",
                    "#shards": "shards",
                    "#at": "heartbeatAt",
                    "#ttl": TTL_ATTRIBUTE,
                },
                ExpressionAttributeValues={
                    ":member": {"S": member},
                    ":beat": {"S": beat},
                    ":url": {"S": url},
                    ":false": {"BOOL": False},
                    ":shards": _num(shards),
                    ":now": _num(now),
                    ":ttl": _num(int(now) + MEMBER_TTL_SECONDS),
                },
            )

    def leave(self, member: str) -> None:
        with translated_errors("UpdateItem"):
            self._client.update_item(
                TableName=self.table,
                Key={KEY: {"S": member_key(member)}},
                UpdateExpression="SET #gone = :true",
                ExpressionAttributeNames={"#gone": "gone"},
                ExpressionAttributeValues={":true": {"BOOL": True}},
            )

    def claim_shards(self, shards: int) -> int:
        try:
            with translated_errors("UpdateItem"):
                self._client.update_item(
                    TableName=self.table,
                    Key={KEY: {"S": CONFIG_KEY}},
                    UpdateExpression="SET #shards = :shards",
                    ConditionExpression="attribute_not_exists(#pk)",
                    ExpressionAttributeNames={"#shards": "shards", "#pk": KEY},
                    ExpressionAttributeValues={":shards": _num(shards)},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except Exception as exc:
            item = _condition_failed_item(exc)
            if item is None:
                raise
            return _n(item, "shards")
        return shards

    def _lease_write(
        self,
        shard: int,
        holder: str,
        version: str,
        update: str,
        condition: str,
        values: dict[str, Any],
    ) -> bool:
        now = self._wall()
        names = {
            "#pk": KEY,
            "#holder": "holder",
            "#token": "token",
            "#shard": "shard",
            "#version": "version",
            "#renewed": "renewedAt",
            "#expires": "expiresAt",
        }
        values = {
            ":holder": {"S": holder},
            ":version": {"S": version},
            ":now": _num(now),
            ":expires": _num(now + self._lease_seconds),
            **values,
        }
        used = {k: v for k, v in names.items() if k in update or k in condition}
        wanted = {k: v for k, v in values.items() if k in update or k in condition}
        try:
            with translated_errors("UpdateItem"):
                self._client.update_item(
                    TableName=self.table,
                    Key={KEY: {"S": lease_key(shard)}},
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=used,
                    ExpressionAttributeValues=wanted,
                )
        except Exception as exc:
            if getattr(exc, "code", "") == CONDITION_FAILED:
                return False
            raise
        return True


def create_table(client: Any, table: str) -> str:
    """Create the coordination table (on-demand, TTL on ``ttl``) if absent; say what was done."""
    created = True
    try:
        with translated_errors("CreateTable"):
            client.create_table(
                TableName=table,
                AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
                Tags=[{"Key": "ecsop:purpose", "Value": "coordination"}],
            )
    except Exception as exc:
        if getattr(exc, "code", "") != "ResourceInUseException":
            raise
        created = False
    with translated_errors("DescribeTable"):
        client.get_waiter("table_exists").wait(
            TableName=table, WaiterConfig={"Delay": 2, "MaxAttempts": 60}
        )
    with translated_errors("DescribeTimeToLive"):
        ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        with translated_errors("UpdateTimeToLive"):
            client.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )
    return "created" if created else "already exists"


def _condition_failed_item(exc: Exception) -> dict[str, Any] | None:
    if getattr(exc, "code", "") != CONDITION_FAILED:
        return None
    cause = exc.__cause__
    response = getattr(cause, "response", None) or {}
    item = response.get("Item")
    return item if isinstance(item, dict) else {}


def _s(item: dict[str, Any], name: str) -> str:
    return str(item.get(name, {}).get("S", ""))


def _n(item: dict[str, Any], name: str) -> int:
    raw = item.get(name, {}).get("N")
    return int(float(raw)) if raw is not None else 0


def _num(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}
