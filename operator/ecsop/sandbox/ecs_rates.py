"""ECS's API throttling rates: the ``faults: {preset: ecs-documented}`` table.

ECS throttles every API request per account and Region with token buckets, a
sustained (refill) rate and a burst (capacity) per *category* of actions:
"All API actions in a category share the same token bucket" ("Request
throttling for the Amazon ECS API", table "Request Token Bucket Sizes and
Refill Rates",
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html).
``CATEGORIES`` is that table, row for row, so ``DescribeServices`` and
``ListServices`` draw from one bucket of 100 refilled at 20 a second, as at
AWS. Two readings of the sandbox's own:

- ``RunTask``: AWS Fargate throttles it further, 20 calls per second burst and
  sustained ("AWS Fargate throttling quotas",
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html);
  the sandbox's tasks are Fargate's, so ``RunTask`` has that bucket of its own
  instead of the "cluster resource modify" row it shares at AWS.
- An ECS action the table does not list (``StopServiceDeployment``, ...): the
  strictest modify row (20, 1 a second), a bucket of its own.

The sandbox keeps its own copy rather than reading ecsop's
(``ecsop.aws.throttling``): it stands for AWS, and must not agree with the
client under test by construction.
"""

from __future__ import annotations

from ecsop.sandbox.token_bucket import Rate


def _row(burst: int, sustained: float, actions: str) -> tuple[Rate, tuple[str, ...]]:
    return Rate(refill_per_second=sustained, burst=burst), tuple(actions.split())


CATEGORIES: dict[str, tuple[Rate, tuple[str, ...]]] = {
    "cluster-modify": _row(
        20,
        1,
        "CreateCluster DeleteCluster PutClusterCapacityProviders UpdateCluster "
        "UpdateClusterSettings",
    ),
    "cluster-read": _row(50, 20, "DescribeClusters ListClusters"),
    "task-definition-modify": _row(20, 1, "DeregisterTaskDefinition RegisterTaskDefinition"),
    "task-definition-read": _row(
        50, 20, "DescribeTaskDefinition ListTaskDefinitions ListTaskDefinitionFamilies"
    ),
    "task-definition-delete": _row(5, 1, "DeleteTaskDefinitions"),
    "capacity-provider-modify": _row(
        10, 1, "CreateCapacityProvider DeleteCapacityProvider UpdateCapacityProvider"
    ),
    "capacity-provider-read": _row(50, 20, "DescribeCapacityProviders"),
    "tag-modify": _row(20, 10, "TagResource UntagResource"),
    "tag-read": _row(50, 20, "ListTagsForResource"),
    "setting-modify": _row(
        10, 1, "DeleteAccountSetting PutAccountSetting PutAccountSettingDefault"
    ),
    "setting-read": _row(50, 20, "ListAccountSettings"),
    "cluster-resource-modify": _row(
        100,
        40,
        "DeleteAttributes DeregisterContainerInstance ExecuteCommand PutAttributes StartTask "
        "StopTask UpdateContainerAgent UpdateContainerInstancesState",
    ),
    "fargate-run-task": _row(20, 20, "RunTask"),
    "cluster-resource-read": _row(
        100,
        20,
        "DescribeContainerInstances DescribeTasks ListAttributes ListContainerInstances ListTasks",
    ),
    "agent-modify": _row(
        200,
        120,
        "RegisterContainerInstance SubmitAttachmentStateChanges SubmitContainerStateChange "
        "SubmitTaskStateChange",
    ),
    "service-modify": _row(50, 5, "CreateService DeleteService UpdateService"),
    "service-read": _row(100, 20, "DescribeServices ListServices"),
    "service-deployment": _row(50, 20, "DescribeServiceDeployments ListServiceDeployments"),
    "service-revision": _row(50, 20, "DescribeServiceRevisions"),
    "task-protection": _row(200, 80, "UpdateTaskProtection GetTaskProtection"),
    "cluster-service-resource-read": _row(10, 1, "ListServicesByNamespace"),
}
"""Category -> (its bucket's rate, the actions sharing it)."""

UNLISTED = Rate(refill_per_second=1, burst=20)
"""An ECS action the table does not name: the strictest modify row."""

_CATEGORY_OF = {action: name for name, (_, actions) in CATEGORIES.items() for action in actions}


def bucket(operation: str) -> tuple[str, Rate]:
    """The bucket an ECS ``operation`` draws from: (its name, its rate)."""
    category = _CATEGORY_OF.get(operation)
    if category is None:
        return operation, UNLISTED
    return category, CATEGORIES[category][0]


def rate(operation: str) -> Rate:
    """The preset's rate for an ECS ``operation``."""
    return bucket(operation)[1]
