"""Scenario 2, rollback latency: first failed task visible -> the rollback UpdateService.

Each contender deploys a crash-looping image (each service's crashes at its own
seeded time) to its own services; no circuit breaker, so the only rollback is
the contender's. The clock runs ``rollback_clock_speed`` x real time and every
poll interval is divided by it, so in simulated time each contender polls at
its production default: ecsop's active poll 5 s (``--active-poll-interval``),
the script's 30 s, the naive reconciler's 30 s. ecsop's specs say
``maxFailedTasks: 0``: roll back on the first failed task, like the baselines.

The first failure is when the deployment's first task stopped for a failure
(its ``stoppingAt``, read back through DescribeTasks: that is when ECS counts it
in ``failedTasks``); the rollback is the second UpdateService the contender
sent for that service (the first deployed the bad image). Latency in simulated
seconds is the difference of the two simulated times; in real seconds, the
rollback's wall time minus the wall time at which the simulated clock showed
the failure.

The event-driven contender (``events``) is ecsop with ``--events-queue``: the
sandbox publishes ECS's events to its EventBridge, helm-free-deploy's events
stack (``helm-free-deploy/events/ecsop-events.yaml``, created through the
sandbox's CloudFormation) delivers them to SQS, and the daemon polls rollouts
only at its default with a queue (30 simulated seconds) and resyncs every 300.
Its crash times are the polling ecsop's, service for service, so the two are
compared pair by pair. Both ecsop contenders then stay up, idle (every release
rolled back, nothing in flight), for a window of whole resync intervals: their
AWS calls per idle hour are counted there (ECS calls scaled from simulated
time, SQS long polls from real time, which they wait in).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import fleet
from bench.config import Config
from bench.harness import (
    ROOT,
    Call,
    Daemon,
    Sandbox,
    SpecRepo,
    end,
    percentile,
    start_baseline,
    start_script,
    wait_for,
    wait_updates,
)

TIMEOUT_SIM = 600.0
"""Simulated seconds a contender gets to roll every service back."""


EVENTS = "events"
"""The event-driven ecsop contender: its cluster, its access key id, its label."""
CONTENDERS = (*fleet.CONTENDERS, EVENTS)
SQS_CALLS = ("ReceiveMessage", "DeleteMessageBatch", "GetQueueAttributes")
TEMPLATE = ROOT / "helm-free-deploy" / "events" / "ecsop-events.yaml"


def run(config: Config, workdir: Path) -> dict[str, Any]:
    count = config.rollback_services
    labels = [f"{c}-crash-{i}" for c in fleet.CONTENDERS for i in range(count)]
    images = fleet.crash_images(labels, seed=2)
    for i in range(count):  # the events contender crashes when the polling ecsop does
        images[fleet.image(f"{EVENTS}-crash-{i}")] = images[fleet.image(f"ecsop-crash-{i}")]
    speed = config.rollback_clock_speed
    world = fleet.scenario(fleet.per_contender_services(count, CONTENDERS), images, speed)
    # ECS's failedTasks misses a container that exits after RUNNING without a health
    # check (ecsop counts those itself); the baselines read failedTasks only, so these
    # crashes count there as they would with a health check, or they never roll back.
    world["crashAfterRunningCountsAsFailed"] = True
    box = Sandbox(workdir, world, name="rollback-sandbox")
    rng = random.Random(2)
    idle: dict[str, Any] = {}
    try:
        running: dict[str, Running] = {}
        try:
            running["ecsop"] = _ecsop_daemon(config, workdir, box, "ecsop")
            updates = {"ecsop": _break_all(config, box, running["ecsop"], rng)}
            running[EVENTS] = _ecsop_daemon(config, workdir, box, EVENTS)
            updates[EVENTS] = _break_all(config, box, running[EVENTS], rng)
            idle = _idle(config, box, running)
        finally:
            for each in running.values():
                each.daemon.stop()
        updates["script"] = _script(config, workdir, box, rng)
        updates["naive"] = _naive(config, workdir, box, rng)
        results = {
            contender: _latencies(box, contender, found, speed, poll, mark)
            for contender, (found, poll, mark) in updates.items()
        }
    finally:
        box.stop()
    for contender, cost in idle.items():
        results[contender]["idle"] = cost
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


@dataclass(frozen=True)
class Running:
    """An ecsop contender's daemon and the spec repository it watches."""

    name: str
    daemon: Daemon
    repo: SpecRepo


def _ecsop_daemon(config: Config, workdir: Path, box: Sandbox, contender: str) -> Running:
    """ecsop for ``contender``'s cluster: polling at its defaults, or fed by events."""
    count, speed = config.rollback_services, config.rollback_clock_speed
    repo = _repo(workdir, contender, count)
    if contender == EVENTS:
        flags = [
            "--events-queue",
            _event_queue(box, contender),
            "--resync-interval",
            f"{config.events_resync_sim / speed:g}",
            "--active-poll-interval",
            f"{config.events_poll_sim / speed:g}",
            "--fallback-poll-interval",
            f"{config.active_poll_sim / speed:g}",
            "--fallback-resync-interval",
            f"{config.resync_sim / speed:g}",
            "--events-silence-timeout",
            f"{60 / speed:g}",
        ]
    else:
        flags = [
            "--resync-interval",
            f"{config.resync_sim / speed:g}",
            "--active-poll-interval",
            f"{config.active_poll_sim / speed:g}",
        ]
    daemon = Daemon(
        workdir, box, repo.path, *flags, "--workers", str(config.workers), caller=contender
    )
    try:
        daemon.wait_settled(count, 120)
    except BaseException:
        daemon.stop()
        raise
    return Running(contender, daemon, repo)


