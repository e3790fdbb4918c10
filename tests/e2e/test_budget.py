"""The daemon within ECS's API budget, against a sandbox throttling at ECS's documented rates.

The sandbox's ``ecs-documented`` preset throttles ECS calls with ECS's token
buckets; the daemon keeps to its ``--api-budget`` share of them, batches its
first pass and its rollout polls, and says so when the resync interval cannot
be kept.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .conftest import GOOD_V1, GOOD_V2, GOOD_V3, Daemon, Sandbox, SpecRepo, release_doc, wait_for

pytestmark = pytest.mark.e2e
StartDaemon = Callable[..., Daemon]

RELEASES = {
    "shop.yaml": release_doc("shop", "shop", GOOD_V1),
    "shop-breaker.yaml": release_doc("shop-breaker", "shop-breaker", GOOD_V1),
}


def synced(daemon: Daemon, *names: str) -> bool:
    return all(daemon.release(name).get("phase") == "Synced" for name in names)


def metric(daemon: Daemon, name: str) -> float | None:
    for line in daemon.get("/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_the_first_pass_is_one_batch_and_nothing_is_throttled(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    sandbox.control("POST", "faults", {"preset": "ecs-documented"})
    repo.commit(RELEASES, "two releases")
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "shop", "shop-breaker"), 30, "both adopted")

    first = sandbox.call_log("DescribeServices")[0]
    assert sorted(first["request"]["services"]) == ["shop", "shop-breaker"]

    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V2)}, "shop v2")
    wait_for(lambda: sandbox.steady_on("shop", GOOD_V2), 30, "v2 rolled out")
    wait_for(lambda: synced(daemon, "shop"), 30, "v2 baked")

    throttled = {
        row["operation"]: row["throttled"]
        for row in sandbox.control("GET", "calls")["calls"]
        if row["throttled"]
    }
    assert throttled == {}
    resync = daemon.get("/status")["resync"]
    assert resync["stretched"] is False
    assert resync["describeServicesPerSecond"] == pytest.approx(7.5)  # 3/4 of half of 20


def test_a_resync_that_does_not_fit_the_budget_stretches_and_says_so(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    repo.commit(RELEASES, "two releases")
    # A tenth of ECS's rates: 2 DescribeServices a second, 1.5 for a resync, so the
    # one DescribeServices of each resync needs 0.67 s, more than the 0.5 s asked for.
    daemon = start_daemon("--api-budget", "0.1", "--resync-interval", "0.5")
    wait_for(lambda: synced(daemon, "shop", "shop-breaker"), 30, "both adopted")
    resync = wait_for(lambda: daemon.get("/status")["resync"], 10, "the resync's status")
    assert resync["stretched"] is True
    assert resync["configuredSeconds"] == 0.5
    # The budget's 0.67 s, or the last resync's own time if a loaded machine made it longer.
    planned = max(1 / 1.5, resync["lastResyncSeconds"])
    assert resync["effectiveSeconds"] == pytest.approx(planned, rel=0.2)
    assert resync["describeServicesCalls"] == 1
    assert (metric(daemon, "ecsop_resync_interval_seconds") or 0.0) >= 1 / 1.5 * 0.8
    assert metric(daemon, "ecsop_resync_interval_configured_seconds") == 0.5
    stretched = [
        line
        for line in daemon.logs()
        if line.get("event") == "resync interval stretched to fit the AWS API budget"
    ]
    # Once; again only if a resync of a loaded machine took far longer than the plan.
    assert len(stretched) >= 1
    assert stretched[0]["describe_services_per_second"] == pytest.approx(1.5)
    assert daemon.get("/healthz").strip() == "ok"


def deferred_calls(daemon: Daemon) -> float:
    return sum(
        float(line.split()[1])
        for line in daemon.get("/metrics").splitlines()
        if line.startswith("ecsop_aws_budget_deferred_calls_total{")
    )


def test_a_deploy_deferred_by_the_budget_is_late_never_lost(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    sandbox.control("POST", "faults", {"preset": "ecs-documented"})
    repo.commit(RELEASES, "two releases")
    # 6 % of ECS's rates: RegisterTaskDefinition's bucket (20 burst, 1 a second) holds
    # 1.2 tokens and refills one in 17 s, so the second deploy of one commit would
    # wait about 13 s, far past the 0.25 s a worker waits: it is deferred instead.
    daemon = start_daemon("--api-budget", "0.06")
    wait_for(lambda: synced(daemon, "shop", "shop-breaker"), 60, "both adopted")
    registered = sandbox.calls("RegisterTaskDefinition")

    repo.commit(
        {
            "shop.yaml": release_doc("shop", "shop", GOOD_V2),
            "shop-breaker.yaml": release_doc("shop-breaker", "shop-breaker", GOOD_V2),
        },
        "both to v2",
    )
    wait_for(lambda: deferred_calls(daemon) >= 1, 30, "a deploy deferred by the budget")
    wait_for(
        lambda: sandbox.steady_on("shop", GOOD_V2) and sandbox.steady_on("shop-breaker", GOOD_V2),
        90,
        "both rolled out, the deferred one when its token existed",
    )
    assert sandbox.calls("RegisterTaskDefinition") - registered == 2, "one revision each"
    first, second = sandbox.call_log("UpdateService")
    assert second["wall"] - first["wall"] >= 5, "the second deploy came when its token existed"
    # (A deploy deferred after its registration reuses that revision: test_executor.)
    throttled = [row for row in sandbox.control("GET", "calls")["calls"] if row["throttled"]]
    assert throttled == []


def test_a_spec_broken_while_its_deploy_is_deferred_never_deploys_what_it_said_before(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    """Hostile: the deferred deploy's file stops parsing, then is fixed to v3, all before
    its token exists. Nothing waits with the old decision: no v2 goes out for it, and v3
    is deployed once, when a token exists."""
    sandbox.control("POST", "faults", {"preset": "ecs-documented"})
    repo.commit(RELEASES, "two releases")
    daemon = start_daemon("--api-budget", "0.06")
    wait_for(lambda: synced(daemon, "shop", "shop-breaker"), 60, "both adopted")
    repo.commit(
        {
            "shop.yaml": release_doc("shop", "shop", GOOD_V2),
            "shop-breaker.yaml": release_doc("shop-breaker", "shop-breaker", GOOD_V2),
        },
        "both to v2",
    )
    wait_for(lambda: deferred_calls(daemon) >= 1, 30, "a deploy deferred by the budget")
    (deployed,) = [c["request"]["service"] for c in sandbox.call_log("UpdateService")]
    waiting = "shop-breaker" if deployed == "shop" else "shop"
    repo.commit({f"{waiting}.yaml": "apiVersion: ecsop.dev/v1\nkind: [Release\n"}, "broken")
    wait_for(lambda: daemon.release(waiting).get("phase") == "Invalid", 30, "shown invalid")
    repo.commit({f"{waiting}.yaml": release_doc(waiting, waiting, GOOD_V3)}, "fixed, to v3")
    wait_for(lambda: sandbox.steady_on(waiting, GOOD_V3), 90, "v3 deployed when its token existed")
    updates = [c for c in sandbox.call_log("UpdateService") if c["request"]["service"] == waiting]
    assert len(updates) == 1, "v2 never went out for it; v3 once"
    assert sandbox.app_image(updates[0]["request"]["taskDefinition"]) == GOOD_V3
