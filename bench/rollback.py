"""Scenario 2, rollback latency: first failed task visible -> the rollback UpdateService.

Each contender deploys a crash-looping image (each service's crashes at its own
seeded time) to its own services; no circuit breaker, so the only rollback is
the contender's. The containers have a health check, and the bad image exits
before it could pass: a failure ECS counts in the deployment's ``failedTasks``,
which is all the baselines read. (A crash *after* a task ran healthy, with no
health check at all, ECS does not count: ``bench/crashloop.py``.) The clock
runs ``rollback_clock_speed`` x real time and every poll interval is divided by
it, so in simulated time each contender polls at its production default:
ecsop's active poll 5 s (``--active-poll-interval``), the script's 30 s, the
naive reconciler's 30 s. ecsop's specs say ``maxFailedTasks: 0``: roll back on
the first failed task, like the baselines.

The first failure is when the deployment's first task stopped for a failure
(its ``stoppingAt``, read back through DescribeTasks: that is when ECS counts it
in ``failedTasks``); the rollback is the second UpdateService the contender
sent for that service (the first deployed the bad image). Latency in simulated
seconds is the difference of the two simulated times; in real seconds, the
rollback's wall time minus the wall time at which the simulated clock showed
the failure.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import fleet
from bench.config import Config
from bench.harness import (
    Call,
    Daemon,
    Sandbox,
    SpecRepo,
    end,
    percentile,
    start_baseline,
    wait_for,
    wait_updates,
)

TIMEOUT_SIM = 600.0
"""Simulated seconds a contender gets to roll every service back."""


def run(config: Config, workdir: Path) -> dict[str, Any]:
    count = config.rollback_services
    labels = [f"{c}-crash-{i}" for c in fleet.CONTENDERS for i in range(count)]
    speed = config.rollback_clock_speed
    box = Sandbox(
        workdir,
        fleet.scenario(
            fleet.per_contender_services(count, health_check=True),
            fleet.crash_images(labels, seed=2),
            clock_speed=speed,
        ),
        name="rollback-sandbox",
    )
    rng = random.Random(2)
    try:
        updates = {
            "ecsop": _ecsop(config, workdir, box, rng),
            "script": _script(config, workdir, box, rng),
            "naive": _naive(config, workdir, box, rng),
        }
        results = {
            contender: _latencies(box, contender, found, speed, poll, mark)
            for contender, (found, poll, mark) in updates.items()
        }
    finally:
        box.stop()
    return {
        "services": count,
        "clock_speed": speed,
        "contenders": results,
    }


def _repo(workdir: Path, contender: str, count: int) -> SpecRepo:
    repo = SpecRepo(workdir / f"rollback-{contender}-specs")
    repo.write(
        {
            f"{fleet.service_name(i)}.yaml": fleet.release(
                f"{contender}-{fleet.service_name(i)}",
                contender,
                fleet.service_name(i),
                fleet.BASE,
                max_failed_tasks=0,
            )
            for i in range(count)
        }
    )
    repo.commit("fleet")
    return repo


def _break(repo: SpecRepo, contender: str, index: int) -> None:
    name = fleet.service_name(index)
    repo.write(
        {
            f"{name}.yaml": fleet.release(
                f"{contender}-{name}",
                contender,
                name,
                fleet.image(f"{contender}-crash-{index}"),
                max_failed_tasks=0,
            )
        }
    )
    repo.commit(f"deploy {name}")


Found = tuple[dict[str, list[Call]], float, int]
"""UpdateService calls per service, the contender's poll interval (simulated s), and the
call log's bookmark from before its first deploy."""


def _ecsop(config: Config, workdir: Path, box: Sandbox, rng: random.Random) -> Found:
    count, speed = config.rollback_services, config.rollback_clock_speed
    repo = _repo(workdir, "ecsop", count)
    daemon = Daemon(
        workdir,
        box,
        repo.path,
        "--resync-interval",
        f"{config.resync_sim / speed:g}",
        "--active-poll-interval",
        f"{config.active_poll_sim / speed:g}",
        "--workers",
        str(config.workers),
    )
    try:
        daemon.wait_settled(count, 120)
        mark = box.last_seq()
        for index in range(count):
            _break(repo, "ecsop", index)
            time.sleep(rng.uniform(0.05, 0.3))
        found = _wait(box, "ecsop", count, mark, speed)
    finally:
        daemon.stop()
    return found, config.active_poll_sim, mark


