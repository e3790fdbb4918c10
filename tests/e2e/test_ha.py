"""Several replicas against one sandbox: one owner per shard, fail-over, pauses, a table outage.

Every replica is a real ``ecsop run`` process with ``--coordination`` on a
DynamoDB table served by the sandbox (moto), signing its AWS calls with its own
access key id, so the sandbox's call log says which replica made each call.
ECS runs on the sandbox's fast clock; leases are wall-clock, so the tests use
short lease flags (6 s / 4 s / 1 s: client-go's 15 / 10 / 2, shortened).
"""

from __future__ import annotations

import copy
import itertools
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from e2e.conftest import (
    GOOD_V1,
    GOOD_V2,
    Daemon,
    Sandbox,
    SpecRepo,
    release_doc,
    scenario,
    wait_for,
)
from ecsop.aws.coordination import create_table
from ecsop.controller.ownership import shard_of

pytestmark = pytest.mark.e2e

TABLE = "ecsop-ha"
LEASE_S, DEADLINE_S, RETRY_S = 6.0, 4.0, 1.0
BIG_LEASE_FLAGS = ()  # client-go's 15 / 10 / 2: 300 releases keep 2 cores busy
LEASE_FLAGS = (
    "--lease-duration",
    str(LEASE_S),
    "--renew-deadline",
    str(DEADLINE_S),
    "--retry-period",
    str(RETRY_S),
)
WRITES = ("UpdateService", "TagResource", "UntagResource", "RegisterTaskDefinition")


def fleet(count: int) -> dict[str, Any]:
    config = scenario()
    service = copy.deepcopy(config["clusters"]["prod"]["services"]["shop"])
    service["desiredCount"] = 1
    service["count"] = count
    config["clusters"] = {"prod": {"services": {"svc": service}}}
    return config


def service_name(index: int) -> str:
    return f"svc-{index:04d}"


def release_name(index: int) -> str:
    return f"r{index:03d}"


