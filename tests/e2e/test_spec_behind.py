"""A replica whose git-sync lags takes a release over: it waits for git-sync, never undoes.

Two real ``ecsop run`` replicas, one coordination table in the sandbox: replica
a reads the spec repository itself, replica b a clone of it that has not pulled
the last commit (``decision.spec_behind``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import GOOD_V1, GOOD_V2, Daemon, Sandbox, SpecRepo, release_doc, wait_for
from e2e.test_ha import LEASE_FLAGS, TABLE, Replicas, fleet, readyz

pytestmark = pytest.mark.e2e


def passed_by(replica: Daemon, release: str, replica_id: str) -> dict[str, Any] | None:
    """The release's status once ``replica`` owns it and has passed it, else None."""
    status = replica.release(release)
    passed = status.get("owner") == replica_id and status.get("phase") not in (None, "Unknown")
    return status if passed else None


def test_a_lagging_replica_waits_for_git_sync_instead_of_reverting_the_merged_release(
    tmp_path: Path,
) -> None:
    box = Sandbox(tmp_path, fleet(1))
    repo = SpecRepo(tmp_path / "specs")
    release, service = "r001", "svc"  # one service: the sandbox names it without a number
    repo.commit({f"{release}.yaml": release_doc(release, service, GOOD_V1)}, "v1")
    lagging = tmp_path / "lagging"
    subprocess.run(["git", "clone", "-q", str(repo.path), str(lagging)], check=True)
    group = Replicas(tmp_path, box, repo, 1)
    try:
        a = group.start("a")
        wait_for(lambda: a.release(release).get("phase") == "Synced", 30, "a synced on v1")
        merged = repo.commit({f"{release}.yaml": release_doc(release, service, GOOD_V2)}, "v2")
        wait_for(
            lambda: [c for c in box.call_log("UpdateService") if c["caller"] == "a"],
            30,
            "a deploys v2",
        )
        deployed = box.service(service)["taskDefinition"]
        b = Daemon(
            tmp_path,
            box,
            lagging,
            "--coordination",
            f"dynamodb:{TABLE}",
            "--shards",
            "1",
            "--replica-id",
            "b",
            "--spec-behind-grace",
            "3600",  # of AWS's time: 3 minutes at the sandbox's 20x
            *LEASE_FLAGS,
            caller="b",
        )
        group.running["b"], group.all = b, [*group.all, b]
        wait_for(lambda: readyz(b)[0] == 200, 30, "replica b ready")
        a.kill()  # kill -9: b takes the shard a lease later
        del group.running["a"]
        held = wait_for(lambda: passed_by(b, release, "b"), 40, "b owns the release and passed it")
        assert (held["phase"], held["reason"]) == ("Progressing", "SpecBehindService"), held
        assert merged[:12] in held["message"] and "git-sync" in held["message"]
        assert box.service(service)["taskDefinition"] == deployed
        assert [c for c in box.call_log("UpdateService") if c["caller"] == "b"] == []

        # git-sync pulls: b's spec is v2, the one running; nothing is undone.
        subprocess.run(["git", "-C", str(lagging), "pull", "-q", "--ff-only"], check=True)
        wait_for(lambda: b.release(release).get("phase") == "Synced", 40, "b synced on v2")
        assert box.steady_on(service, GOOD_V2)
        assert box.service(service)["taskDefinition"] == deployed
        assert [c for c in box.call_log("UpdateService") if c["caller"] == "b"] == []
    finally:
        group.stop()
        box.stop()