def _break_all(config: Config, box: Sandbox, running: Running, rng: random.Random) -> Found:
    """Deploy the crash-looping image to every service; wait for every rollback."""
    count, speed = config.rollback_services, config.rollback_clock_speed
    contender = running.name
    mark = box.last_seq()
    for index in range(count):
        _break(running.repo, contender, index)
        time.sleep(rng.uniform(0.05, 0.3))
    found = _wait(box, contender, count, mark, speed)
    poll = config.events_poll_sim if contender == EVENTS else config.active_poll_sim
    return found, poll, mark


def _event_queue(box: Sandbox, cluster: str) -> str:
    """helm-free-deploy's events stack for ``cluster``, created in the sandbox; its queue URL."""
    import boto3

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=box.url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )

    arn = client("ecs").describe_clusters(clusters=[cluster])["clusters"][0]["clusterArn"]
    cloudformation = client("cloudformation")
    cloudformation.create_stack(
        StackName=f"ecsop-{cluster}",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[
            {"ParameterKey": "ClusterArns", "ParameterValue": arn},
            {"ParameterKey": "QueueName", "ParameterValue": f"ecsop-{cluster}"},
        ],
    )
    outputs = cloudformation.describe_stacks(StackName=f"ecsop-{cluster}")["Stacks"][0]["Outputs"]
    return str(next(o["OutputValue"] for o in outputs if o["OutputKey"] == "QueueUrl"))


def _idle(config: Config, box: Sandbox, daemons: dict[str, Running]) -> dict[str, Any]:
    """Both ecsop contenders at rest, side by side: AWS calls per hour of each.

    Every release was rolled back (Degraded) and ECS finished every rollback (one
    COMPLETED deployment per service): nothing in flight. The window spans
    ``idle_resyncs`` of the longer resync interval; ECS calls are counted per
    simulated hour (their intervals are simulated seconds), SQS calls per real hour
    (a long poll waits up to 20 real seconds whatever the clock does).
    """
    speed = config.rollback_clock_speed
    ecs = box.ecs("bench")
    for running in daemons.values():

        def at_rest(daemon: Daemon = running.daemon, cluster: str = running.name) -> bool:
            if not all(p in ("Degraded", "Synced") for p in daemon.phases().values()):
                return False
            names = [fleet.service_name(i) for i in range(config.rollback_services)]
            for start in range(0, len(names), 10):
                found = ecs.describe_services(cluster=cluster, services=names[start : start + 10])
                for service in found["services"]:
                    deployments = service["deployments"]
                    if len(deployments) != 1 or deployments[0]["rolloutState"] != "COMPLETED":
                        return False
            return True

        wait_for(at_rest, 300, f"every rollback of {running.name} over in ECS", 0.5)
    time.sleep(2)  # the last events of the rollbacks are read and looked at
    window = max(config.idle_min_s, config.idle_resyncs * config.events_resync_sim / speed)
    mark = box.last_seq()
    time.sleep(window)
    out: dict[str, Any] = {}
    for contender in daemons:
        calls = box.calls([], [contender], after=mark)
        ecs = sum(1 for c in calls if c.service == "ecs")
        sqs = sum(1 for c in calls if c.service == "sqs")
        per_sim_hour = 3600 / (window * speed)
        out[contender] = {
            "window_real_s": window,
            "ecs_calls": ecs,
            "sqs_calls": sqs,
            "ecs_per_hour": ecs * per_sim_hour,
            "sqs_per_hour": sqs * 3600 / window,
            "other_per_hour": (len(calls) - ecs - sqs) * per_sim_hour,
        }
        out[contender]["total_per_hour"] = (
            out[contender]["ecs_per_hour"]
            + out[contender]["sqs_per_hour"]
            + out[contender]["other_per_hour"]
        )
    return out


def _script(config: Config, workdir: Path, box: Sandbox, rng: random.Random) -> Found:
    count, speed = config.rollback_services, config.rollback_clock_speed
    mark = box.last_seq()
    procs = []
    try:
        for index in range(count):
            procs.append(
                start_script(
                    workdir,
                    box,
                    fleet.service_name(index),
                    fleet.image(f"script-crash-{index}"),
                    poll=f"{config.resync_sim / speed:g}",
                    timeout=f"{TIMEOUT_SIM / speed:g}",
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
    last = max((calls[1].seq for calls in found.values() if len(calls) > 1), default=0)
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
    # Every call from the first bad deploy until the last rollback.
    window = [c for c in box.calls([], [contender], after=mark) if c.seq <= last]
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
        "calls": dict(sorted(Counter(c.operation for c in window).items())),
        "ecs_calls": sum(1 for c in window if c.service == "ecs"),
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
