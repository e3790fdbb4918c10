"""Scenario 9, the crash loop ECS does not count: ecsop versus waiting for the breaker.

A worker (no load balancer, no health check) with the deployment circuit
breaker on and rollback on gets a new image whose container exits 5 s after
RUNNING. ECS replaces each task again and again but, as users observe
(aws/containers-roadmap#1206), counts none of them in the deployment's
``failedTasks``: the breaker never trips and the deployment stays
IN_PROGRESS. The sandbox does the same by default
(``crashAfterRunningCountsAsFailed: false``, ``docs/sandbox.md``).

- **ecsop** (``maxFailedTasks: 1``, its active poll 5 s): counts the
  deployment's own stopped tasks (``decision/failures.py``) and rolls back
  after the second exit.
- **script**, waiting for the breaker: the deploy-and-watch script, polling
  every 30 s, rolls back when ``failedTasks > 0`` and otherwise leaves it to
  ECS's breaker (with rollback on, ECS would put the last COMPLETED revision
  back by itself).

Clock x``crashloop_clock_speed``; every poll interval is divided by it. Each
contender gets ``crashloop_services`` services and is watched for
``HORIZON_SIM`` simulated seconds (ecsop's default ``rollout.timeoutSeconds``,
the moment ecsop would notice without its own count). Figures per service:
from the deploy's UpdateService to the rollback (the contender's
UpdateService back, or a rollback deployment ECS started), and from the
(maxFailedTasks+1)-th task exit (its ``stoppingAt``) to it; tasks stopped by
then; and, at the end, the bad deployment's ``failedTasks`` and
``rolloutState`` as ECS reports them.
"""

from __future__ import annotations

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
    start_script,
    wait_updates,
)

CONTENDERS = ("ecsop", "script")
EXIT_AFTER_S = 5.0
"""Seconds after RUNNING at which the bad image's container exits."""
MAX_FAILED_TASKS = 1
"""ecsop's ``rollout.maxFailedTasks``: the rollback follows the second exit."""
HORIZON_SIM = 900.0
"""Simulated seconds each contender is watched: ecsop's default rollout timeout."""


def _bad(contender: str, index: int) -> str:
    return fleet.image(f"crashloop-{contender}-{index}")


def run(config: Config, workdir: Path) -> dict[str, Any]:
    count, speed = config.crashloop_services, config.crashloop_clock_speed
    images = {
        _bad(contender, i): {
            "behavior": "crashloop",
            "exitCode": 1,
            "crashAfterSeconds": EXIT_AFTER_S,
        }
        for contender in CONTENDERS
        for i in range(count)
    }
    box = Sandbox(
        workdir,
        fleet.scenario(
            fleet.per_contender_services(count, CONTENDERS, breaker=True), images, speed
        ),
        name="crashloop-sandbox",
    )
    try:
        results = {
            "ecsop": _ecsop(config, workdir, box),
            "script": _script(config, workdir, box),
        }
    finally:
        box.stop()
    return {
        "services": count,
        "clock_speed": speed,
        "exit_after_s": EXIT_AFTER_S,
        "max_failed_tasks": MAX_FAILED_TASKS,
        "horizon_sim_s": HORIZON_SIM,
        "contenders": results,
    }


def _release(contender: str, index: int, image: str) -> dict[str, Any]:
    name = fleet.service_name(index)
    return fleet.release(
        f"{contender}-{name}", contender, name, image, max_failed_tasks=MAX_FAILED_TASKS
    )


def _ecsop(config: Config, workdir: Path, box: Sandbox) -> dict[str, Any]:
    count, speed = config.crashloop_services, config.crashloop_clock_speed
    repo = SpecRepo(workdir / "crashloop-ecsop-specs")
    names = [fleet.service_name(i) for i in range(count)]
    repo.write({f"{n}.yaml": _release("ecsop", i, fleet.BASE) for i, n in enumerate(names)})
    repo.commit("fleet")
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
        repo.write(
            {f"{n}.yaml": _release("ecsop", i, _bad("ecsop", i)) for i, n in enumerate(names)}
        )
        repo.commit("deploy the crash-looping image")
        found = _watch(box, "ecsop", names, mark, speed)
    finally:
        daemon.stop()
    return _figures(box, "ecsop", found, speed, config.active_poll_sim)