def _script(config: Config, workdir: Path, box: Sandbox, rng: random.Random) -> Found:
    count, speed = config.rollback_services, config.rollback_clock_speed
    mark = box.last_seq()
    procs = []
    try:
        for index in range(count):
            procs.append(
                start_baseline(
                    workdir,
                    box,
                    "script",
                    "script",
                    "--cluster",
                    "script",
                    "--service",
                    fleet.service_name(index),
                    "--container",
                    fleet.CONTAINER,
                    "--image",
                    fleet.image(f"script-crash-{index}"),
                    "--poll",
                    f"{config.resync_sim / speed:g}",
                    "--timeout",
                    f"{TIMEOUT_SIM / speed:g}",
                    log_name="rollback-script",
                )
            )
            time.sleep(rng.uniform(0.05, 0.3))
        found = _wait(box, "script", count, mark, speed)
    finally:
        for proc in procs:
            end(proc)
    return found, config.resync_sim, mark


def _naive(config: Config, workdir: Path, box: Sandbox, rng: random.Random) -> Found:
    count, speed = config.rollback_services, config.rollback_clock_speed
    repo = _repo(workdir, "naive", count)
    report = workdir / "rollback-naive.json"
    proc = start_baseline(
        workdir,
        box,
        "naive",
        "naive",
        "--specs",
        str(repo.path),
        "--interval",
        f"{config.resync_sim / speed:g}",
        "--workers",
        str(config.workers),
        "--report",
        str(report),
        log_name="rollback-naive",
    )
    try:
        wait_for(report.exists, 60, "the naive reconciler's first pass", 0.1)
        mark = box.last_seq()
        for index in range(count):
            _break(repo, "naive", index)
            time.sleep(rng.uniform(0.05, 0.3))
        found = _wait(box, "naive", count, mark, speed)
    finally:
        end(proc)
    return found, config.resync_sim, mark


def _wait(
    box: Sandbox, contender: str, count: int, mark: int, speed: float
) -> dict[str, list[Call]]:
    """Until each service got two UpdateService calls: the bad deploy, then the rollback."""
    wanted = {fleet.service_name(i): 2 for i in range(count)}
    return wait_updates(box, contender, wanted, mark, TIMEOUT_SIM / speed, cluster=contender)


def _latencies(
    box: Sandbox,
    contender: str,
    found: dict[str, list[Call]],
    speed: float,
    poll_sim: float,
    mark: int,
) -> dict[str, Any]:
    ecs = box.ecs("bench")
    first_failure = _first_failures(ecs, contender)
    clock = box.clock()
    describes = box.calls(["DescribeServices"], [contender], after=mark)
    sim_latencies: list[float] = []
    real_latencies: list[float] = []
    acting: list[float] = []
    missing = 0
    for name, calls in found.items():
        if len(calls) < 2:
            missing += 1
            continue
        deploy, rollback = calls[0], calls[1]
        failed_at = first_failure.get(str(deploy.request.get("taskDefinition")))
        if failed_at is None:
            missing += 1
            continue
        sim_latencies.append(rollback.sim - failed_at)
        failed_wall = clock["wall"] + (failed_at - clock["now"]) / speed
        real_latencies.append(rollback.wall - failed_wall)
        seen = [
            c.wall
            for c in describes
            if c.seq < rollback.seq and name in c.request.get("services", ())
        ]
        if seen:
            acting.append(rollback.wall - seen[-1])
    return {
        "samples": len(sim_latencies),
        "missed": missing,
        "poll_interval_sim_s": poll_sim,
        "sim_p50_s": percentile(sim_latencies, 50),
        "sim_p95_s": percentile(sim_latencies, 95),
        "sim_max_s": max(sim_latencies, default=float("nan")),
        "real_p50_s": percentile(real_latencies, 50),
        "real_p95_s": percentile(real_latencies, 95),
        "real_max_s": max(real_latencies, default=float("nan")),
        "within_one_poll": sum(1 for x in sim_latencies if x <= poll_sim),
        "observe_to_rollback_real_p50_s": percentile(acting, 50),
        "observe_to_rollback_real_max_s": max(acting, default=float("nan")),
        "calls": dict(
            sorted(Counter(c.operation for c in box.calls([], [contender], after=mark)).items())
        ),
        "sim_latencies_s": sim_latencies,
        "real_latencies_s": real_latencies,
    }


def _first_failures(ecs: Any, cluster: str) -> dict[str, float]:
    """Task definition ARN -> simulated epoch of its first task stopped for a failure."""
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster, desiredStatus="STOPPED"):
        arns.extend(page["taskArns"])
    first: dict[str, float] = {}
    for start in range(0, len(arns), 100):
        for task in ecs.describe_tasks(cluster=cluster, tasks=arns[start : start + 100])["tasks"]:
            if task.get("stopCode") != "EssentialContainerExited" or "stoppingAt" not in task:
                continue
            at = task["stoppingAt"].timestamp()
            arn = task["taskDefinitionArn"]
            first[arn] = min(first.get(arn, at), at)
    return first
