"""A resync does not pass again a release it finds as its last pass left it (issue 22).

At 10,000 releases the resync's passes, each deciding ``InSync`` again, were most
of ecsop's own CPU. Each test here changes one input a pass depends on and shows
that the release is passed again; the first shows that nothing else is.
"""

from __future__ import annotations

import subprocess

import pytest
from controller_world import V2, World

from ecsop.aws.clients import AwsError
from ecsop.decision.reasons import Phase

NAMES = [f"svc{i:02d}" for i in range(12)]


@pytest.fixture
def settled(world: World) -> World:
    """Twelve adopted releases, each passed once more: in sync."""
    for name in NAMES:
        world.adopted(name)
    for name in NAMES:
        world.reconcile(name)
        assert world.status(name).reason == "InSync"
    drain(world)
    return world


def drain(world: World) -> list[str]:
    """Take everything queued, as the workers would, without passing it."""
    taken = []
    while (name := world.controller.queue.get(timeout=0)) is not None:
        taken.append(name)
        world.controller.queue.done(name)
    return taken


def resync(world: World) -> list[str]:
    """One resync; the releases it queued for a pass."""
    world.controller.resync()
    return sorted(drain(world))


def test_a_resync_passes_none_of_the_releases_that_did_not_change(settled: World) -> None:
    world = settled
    before = world.status("svc03").updated_at
    world.clock.advance(30)
    world.ecs.calls.clear()
    assert resync(world) == []
    assert world.ecs.calls == ["DescribeServices", "DescribeServices"], "observed, in batches"
    assert world.sample("ecsop_resync_unchanged_total") == len(NAMES)
    status = world.status("svc03")
    assert (status.phase, status.reason) == (Phase.SYNCED, "InSync")
    assert status.updated_at is not None and before is not None and status.updated_at > before
    assert resync(world) == [], "and again at the next resync"
    assert world.sample("ecsop_resync_unchanged_total") == 2 * len(NAMES)


def test_a_service_changed_outside_ecsop_is_passed_again(settled: World) -> None:
    world = settled
    world.ecs._set("svc04", desired_count=5)
    world.ecs._set("svc05", tags={**world.ecs.tags("svc05"), "team": "payments"})
    assert resync(world) == ["svc04", "svc05"]


def test_a_spec_change_is_passed_again_and_its_pass_deploys(settled: World) -> None:
    world = settled
    world.write("svc06", V2)
    assert drain(world) == ["svc06"], "queued by the change itself"
    assert resync(world) == ["svc06"], "and not settled until a pass has seen it"
    world.ecs.calls.clear()
    world.reconcile("svc06")
    assert world.ecs.calls.count("UpdateService") == 1


def test_a_new_commit_passes_every_release_once(settled: World) -> None:
    world = settled

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=world.specs, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "a")
    assert resync(world) == NAMES, "the directory is now at a commit: status shows it"
    for name in NAMES:
        world.reconcile(name)
    assert resync(world) == []
    (world.specs / "README.md").write_text("not a release\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "b")
    assert resync(world) == NAMES
    commit = world.controller.specs.commit
    for name in NAMES:
        world.reconcile(name)
        assert world.status(name).commit == commit
    assert resync(world) == []


def test_a_write_to_the_service_since_the_pass_passes_it_again(settled: World) -> None:
    world = settled
    entry = world.controller.specs.entry("svc07")
    assert entry is not None and entry.loaded is not None
    world.controller.cache.wrote(entry.loaded)
    assert resync(world) == ["svc07"]


def test_a_failed_pass_is_not_settled(settled: World) -> None:
    world = settled
    world.ecs.describe_error = AwsError(
        "ThrottlingException", "slow down", "DescribeServices", retryable=True
    )
    with pytest.raises(AwsError):
        world.reconcile("svc08")
    world.ecs.describe_error = None
    assert resync(world) == ["svc08"]


def test_a_release_still_rolling_out_is_passed_at_every_resync(settled: World) -> None:
    world = settled
    world.write("svc09", V2)
    world.reconcile("svc09")
    assert world.phase("svc09") is Phase.PROGRESSING
    drain(world)
    assert resync(world) == ["svc09"]
    assert resync(world) == ["svc09"]


def test_a_fresh_process_passes_every_release_at_its_first_resync(settled: World) -> None:
    world = settled
    world.start()
    drain(world)
    assert resync(world) == NAMES


def test_a_spec_broken_after_the_pass_is_passed_again(settled: World) -> None:
    world = settled
    world.write_raw("svc10.yaml", "apiVersion: ecsop.dev/v1\nkind: ServiceRelease\nspec: [\n")
    drain(world)
    assert resync(world) == ["svc10"]
    world.reconcile("svc10")
    assert world.phase("svc10") is Phase.INVALID


def test_a_shard_taken_over_passes_its_releases_again(settled: World) -> None:
    """Two replicas: a shard this one lost and took back may have been written by the
    other meanwhile, so what its releases' last passes saw here no longer holds."""
    world = settled
    shard = world.controller.ownership.shard_of("svc01")
    taken = sorted(world.controller.releases_of(shard))
    world.controller.shard_lost(shard, "lease expired")
    world.controller.shard_acquiring(shard)
    assert resync(world) == taken
    assert "svc01" in taken
