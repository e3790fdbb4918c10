"""Scenario 5, several replicas: fail-over time, and what sharding costs in AWS calls.

**Fail-over.** Two replicas (``--coordination``, 4 shards) manage a fleet of
steady services. Each trial kills the replica holding shards with ``kill -9``
and measures, per shard it held, the time from the kill to the first AWS call
the new owner makes for a release of that shard (the batched DescribeServices
a take-over starts with: the new owner's first reconcile), from the sandbox's
call log (each replica signs its calls with its own access key id). A fresh
replica then replaces the dead one and the shards settle before the next
trial. The bound is one lease duration after the last renewal the dead replica
made, plus up to two rounds (the round that sees the lease unchanged long
enough, the round that takes it).

**Cost.** The same fleet of N steady services with 1, 2 and 4 replicas over 8
shards (and one replica without coordination, today's daemon): every ECS call
over several resync intervals, per resync, summed over the replicas; and the
DynamoDB calls of the leases per second. Sharding must not multiply ECS calls:
each release is observed by its owner only, so the total stays ``ceil(N/10)``
plus at most one partial batch per replica.
"""

from __future__ import annotations

import math
import signal
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import boto3

from bench import fleet
from bench.config import Config
from bench.harness import Daemon, Sandbox, SpecRepo, percentile, wait_for
from bench.steady import names_of

TABLE = "ecsop-bench"


def run(config: Config, workdir: Path) -> dict[str, Any]:
    return {
        "failover": _failover(config, workdir / "failover"),
        "cost": _cost(config, workdir / "cost"),
    }


def _shard_of(name: str, shards: int) -> int:
    from ecsop.controller.ownership import shard_of

    return shard_of(name, shards)


