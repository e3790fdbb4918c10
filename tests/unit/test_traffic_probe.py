"""Which of green's target groups a shift's ``Traffic`` names (``probes.traffic``)."""

from __future__ import annotations

import pytest

from ecsop.decision.ecs_state import LoadBalancer
from ecsop.probes.traffic import first_balancers

TG = "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/{}/0123456789abcdef"
WEB = LoadBalancer(TG.format("web-a"), "web", 80, alternate_target_group_arn=TG.format("web-b"))
ADMIN = LoadBalancer(TG.format("adm-a"), "web", 81, alternate_target_group_arn=TG.format("adm-b"))


@pytest.mark.parametrize(
    ("green", "balancers", "named"),
    [
        pytest.param({TG.format("web-b"), TG.format("adm-b")}, [WEB, ADMIN], "web-b", id="two-lbs"),
        pytest.param(
            {TG.format("adm-a"), TG.format("web-a")}, [WEB, ADMIN], "web-a", id="other-way"
        ),
        pytest.param({TG.format("zz"), TG.format("aa")}, [WEB], "aa", id="none-of-the-pair"),
        pytest.param({TG.format("web-b")}, [], "web-b", id="no-balancer-known"),
    ],
)
def test_green_is_named_by_the_first_load_balancer_whatever_the_hash_order(
    green: set[str], balancers: list[LoadBalancer], named: str
) -> None:
    """With two load balancers green has two target groups; the first balancer's is the one
    ``{{targetGroup}}`` means, in every process (a set's order changes with PYTHONHASHSEED)."""
    assert first_balancers(green, balancers) == TG.format(named)


def test_no_green_names_none() -> None:
    assert first_balancers(set(), [WEB]) == ""