class Replicas:
    """N ``ecsop run`` replicas of one spec directory, coordinated through the sandbox."""

    def __init__(self, tmp: Path, box: Sandbox, repo: SpecRepo, shards: int) -> None:
        self.tmp, self.box, self.repo, self.shards = tmp, box, repo, shards
        self.running: dict[str, Daemon] = {}
        self.all: list[Daemon] = []
        client = boto3.client(
            "dynamodb",
            endpoint_url=box.url,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="x",
        )
        create_table(client, TABLE)

    def start(self, name: str) -> Daemon:
        daemon = Daemon(
            self.tmp,
            self.box,
            self.repo.path,
            "--coordination",
            f"dynamodb:{TABLE}",
            "--shards",
            str(self.shards),
            "--replica-id",
            name,
            *LEASE_FLAGS,
            caller=name,
        )
        self.running[name] = daemon
        self.all.append(daemon)
        wait_for(lambda: readyz(daemon)[0] == 200, 30, f"replica {name} ready")
        return daemon

    def status(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.running[name].get("/status")
        return body

    def held(self) -> dict[str, list[int]]:
        return {name: self.status(name)["coordination"]["held"] for name in self.running}

    def owner_of(self, shard: int) -> str | None:
        owners = [name for name, held in self.held().items() if shard in held]
        assert len(owners) <= 1, f"shard {shard} held by {owners}"
        return owners[0] if owners else None

    def phases(self) -> dict[str, str]:
        """Each release's phase, as its owner reports it."""
        out = {}
        for name in self.running:
            for item in self.status(name)["releases"]:
                if item.get("owner") == name:
                    out[item["name"]] = item["phase"]
        return out

    def all_synced(self, count: int) -> bool:
        phases = self.phases()
        return len(phases) == count and set(phases.values()) == {"Synced"}

    def stop(self) -> None:
        for daemon in self.all:
            if daemon.proc.poll() is None:
                daemon.stop()


Make = Callable[[int, int], tuple[Sandbox, SpecRepo, Replicas]]
"""(releases, shards) -> a sandbox with that many services, their specs, the replica group."""


@pytest.fixture
def replicas_of(tmp_path: Path) -> Iterator[Make]:
    made: list[tuple[Sandbox, Replicas]] = []

    def make(releases: int, shards: int) -> tuple[Sandbox, SpecRepo, Replicas]:
        box = Sandbox(tmp_path, fleet(releases))
        repo = SpecRepo(tmp_path / "specs")
        repo.commit(
            {
                f"{release_name(i)}.yaml": release_doc(release_name(i), service_name(i), GOOD_V1)
                for i in range(1, releases + 1)
            },
            "the fleet",
        )
        group = Replicas(tmp_path, box, repo, shards)
        made.append((box, group))
        return box, repo, group

    yield make
    for box, group in made:
        group.stop()
        box.stop()


def calls(box: Sandbox, *operations: str, after: float = 0.0) -> list[dict[str, Any]]:
    query = "&".join(f"operation={o}" for o in operations)
    found: list[dict[str, Any]] = box.control("GET", f"calls/log?{query}")["calls"]
    return [c for c in found if c["wall"] >= after]


def service_of(call: dict[str, Any]) -> str:
    request = call["request"]
    return str(request.get("service") or request.get("resourceArn", "")).rsplit("/", 1)[-1]


def readyz(daemon: Daemon) -> tuple[int, str]:
    try:
        return 200, daemon.get("/readyz")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def log_times(daemon: Daemon, event: str, **fields: Any) -> list[float]:
    """Wall-clock times of ``daemon``'s log lines with ``event`` and these field values."""
    out = []
    for line in daemon.logs():
        if line.get("event") == event and all(line.get(k) == v for k, v in fields.items()):
            out.append(datetime.fromisoformat(line["timestamp"]).timestamp())
    return out


def test_300_releases_over_8_shards_one_owner_each_and_a_kill_9_mid_rollout(
    replicas_of: Make,
) -> None:
    box, repo, group = replicas_of(300, 8)
    for name in ("a", "b", "c"):
        group.start(name)
    wait_for(lambda: group.all_synced(300), 120, "300 releases adopted and Synced")

    # Every shard owned exactly once, spread 3/3/2, and every replica agrees who owns what.
    held = group.held()
    assert sorted(s for shards in held.values() for s in shards) == list(range(8)), held
    assert sorted(len(s) for s in held.values()) == [2, 3, 3], held
    for name in group.running:
        status = group.status(name)
        owners = {o["shard"]: o["holder"] for o in status["coordination"]["owners"]}
        assert owners == {s: n for n, shards in held.items() for s in shards}
        assert len(status["releases"]) == 300
        assert readyz(group.running[name]) == (200, "ready\n"), name
    # A release owned by "a": deploy it, and kill -9 "a" as soon as its UpdateService landed.
    victim = "a"
    index = next(i for i in range(1, 301) if shard_of(release_name(i), 8) in held[victim])
    release, service = release_name(index), service_name(index)
    shard = shard_of(release, 8)
    others = [n for n in group.running if n != victim]
    # Through a replica that does not own it, `ecsop status` and a requeue still work.
    out = subprocess.run(
        [sys.executable, "-m", "ecsop", "status", "--json", "--url", group.running[others[0]].url],
        capture_output=True,
        text=True,
        check=True,
    )
    merged = {r["name"]: r for r in json.loads(out.stdout)["releases"]}
    assert merged[release]["phase"] == "Synced" and merged[release]["owner"] == victim
    request = urllib.request.Request(
        f"{group.running[others[0]].url}/requeue/{release}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 202
        assert f"forwarded to replica {victim}" in answer.read().decode()

    registered_before = len(calls(box, "RegisterTaskDefinition"))
    revisions_before = box.revisions("shop")
    started = time.time()
    repo.commit(
        {f"{release}.yaml": release_doc(release, service, GOOD_V2)}, f"{release}: v2"
    )
    wait_for(
        lambda: [c for c in calls(box, "UpdateService", after=started) if service_of(c) == service],
        20,
        "the owner's UpdateService",
    )
    dead = group.running.pop(victim)
    dead.kill()
    died = time.time()

    taker = wait_for(lambda: group.owner_of(shard), LEASE_S + 15, f"shard {shard} taken over")
    assert taker in others
    # When the taker itself took the lease (its log), not when /status showed it: polling
    # the replicas' status of 300 releases adds its own delay on a loaded machine.
    taken = max(log_times(group.running[taker], "acquired shard", shard=shard))
    print(f"\nshard {shard} taken by {taker} {taken - died:.2f}s after kill -9 of {victim}")
    # One lease, a round to see it expire and a round to take it (each up to 1.2 retry
    # periods), plus what those rounds take on a machine kept busy by 300 releases.
    assert taken - died <= LEASE_S + 2 * RETRY_S * 1.2 + 3.0, "one lease and its rounds, not two"
    wait_for(
        lambda: group.phases().get(release) == "Synced" and box.steady_on(service, GOOD_V2),
        60,
        "the rollout finished by the new owner",
    )
    wait_for(lambda: sorted(s for v in group.held().values() for s in v) == list(range(8)), 20)

    # The call log: never two replicas' UpdateService for one service within a lease period.
    by_service = defaultdict(list)
    for call in calls(box, "UpdateService"):
        by_service[service_of(call)].append(call)
    for name, updates in by_service.items():
        for first, second in itertools.pairwise(updates):
            if first["caller"] != second["caller"]:
                assert second["wall"] - first["wall"] >= LEASE_S, (name, first, second)
    ours = [c for c in by_service[service] if c["wall"] >= started]
    assert [c["caller"] for c in ours] == [victim], "the new owner resumed; it did not redeploy"
    # No duplicate revision: the one clone the dead owner registered was reused.
    assert len(calls(box, "RegisterTaskDefinition")) == registered_before + 1
    assert box.revisions("shop") == revisions_before + 1
    # The memory names the new owner, with a larger fencing token than the dead one's.
    writer = box.memory(service).writer
    assert writer.startswith(f"{taker}@{shard}."), writer
    dead_tokens = [
        line["fencing_token"]
        for line in dead.logs()
        if line.get("event") == "acquired shard" and line.get("shard") == shard
    ]
    assert int(writer.rsplit(".", 1)[1]) > max(dead_tokens)


def test_a_replica_paused_longer_than_its_lease_does_not_act_on_shards_it_lost(
    replicas_of: Make,
) -> None:
    box, repo, group = replicas_of(24, 4)
    for name in ("a", "b", "c"):
        group.start(name)
    wait_for(lambda: group.all_synced(24), 60, "24 releases Synced")
    paused_name = next(name for name, shards in group.held().items() if shards)
    lost = group.held()[paused_name]
    daemon = group.running[paused_name]
    index = next(i for i in range(1, 25) if shard_of(release_name(i), 4) in lost)
    release, service = release_name(index), service_name(index)

    daemon.proc.send_signal(signal.SIGSTOP)  # a paused VM: no round, no renewal
    paused = time.time()
    try:
        repo.commit({f"{release}.yaml": release_doc(release, service, GOOD_V2)}, "v2 while paused")
        del group.running[paused_name]
        wait_for(
            lambda: all(group.owner_of(s) not in (None, paused_name) for s in lost),
            LEASE_S + 15,
            "the paused replica's shards taken over",
        )
        wait_for(lambda: box.steady_on(service, GOOD_V2), 60, "deployed by the new owner")
        time.sleep(max(0.0, paused + LEASE_S + 1.0 - time.time()))
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    resumed = time.time()
    group.running[paused_name] = daemon
    time.sleep(3 * LEASE_S)  # time to act, if it wrongly would; and to take shards back fairly

    stopped = {
        s: [t for t in log_times(daemon, "stopped acting on shard", shard=s) if t >= resumed - 0.5]
        for s in lost
    }
    assert all(stopped.values()), f"says it stopped acting on {lost}: {stopped}"
    for call in calls(box, *WRITES, after=paused):
        if call["caller"] != paused_name:
            continue
        name = service_of(call)
        number = int(name.rsplit("-", 1)[1]) if name.startswith("svc-") else 0
        shard = shard_of(release_name(number), 4)
        if shard in lost:
            retaken = [t for t in log_times(daemon, "acquired shard", shard=shard) if t > resumed]
            assert retaken and min(retaken) <= call["wall"], (
                f"{paused_name} wrote {call['operation']} for {name} (shard {shard}) at "
                f"{call['wall']:.2f} without taking the shard again after resuming at {resumed:.2f}"
            )
    assert group.all_synced(24)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"errorRate": 1.0}, id="table-down"),
        pytest.param({"throttleRate": 1.0}, id="table-throttled"),
    ],
)
def test_no_replica_acts_without_the_table_and_every_replica_says_so(
    replicas_of: Make,
    fault: dict[str, float],
) -> None:
    box, repo, group = replicas_of(24, 2)
    for name in ("a", "b", "c"):
        group.start(name)
    wait_for(lambda: group.all_synced(24), 60, "24 releases Synced")
    standby = next(name for name, shards in group.held().items() if not shards)
    assert readyz(group.running[standby]) == (200, "ready: standby, holding no shard\n")

    box.control(
        "POST", "faults", {"operations": {op: fault for op in ("Scan", "UpdateItem")}}
    )
    cut = time.time()
    # Within its renew deadline an owner may still act (it can prove its lease); after it,
    # nobody may: a change committed then waits for the table.
    time.sleep(DEADLINE_S + 0.5)
    repo.commit({"r001.yaml": release_doc("r001", service_name(1), GOOD_V2)}, "v2, table down")
    time.sleep(LEASE_S)
    for name, daemon in group.running.items():
        status = group.status(name)["coordination"]
        assert status["held"] == [] and not status["healthy"], (name, status)
        code, why = readyz(daemon)
        assert code == 503 and "coordination table has not" in why, (name, why)
        assert "ecsop_coordination_table_up 0.0" in daemon.get("/metrics")
        assert log_times(daemon, "the coordination table failed; acting only on shards still "
                         "within their renew deadline, taking none")
    late = [c for c in calls(box, *WRITES, after=cut + DEADLINE_S + 0.5)]
    assert late == [], "no replica wrote to ECS once it could not prove it held a shard"
    assert not box.steady_on(service_name(1), GOOD_V2)

    box.control("POST", "faults", {})
    wait_for(lambda: box.steady_on(service_name(1), GOOD_V2), 60, "deployed once the table is back")
    wait_for(lambda: sorted(s for v in group.held().values() for s in v) == [0, 1], 20)