def _world(workdir: Path, size: int) -> tuple[Sandbox, SpecRepo, list[str]]:
    workdir.mkdir(parents=True, exist_ok=True)
    box = Sandbox(
        workdir,
        fleet.scenario(
            {"fleet": {"svc": fleet.service_spec("fleet", desired=1, count=size)}},
            {},
            clock_speed=1,
        ),
    )
    names = names_of(size)
    repo = SpecRepo(workdir / "specs")
    repo.write(
        {f"{name}.yaml": fleet.release(f"r-{name}", "fleet", name, fleet.BASE) for name in names}
    )
    repo.commit("fleet")
    client = boto3.client(
        "dynamodb",
        endpoint_url=box.url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    from ecsop.aws.coordination import create_table

    create_table(client, TABLE)
    return box, repo, names


def _replica(
    workdir: Path, box: Sandbox, repo: SpecRepo, name: str, shards: int, lease: tuple[float, ...]
) -> Daemon:
    flags = ["--coordination", f"dynamodb:{TABLE}", "--shards", str(shards)]
    flags += ["--replica-id", name, "--log-level", "warning", "--resync-interval", "5"]
    flags += ["--lease-duration", f"{lease[0]:g}", "--renew-deadline", f"{lease[1]:g}"]
    flags += ["--retry-period", f"{lease[2]:g}"]
    return Daemon(workdir, box, repo.path, *flags, caller=name)


def _held(daemons: dict[str, Daemon]) -> dict[str, list[int]]:
    return {n: d.get("/status")["coordination"]["held"] for n, d in daemons.items()}


def _settled(daemons: dict[str, Daemon], shards: int) -> bool:
    held = _held(daemons)
    every = sorted(s for v in held.values() for s in v)
    return every == list(range(shards)) and all(held.values())


def _failover(config: Config, workdir: Path) -> dict[str, Any]:
    shards, lease = 4, config.failover_lease
    box, repo, names = _world(workdir, config.failover_services)
    by_shard: dict[int, set[str]] = {}
    for name in names:
        by_shard.setdefault(_shard_of(f"r-{name}", shards), set()).add(name)
    daemons: dict[str, Daemon] = {}
    samples: list[float] = []
    try:
        for name in ("r0", "r1"):
            daemons[name] = _replica(workdir, box, repo, name, shards, lease)
        wait_for(lambda: _settled(daemons, shards), 120, "shards spread", 0.2)
        for trial in range(config.failover_trials):
            held = _held(daemons)
            victim = max(held, key=lambda n: len(held[n]))
            lost = held[victim]
            dead = daemons.pop(victim)
            dead.proc.send_signal(signal.SIGKILL)
            died = time.time()
            dead.proc.wait()
            firsts: dict[int, float] = {}
            wait_for(
                partial(_first_calls, box, victim, died, lost, by_shard, firsts),
                lease[0] * 3 + 30,
                "the new owner's first reconcile",
                0.1,
            )
            samples.extend(firsts.values())
            fresh = f"r{trial + 2}"
            daemons[fresh] = _replica(workdir, box, repo, fresh, shards, lease)
            wait_for(lambda: _settled(daemons, shards), 120, "shards spread again", 0.2)
    finally:
        for daemon in daemons.values():
            daemon.stop()
        box.stop()
    return {
        "lease_flags_s": list(lease),
        "trials": config.failover_trials,
        "shards_moved": len(samples),
        "p50_s": percentile(samples, 50),
        "p99_s": percentile(samples, 99),
        "max_s": max(samples),
        "samples_s": samples,
    }


def _first_calls(
    box: Sandbox,
    victim: str,
    died: float,
    lost: list[int],
    by_shard: dict[int, set[str]],
    firsts: dict[int, float],
) -> bool:
    """Fill ``firsts`` (shard -> seconds after the kill of the new owner's first call)."""
    for call in box.calls(["DescribeServices"]):
        if call.caller == victim or call.wall < died:
            continue
        for shard in lost:
            named = set(call.request.get("services", [])) & by_shard[shard]
            if named and shard not in firsts:
                firsts[shard] = call.wall - died
    return len(firsts) == len(lost)


def _synced(daemons: dict[str, Daemon], size: int) -> bool:
    """Every release Synced, as its owner (or the only daemon) reports it."""
    phases: dict[str, str] = {}
    for name, daemon in daemons.items():
        for item in daemon.get("/status")["releases"]:
            if item.get("owner", name) == name and item["phase"] != "Unknown":
                phases[item["name"]] = item["phase"]
    return len(phases) == size and set(phases.values()) == {"Synced"}


def _cost(config: Config, workdir: Path) -> dict[str, Any]:
    size, resync = config.cost_services, 5.0
    rows: dict[str, Any] = {}
    for replicas in (0, *config.replica_counts):
        label = "1 (no coordination)" if replicas == 0 else str(replicas)
        box, repo, _ = _world(workdir / f"replicas-{replicas}", size)
        daemons: dict[str, Daemon] = {}
        try:
            if replicas == 0:
                daemons["alone"] = Daemon(
                    workdir, box, repo.path, "--resync-interval", f"{resync:g}",
                    "--log-level", "warning", caller="alone",
                )
            for index in range(replicas):
                name = f"c{index}"
                daemons[name] = _replica(workdir, box, repo, name, 8, (15.0, 10.0, 2.0))
            if replicas:
                wait_for(partial(_settled, daemons, 8), 180, "8 shards spread", 0.5)
            wait_for(partial(_synced, daemons, size), 300, f"{size} releases Synced", 0.5)
            time.sleep(resync)  # let the first resync after settling pass
            mark = box.last_seq()
            window = config.cost_resyncs * resync
            time.sleep(window)
            calls = box.calls([], list(daemons), after=mark)
        finally:
            for daemon in daemons.values():
                daemon.stop()
            box.stop()
        ecs = Counter(c.operation for c in calls if c.operation not in _DYNAMODB)
        table = Counter(c.operation for c in calls if c.operation in _DYNAMODB)
        resyncs = window / resync
        rows[label] = {
            "replicas": max(1, replicas),
            "ecs_calls_per_resync": {op: n / resyncs for op, n in sorted(ecs.items())},
            "ecs_total_per_resync": sum(ecs.values()) / resyncs,
            "dynamodb_calls_per_s": sum(table.values()) / window,
            "describe_services_budget": math.ceil(size / 10),
        }
    return {"services": size, "resync_s": resync, "rows": rows}


_DYNAMODB = frozenset({"Scan", "UpdateItem", "PutItem", "GetItem", "DescribeTable"})
