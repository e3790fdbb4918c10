"""Tables and targets of the scale scenarios: the mid-refresh race, distinct-family
fleets up to 10,000 releases, and the crash loop ECS does not count.

Callers: ``bench.report`` (``markdown`` and ``targets``), for the results of
``bench/race.py``, ``bench/scale.py`` and ``bench/crashloop.py``.
"""

from __future__ import annotations

import math
from typing import Any

from bench.figures import fig

TARGET_10K_RSS_MIB = 500.0
TARGET_10K_CPU_S = 5.0
TARGET_10K_SYNCED_S = 60.0
"""Issue 22's targets at 10,000 releases on 2 cores (MB read as MiB x 1.048576)."""


def markdown(results: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    if "race" in results:
        parts += _race(results["race"])
    if "scale" in results:
        parts += _scale(results["scale"])
    if "crashloop" in results:
        parts += _crashloop(results["crashloop"])
    return parts


def _race(data: dict[str, Any]) -> list[str]:
    out = [
        f"#### Mid-refresh race: {data['changes']} changes committed at once, "
        f"{data['fleet']:,} services, resync {data['resync_s']:g} s",
        "",
        "| family | repetition | commit after burst start s | burst s | deployed during burst "
        "| UpdateService | RegisterTaskDefinition | duplicate updates | duplicate registrations |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, fleet in data["fleets"].items():
        for index, rep in enumerate(fleet["repetitions"]):
            label = rep["mode"] if rep["mode"] == "control" else f"race {index + 1}"
            out.append(
                f"| {kind} | {label} | {fig(rep['commit_after_burst_start_s'])} "
                f"| {fig(rep['burst_s'])} | {rep['deployed_during_burst']} "
                f"| {rep['update_service']} | {rep['register_task_definition']} "
                f"| {rep['duplicate_updates']} | {rep['duplicate_registrations']} |"
            )
    return [*out, ""]


def _scale(data: dict[str, Any]) -> list[str]:
    out = [
        "#### Scale, one task definition family per service",
        "",
        "| N | start | to Synced s | first-pass calls | + next resync's DescribeServices "
        "| budget N + ⌈N/10⌉ | TagResource "
        "| max per service | DescribeTaskDefinition / steady resync | CPU s / resync "
        "| botocore floor CPU s / resync | ecsop's own CPU s / resync | ecsop ÷ floor "
        "| full resync s | peak RSS MiB | floor peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, row in data["sizes"].items():
        for start in ("adoption", "restart"):
            run = row[start]
            steady = run.get("steady", {})
            calls = steady.get("calls_per_resync", {})
            out.append(
                f"| {int(size):,} | {start} | {fig(run['startup_to_synced_s'], 1)} "
                f"| {run['first_pass_total']:,} | {run.get('next_resync_describes', '-')} "
                f"| {row['first_pass_budget']:,} "
                f"| {run['tag_resource']:,} | {run['tag_resource_max_per_service']} "
                f"| {fig(calls.get('DescribeTaskDefinition', 0.0), 1) if steady else '-'} "
                f"| {fig(steady.get('cpu_s_per_resync'), 3)} | {_floor(steady, run.get('floor'))} "
                f"| {fig(steady.get('full_resync_s'))} | {fig(steady.get('peak_rss_mib'), 0)} "
                f"| {fig(run.get('floor', {}).get('peak_rss_mib'), 0)} |"
            )
    return [*out, ""]


def _floor(steady: dict[str, Any], floor: dict[str, Any] | None) -> str:
    """The floor's CPU per resync, ecsop's beyond it, and their ratio: three cells."""
    ours, theirs = steady.get("cpu_s_per_resync"), (floor or {}).get("cpu_s_per_resync")
    own = ours - theirs if ours is not None and theirs is not None else None
    ratio = f"{ours / theirs:.2f}x" if ours is not None and theirs else "-"
    return f"{fig(theirs, 3)} | {fig(own, 3)} | {ratio}"


def _crashloop(data: dict[str, Any]) -> list[str]:
    out = [
        f"#### Crash loop ECS does not count: container exits {data['exit_after_s']:g} s after "
        f"RUNNING, no health check, breaker on ({data['services']} services each, "
        f"clock x{data['clock_speed']:g}, watched {data['horizon_sim_s']:g} sim s)",
        "",
        "| contender | polls every (sim s) | rolled back | deploy → rollback p50 (sim s) | max "
        "| (maxFailedTasks+1)-th exit → rollback p50 | max | tasks exited by then p50 "
        "| ECS failedTasks max | ECS rolloutState |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in data["contenders"].items():
        states = ", ".join(f"{k} {v}" for k, v in sorted(row["ecs_rollout_states"].items()))
        out.append(
            f"| {name} | {fig(row['poll_interval_sim_s'], 0)} "
            f"| {row['rolled_back']}/{row['services']} "
            f"| {fig(row['deploy_to_rollback_sim_p50_s'], 1)} "
            f"| {fig(row['deploy_to_rollback_sim_max_s'], 1)} "
            f"| {fig(row['exit_to_rollback_sim_p50_s'], 1)} "
            f"| {fig(row['exit_to_rollback_sim_max_s'], 1)} | {fig(row['tasks_exited_p50'], 0)} "
            f"| {row['ecs_failed_tasks_max']} | {states} |"
        )
    return [*out, ""]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if "race" in results:
        for kind, fleet in results["race"]["fleets"].items():
            races = [r for r in fleet["repetitions"] if r["mode"] == "race"]
            dup = [r["duplicate_updates"] + r["duplicate_registrations"] for r in races]
            out.append(
                {
                    "target": f"race, {kind} family: 0 duplicate UpdateService or "
                    "RegisterTaskDefinition in every repetition",
                    "measured": " / ".join(str(d) for d in dup),
                    "met": bool(dup) and not any(dup),
                }
            )
    if "scale" in results:
        for size, row in results["scale"]["sizes"].items():
            n = int(size)
            steady = row["adoption"].get("steady", {})
            dtd = steady.get("calls_per_resync", {}).get("DescribeTaskDefinition", 0.0)
            out.append(
                {
                    "target": f"N={n:,}, distinct families: 0 DescribeTaskDefinition per "
                    "steady resync",
                    "measured": fig(dtd, 1),
                    "met": bool(steady) and dtd == 0,
                }
            )
            adoption, restart = row["adoption"], row["restart"]
            out.append(
                {
                    "target": f"N={n:,}: at most one TagResource per service at adoption, "
                    "none at restart",
                    "measured": f"max {adoption['tag_resource_max_per_service']}, "
                    f"restart {restart['tag_resource']}",
                    "met": adoption["tag_resource_max_per_service"] <= 1
                    and restart["tag_resource"] == 0,
                }
            )
            for start in ("adoption", "restart"):
                out.append(
                    {
                        "target": f"N={n:,}, {start}: ≤ N + ⌈N/10⌉ = "
                        f"{row['first_pass_budget']:,} AWS calls in the first pass",
                        "measured": f"{row[start]['first_pass_total']:,}",
                        "met": row[start]["first_pass_total"] <= row["first_pass_budget"],
                    }
                )
            if n >= 10_000:
                out += _ten_thousand(row)
    if "crashloop" in results:
        contenders = results["crashloop"]["contenders"]
        ours = contenders["ecsop"]
        out.append(
            {
                "target": "crash loop ECS does not count: ecsop rolls back every service within "
                "one active poll of the (maxFailedTasks+1)-th exit",
                "measured": f"{ours['within_one_poll']}/{ours['services']}; max "
                f"{fig(ours['exit_to_rollback_sim_max_s'], 1)} sim s",
                "met": ours["within_one_poll"] == ours["services"],
            }
        )
    return out


def _ten_thousand(row: dict[str, Any]) -> list[dict[str, Any]]:
    steady = row["adoption"].get("steady", {})
    return [
        {
            "target": "N=10,000: peak RSS < 500 MB",
            "measured": f"{fig(steady.get('peak_rss_mib'), 0)} MiB",
            "met": steady.get("peak_rss_mib", math.inf) * 1.048576 < TARGET_10K_RSS_MIB,
        },
        {
            "target": "N=10,000: CPU per resync < 5 s",
            "measured": f"{fig(steady.get('cpu_s_per_resync'), 2)} s"
            + _of_it_botocore(row["adoption"].get("floor")),
            "met": steady.get("cpu_s_per_resync", math.inf) < TARGET_10K_CPU_S,
        },
    ] + [
        {
            # A restart is the cold start a managed fleet meets (a deploy of ecsop, a node
            # replaced); adoption is each service's first sight, once.
            "target": f"N=10,000: Synced from cold start < 60 s ({start})",
            "measured": f"{fig(row[start]['startup_to_synced_s'], 1)} s",
            "met": row[start]["startup_to_synced_s"] < TARGET_10K_SYNCED_S,
        }
        for start in ("restart", "adoption")
    ]


def _of_it_botocore(floor: dict[str, Any] | None) -> str:
    """What the CPU target's figure says of the botocore floor measured beside it."""
    if not floor:
        return ""
    return f" (botocore floor {fig(floor['cpu_s_per_resync'], 2)} s of it, measured beside it)"