def _script(config: Config, workdir: Path, box: Sandbox) -> dict[str, Any]:
    count, speed = config.crashloop_services, config.crashloop_clock_speed
    names = [fleet.service_name(i) for i in range(count)]
    mark = box.last_seq()
    procs = []
    try:
        for index, name in enumerate(names):
            procs.append(
                start_script(
                    workdir,
                    box,
                    name,
                    _bad("script", index),
                    poll=f"{config.resync_sim / speed:g}",
                    timeout=f"{HORIZON_SIM / speed + 5:g}",
                    log_name="crashloop-script",
                )
            )
        found = _watch(box, "script", names, mark, speed)
    finally:
        for proc in procs:
            end(proc)
    return _figures(box, "script", found, speed, config.resync_sim)


def _watch(
    box: Sandbox, contender: str, names: list[str], mark: int, speed: float
) -> dict[str, list[Call]]:
    """UpdateService calls per service until each has two (deploy, rollback) or the horizon."""
    wanted = dict.fromkeys(names, 2)
    return wait_updates(box, contender, wanted, mark, HORIZON_SIM / speed, cluster=contender)


def _figures(
    box: Sandbox,
    contender: str,
    found: dict[str, list[Call]],
    speed: float,
    poll_sim: float,
) -> dict[str, Any]:
    ecs = box.ecs("bench")
    exits_of = _exits(ecs, contender)
    to_rollback: list[float] = []
    after_exit: list[float] = []
    stopped_by_then: list[int] = []
    ecs_counted: list[int] = []
    states: dict[str, int] = {}
    not_rolled_back = 0
    for name, calls in found.items():
        if not calls:
            continue
        deploy = calls[0]
        bad = str(deploy.request.get("taskDefinition"))
        exits = exits_of.get(bad, [])
        service = ecs.describe_services(cluster=contender, services=[name])["services"][0]
        bad_deployment = next(
            (d for d in service["deployments"] if d["taskDefinition"] == bad), None
        )
        breaker_rollback = bad_deployment is not None and bad_deployment["rolloutState"] == "FAILED"
        if bad_deployment is not None:
            ecs_counted.append(int(bad_deployment.get("failedTasks", 0)))
            state = str(bad_deployment["rolloutState"])
            states[state] = states.get(state, 0) + 1
        else:
            states["gone"] = states.get("gone", 0) + 1
        if len(calls) >= 2:
            rollback_sim = calls[1].sim
        elif breaker_rollback:
            rollback_sim = bad_deployment["updatedAt"].timestamp() if bad_deployment else None
        else:
            rollback_sim = None
        if rollback_sim is None:
            not_rolled_back += 1
            stopped_by_then.append(len(exits))
            continue
        to_rollback.append(rollback_sim - deploy.sim)
        if len(exits) > MAX_FAILED_TASKS:
            after_exit.append(rollback_sim - exits[MAX_FAILED_TASKS])
        stopped_by_then.append(sum(1 for at in exits if at <= rollback_sim))
    samples = len(to_rollback) + not_rolled_back
    return {
        "services": samples,
        "rolled_back": len(to_rollback),
        "not_rolled_back": not_rolled_back,
        "poll_interval_sim_s": poll_sim,
        "deploy_to_rollback_sim_p50_s": percentile(to_rollback, 50),
        "deploy_to_rollback_sim_max_s": max(to_rollback, default=float("nan")),
        "exit_to_rollback_sim_p50_s": percentile(after_exit, 50),
        "exit_to_rollback_sim_max_s": max(after_exit, default=float("nan")),
        "within_one_poll": sum(1 for x in after_exit if x <= poll_sim),
        "tasks_exited_p50": percentile([float(n) for n in stopped_by_then], 50),
        "ecs_failed_tasks_max": max(ecs_counted, default=0),
        "ecs_rollout_states": states,
        "deploy_to_rollback_sim_s": to_rollback,
    }


def _exits(ecs: Any, cluster: str) -> dict[str, list[float]]:
    """Task definition ARN -> simulated epochs at which its tasks stopped because their
    essential container exited, oldest first."""
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster, desiredStatus="STOPPED"):
        arns.extend(page["taskArns"])
    found: dict[str, list[float]] = {}
    for start in range(0, len(arns), 100):
        for task in ecs.describe_tasks(cluster=cluster, tasks=arns[start : start + 100])["tasks"]:
            if task.get("stopCode") == "EssentialContainerExited" and "stoppingAt" in task:
                found.setdefault(task["taskDefinitionArn"], []).append(
                    task["stoppingAt"].timestamp()
                )
    return {arn: sorted(times) for arn, times in found.items()}
