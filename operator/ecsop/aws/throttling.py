"""AWS's documented API throttling rates: which token bucket each call draws from.

AWS throttles every API request per account and Region with token buckets: a
capacity (the burst rate) and a refill rate (the sustained rate). ECS groups
its actions into categories that share one bucket ("All API actions in a
category share the same token bucket", "Request throttling for the Amazon ECS
API", table "Request Token Bucket Sizes and Refill Rates",
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html);
``ECS_CATEGORIES`` is that table, row for row. Elsewhere:

- ELB (API version 2): non-mutating actions (``Describe*``) share a bucket of
  40 refilled at 10 per second ("Request throttling for the ELB API",
  https://docs.aws.amazon.com/elasticloadbalancing/latest/userguide/elb-api-throttling.html).
- CloudWatch: ``DescribeAlarms`` 9 per second, ``GetMetricData`` 500 per second
  ("CloudWatch service quotas",
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html);
  a quota per second is taken as a bucket of that many, refilled as fast.
- SQS and DynamoDB (the events queue, the replicas' lease table): not
  metered by a shared per-action bucket at all. "Standard queues support a
  nearly unlimited number of API calls per second, per API action"
  (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/DistributedQueues.html);
  DynamoDB's data plane is throttled by the table's own capacity, not by an
  account-wide request rate ("3- Account limits exceeded",
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/throttling-account-limit-exceeded-mitigation.html),
  and a lease renewal that waited for a token could arrive after its lease
  expired. ``metered`` says so: the budget lets their calls through unpaced.
- Any other action: ``UNPUBLISHED``, ecsop's own cautious assumption (AWS
  publishes no number for it; ecsop makes such calls rarely: STS, one-offs).

Used by ``ecsop.aws.budget``, which gives ecsop a share of each bucket.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    sustained: float
    """Tokens added per second (the bucket's refill rate)."""
    burst: float
    """The bucket's capacity: calls allowed at once from a full bucket."""

    def scaled(self, share: float) -> Rate:
        """``share`` of this rate, at least one call of burst."""
        return Rate(self.sustained * share, max(1.0, self.burst * share))


@dataclass(frozen=True)
class Bucket:
    """One token bucket of AWS's: the actions sharing it and its rate."""

    name: str
    """``service:category``, e.g. ``ecs:service-read``."""
    rate: Rate


def _ecs(name: str, burst: float, sustained: float, actions: str) -> tuple[Bucket, tuple[str, ...]]:
    return Bucket(f"ecs:{name}", Rate(sustained, burst)), tuple(actions.split())


ECS_CATEGORIES: tuple[tuple[Bucket, tuple[str, ...]], ...] = (
    _ecs(
        "cluster-modify",
        20,
        1,
        "CreateCluster DeleteCluster PutClusterCapacityProviders UpdateCluster "
        "UpdateClusterSettings",
    ),
    _ecs("cluster-read", 50, 20, "DescribeClusters ListClusters"),
    _ecs("task-definition-modify", 20, 1, "DeregisterTaskDefinition RegisterTaskDefinition"),
    _ecs(
        "task-definition-read",
        50,
        20,
        "DescribeTaskDefinition ListTaskDefinitions ListTaskDefinitionFamilies",
    ),
    _ecs("task-definition-delete", 5, 1, "DeleteTaskDefinitions"),
    _ecs(
        "capacity-provider-modify",
        10,
        1,
        "CreateCapacityProvider DeleteCapacityProvider UpdateCapacityProvider",
    ),
    _ecs("capacity-provider-read", 50, 20, "DescribeCapacityProviders"),
    _ecs("tag-modify", 20, 10, "TagResource UntagResource"),
    _ecs("tag-read", 50, 20, "ListTagsForResource"),
    _ecs(
        "setting-modify",
        10,
        1,
        "DeleteAccountSetting PutAccountSetting PutAccountSettingDefault",
    ),
    _ecs("setting-read", 50, 20, "ListAccountSettings"),
    # The page spells the last one "UpdateContainerInstancesStates"; the API's name is this.
    _ecs(
        "cluster-resource-modify",
        100,
        40,
        "DeleteAttributes DeregisterContainerInstance ExecuteCommand PutAttributes RunTask "
        "StartTask StopTask UpdateContainerAgent UpdateContainerInstancesState",
    ),
    _ecs(
        "cluster-resource-read",
        100,
        20,
        "DescribeContainerInstances DescribeTasks ListAttributes ListContainerInstances ListTasks",
    ),
    _ecs(
        "agent-modify",
        200,
        120,
        "RegisterContainerInstance SubmitAttachmentStateChanges SubmitContainerStateChange "
        "SubmitTaskStateChange",
    ),
    _ecs("service-modify", 50, 5, "CreateService DeleteService UpdateService"),
    _ecs("service-read", 100, 20, "DescribeServices ListServices"),
    _ecs("service-deployment", 50, 20, "DescribeServiceDeployments ListServiceDeployments"),
    _ecs("service-revision", 50, 20, "DescribeServiceRevisions"),
    _ecs("task-protection", 200, 80, "UpdateTaskProtection GetTaskProtection"),
    _ecs("cluster-service-resource-read", 10, 1, "ListServicesByNamespace"),
)
"""ECS's table: (bucket, the actions sharing it)."""

ECS_UNLISTED = Bucket("ecs:unlisted", Rate(1, 20))
"""ECS actions the table does not list (StopServiceDeployment, ...): the strictest
modify row's rate, each action its own bucket (``unlisted_bucket``)."""
ELB_DESCRIBE = Bucket("elasticloadbalancing:non-mutating", Rate(10, 40))
CLOUDWATCH: dict[str, Bucket] = {
    "DescribeAlarms": Bucket("monitoring:DescribeAlarms", Rate(9, 9)),
    "GetMetricData": Bucket("monitoring:GetMetricData", Rate(500, 500)),
}
UNPUBLISHED = Rate(10, 20)
"""ecsop's assumption for an action AWS publishes no rate for (per action)."""

_ECS: dict[str, Bucket] = {
    action: bucket for bucket, actions in ECS_CATEGORIES for action in actions
}


UNMETERED_SERVICES = frozenset({"sqs", "dynamodb"})
"""botocore endpoint prefixes whose calls draw from no per-account API bucket."""


def metered(service: str) -> bool:
    """Whether AWS throttles ``service``'s calls per account and Region by request rate."""
    return service not in UNMETERED_SERVICES


def bucket_of(service: str, operation: str) -> Bucket:
    """The bucket a call of ``operation`` draws from; ``service`` is botocore's endpoint
    prefix (``ecs``, ``elasticloadbalancing``, ``monitoring``, ``sts``)."""
    if service == "ecs":
        return _ECS.get(operation) or unlisted_bucket(service, operation, ECS_UNLISTED.rate)
    if service == "elasticloadbalancing" and operation.startswith("Describe"):
        return ELB_DESCRIBE
    if service == "monitoring" and operation in CLOUDWATCH:
        return CLOUDWATCH[operation]
    return unlisted_bucket(service, operation, UNPUBLISHED)


def unlisted_bucket(service: str, operation: str, rate: Rate) -> Bucket:
    return Bucket(f"{service}:{operation}", rate)
