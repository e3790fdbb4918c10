"""The task definition cache never thrashes in steady state (issue 22, #2).

Task definition revisions are immutable, so a steady resync should describe
none: every release's running revision and last-good stay cached. With a fixed
LRU of 4,096, 5,000 releases in 5,000 families described all 5,000 again at
every resync; the pool is now sized from the releases it serves (``fit_cache``,
called by the manager at every reload).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from tests.builders import td_arn

from ecsop.aws.ecs import GatewayPool


class _Meta:
    method_to_api_mapping: dict[str, str] = {}


class FakeEcsClient:
    """Answers DescribeTaskDefinition for any revision and counts the calls."""

    meta = _Meta()

    def __init__(self, calls: Counter[str]) -> None:
        self._calls = calls

    def describe_task_definition(self, taskDefinition: str, **_: Any) -> dict[str, Any]:
        self._calls["DescribeTaskDefinition"] += 1
        family, revision = taskDefinition.rsplit("/", 1)[1].rsplit(":", 1)
        return {
            "taskDefinition": {
                "taskDefinitionArn": taskDefinition,
                "family": family,
                "revision": int(revision),
                "containerDefinitions": [{"name": "app", "image": f"{family}:{revision}"}],
            },
            "tags": [],
        }


class FakeClients:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def client(self, service: str, region: str, role: str | None, **_: Any) -> FakeEcsClient:
        return FakeEcsClient(self.calls)


def _resync(pool: GatewayPool, releases: int) -> int:
    """Read what a steady resync reads of each release (its revision and its last-good);
    return the DescribeTaskDefinition calls it made."""
    clients: FakeClients = pool._clients  # type: ignore[assignment]
    before = clients.calls["DescribeTaskDefinition"]
    gateway = pool.ecs("us-east-1", None)
    for index in range(releases):
        gateway.revisions.get(td_arn(f"fleet-svc-{index:05d}", 2))
        gateway.revisions.get(td_arn(f"fleet-svc-{index:05d}", 1))
    return clients.calls["DescribeTaskDefinition"] - before


@pytest.mark.parametrize("releases", [1_000, 2_500, 5_000, 10_000])
@pytest.mark.parametrize("fitted_before_first_gateway", [True, False])
def test_a_steady_resync_describes_no_task_definition(
    releases: int, fitted_before_first_gateway: bool
) -> None:
    pool = GatewayPool(FakeClients())  # type: ignore[arg-type]
    if fitted_before_first_gateway:
        pool.fit_cache(releases)
    else:
        pool.ecs("us-east-1", None)  # a gateway made before the specs were loaded
        pool.fit_cache(releases)
    assert _resync(pool, releases) == 2 * releases  # the first pass reads each once
    assert _resync(pool, releases) == 0
    assert _resync(pool, releases) == 0


def test_unfitted_the_default_cache_thrashes_past_its_size() -> None:
    """The regression the sizing prevents: 2,500 releases read 5,000 revisions."""
    pool = GatewayPool(FakeClients())  # type: ignore[arg-type]
    _resync(pool, 2_500)
    assert _resync(pool, 2_500) == 5_000
