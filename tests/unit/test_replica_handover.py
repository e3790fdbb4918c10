"""A hand-over between replicas whose spec checkouts are at different commits.

Each replica runs its own git-sync: one may be a pull (15 s, or minutes when
the git host is slow) behind the other. The shard of a release moves from the
replica that deployed the newest commit to one still at the previous commit.
Two Controllers share one in-memory ECS and one lease table, each with its own
git checkout of one spec repository (``decision.spec_behind``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from controller_world import START, V1, V2, Clock, FakeEcs, image, release_doc
from lease_world import Clock as LeaseClock
from lease_world import Table
from test_replicas import Replica, S

from ecsop.decision.reasons import Phase, Reason


def git(directory: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(directory), *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    ).stdout.strip()


def commit(directory: Path, app: str, minutes: int) -> None:
    """A commit of ``app``, made ``minutes`` after the fake AWS clock's start (a deploys
    V2 at the start: the commits it and b start from were made before)."""
    (directory / "shop.yaml").write_text(yaml.safe_dump(release_doc("shop", app)))
    git(directory, "add", "shop.yaml")
    date = (START + timedelta(minutes=minutes)).isoformat()
    dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    git(directory, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", app, env=dates)


class World:
    """Replica a deploys V2 from the newest commit; b, at the commit before, takes over."""

    def __init__(self, tmp_path: Path, *, fetched: bool, complete: bool = False) -> None:
        self.ahead, self.behind = tmp_path / "ahead", tmp_path / "behind"
        self.ahead.mkdir()
        git(self.ahead, "init", "-q", "-b", "main")
        commit(self.ahead, V1, -60)
        if fetched:  # b's repository has the newest commit; its checkout is the one before
            commit(self.ahead, V2, -30)
            git(tmp_path, "clone", "-q", str(self.ahead), str(self.behind))
            git(self.behind, "checkout", "-q", "HEAD~1")
        else:  # b's git-sync has not fetched the newest commit yet
            git(tmp_path, "clone", "-q", str(self.ahead), str(self.behind))
            commit(self.ahead, V2, -30)
        self.ecs = FakeEcs(Clock())
        self.ecs.add_service("shop")
        table, self.clock = Table(), LeaseClock()
        self.a = Replica("a", self.ahead, self.ecs, table, self.clock)
        self.b = Replica("b", self.behind, self.ecs, table, self.clock)
        for _ in range(2):
            self.a.coordinator.round()
            self.clock.now += S.retry_period_seconds
        self.a.controller.reconcile("shop")  # adopts the service
        self.a.controller.reconcile("shop")
        assert self.ecs.calls.count("UpdateService") == 1  # a rolls V2 out
        self.deployed = self.ecs.services["shop"].task_definition
        if complete:
            self.ecs.complete("shop")
        # a is paused (or its node drained); b takes the shard a lease later.
        for _ in range(int(S.lease_seconds / S.retry_period_seconds) + 2):
            self.b.coordinator.round()
            self.clock.now += S.retry_period_seconds
        assert self.b.coordinator.held() == [0]

    def running(self) -> str:
        return self.ecs.services["shop"].task_definition

    def b_status(self) -> tuple[Phase, str, str]:
        status = self.b.controller.statuses.get("shop")
        assert status is not None
        return status.phase, status.reason, status.message


def test_a_replica_behind_on_git_does_not_revert_what_the_previous_owner_deployed(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, fetched=False)
    world.b.controller.reconcile("shop")
    assert world.running() == world.deployed, "b put V1 back over V2"
    assert world.ecs.calls.count("UpdateService") == 1
    phase, reason, message = world.b_status()
    assert (phase, reason) == (Phase.PROGRESSING, Reason.SPEC_BEHIND_SERVICE)
    newest, own = git(world.ahead, "rev-parse", "HEAD"), git(world.behind, "rev-parse", "HEAD")
    assert newest[:12] in message and own[:12] in message and "git-sync" in message
    # git-sync catches up: b now wants V2 too and judges the rollout a started.
    git(world.behind, "pull", "-q", "--ff-only")
    world.b.controller.reload_specs()
    world.b.controller.reconcile("shop")
    assert world.running() == world.deployed
    assert world.b_status()[1] == Reason.ROLLOUT_IN_PROGRESS


def test_a_completed_rollout_is_not_redeployed_over_either(tmp_path: Path) -> None:
    world = World(tmp_path, fetched=False, complete=True)
    world.b.controller.reconcile("shop")
    assert world.running() == world.deployed
    assert world.ecs.calls.count("UpdateService") == 1
    assert world.b_status()[1] == Reason.SPEC_BEHIND_SERVICE


def test_a_commit_that_never_arrives_holds_for_the_grace_only(tmp_path: Path) -> None:
    """The repository was re-created or its history squashed: the commit never comes."""
    world = World(tmp_path, fetched=False, complete=True)
    world.b.controller.reconcile("shop")
    assert world.b_status()[1] == Reason.SPEC_BEHIND_SERVICE
    world.ecs.clock.advance(299)
    world.b.controller.reconcile("shop")
    assert world.b_status()[1] == Reason.SPEC_BEHIND_SERVICE
    world.ecs.clock.advance(2)
    world.b.controller.reconcile("shop")
    assert world.running() != world.deployed, "V1 deployed once the grace ran out"
    phase, reason, message = world.b_status()
    assert (phase, reason) == (Phase.PROGRESSING, Reason.DEPLOYING)
    assert "still not in this replica's spec checkout after 300s" in message


def test_a_branch_reset_to_an_older_commit_is_followed(tmp_path: Path) -> None:
    """b's repository has the newest commit, yet its checkout is the one before: from
    where b stands that is a branch reset (or force-push) back, which the team asked for."""
    world = World(tmp_path, fetched=True)
    world.b.controller.reconcile("shop")
    assert world.ecs.calls.count("UpdateService") == 2
    assert world.running() != world.deployed
    assert world.b_status()[1] == Reason.REVERTING


def test_a_checkout_that_kept_only_its_own_commit_deploys_a_newer_one_at_once(
    tmp_path: Path,
) -> None:
    """git-sync's defaults (``--depth 1``, ``git gc`` with ``gc.pruneExpire=now`` after
    each sync) keep only the commit checked out: the commit the service was deployed
    from is unknown to every replica once a newer one is merged. A newer spec is no lag."""
    world = World(tmp_path, fetched=False, complete=True)
    commit(world.ahead, image("v3"), 5)  # merged after a deployed V2
    shutil.rmtree(world.behind)  # b's pod restarts: git-sync clones the tip afresh
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{world.ahead}", str(world.behind))
    service_commit = world.ecs.tds[world.deployed].tags["ecsop:commit"]
    with pytest.raises(subprocess.CalledProcessError):
        git(world.behind, "cat-file", "-e", service_commit + "^{commit}")
    world.b.controller.reload_specs()
    world.b.controller.reconcile("shop")
    assert world.ecs.calls.count("UpdateService") == 2, world.b_status()
    assert world.b_status()[1] == Reason.DEPLOYING


def test_a_commit_fetched_but_not_yet_checked_out_still_holds(tmp_path: Path) -> None:
    """git-sync (and ``git pull``) fetch first and switch the checkout after: a pass in
    between reads the old spec while git already has the commit the service came from."""
    world = World(tmp_path, fetched=False)
    world.b.controller.reconcile("shop")
    assert world.b_status()[1] == Reason.SPEC_BEHIND_SERVICE
    git(world.behind, "fetch", "-q")  # fetched; the checkout (and the spec read) not moved
    world.b.controller.reconcile("shop")
    assert world.b_status()[1] == Reason.SPEC_BEHIND_SERVICE
    assert world.running() == world.deployed
    git(world.behind, "merge", "-q", "--ff-only", "origin/main")
    world.b.controller.reload_specs()
    world.b.controller.reconcile("shop")
    assert world.running() == world.deployed
    assert world.b_status()[1] == Reason.ROLLOUT_IN_PROGRESS
