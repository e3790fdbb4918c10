"""ECS's API throttling rates: the ``faults: {preset: ecs-documented}`` table.

ECS throttles every API request per account and Region with token buckets, a
sustained (refill) rate and a burst (capacity) per action ("Request throttling
for the Amazon ECS API",
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html).
Each row below says where its numbers come from:

- ``DescribeClusters``: the page's own example, a bucket of 50 refilled at 20
  per second ("cluster read actions").
- ``RegisterTaskDefinition``: 20 burst, 1 per second sustained, as the page
  gives it (quoted in aws-actions/amazon-ecs-deploy-task-definition#502).
- ``RunTask``: 20 calls per second, burst and sustained, Fargate's separate
  RunTask quota ("AWS Fargate throttling quotas",
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html),
  the stricter of the two that apply to Fargate tasks.
- ``DescribeTasks``: about 20 per second, shared with
  ``DescribeContainerInstances`` (aws-solutions/workload-discovery-on-aws#355,
  citing the page); burst as the other read actions.
- Every other ``Describe*``, ``List*`` and ``Get*`` action: the cluster-read
  rates (50, 20/s); every other action: the task-definition-register rates
  (20, 1/s).  These two are the sandbox's reading, not numbers the page gives
  for those actions (the stored copy of its table could not be read): the
  stricter documented row of each kind.  Correct a row here when the page says
  otherwise; ``faults.operations`` overrides any row per scenario.

Each action has its own bucket (the page states quotas per action); the preset
throttles ECS calls only.
"""

from __future__ import annotations

from ecsop.sandbox.token_bucket import Rate

READ = Rate(refill_per_second=20, burst=50)
"""Cluster read actions (DescribeClusters), the page's example."""
MODIFY = Rate(refill_per_second=1, burst=20)
"""RegisterTaskDefinition, as the page gives it."""

DOCUMENTED: dict[str, Rate] = {
    "DescribeClusters": READ,
    "RegisterTaskDefinition": MODIFY,
    "RunTask": Rate(refill_per_second=20, burst=20),
    "DescribeTasks": Rate(refill_per_second=20, burst=50),
}
"""Rows with a published source (see the module docstring)."""


def rate(operation: str) -> Rate:
    """The preset's rate for an ECS ``operation`` (a documented row, else its kind's)."""
    found = DOCUMENTED.get(operation)
    if found is not None:
        return found
    return READ if operation.startswith(("Describe", "List", "Get")) else MODIFY
