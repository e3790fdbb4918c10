"""Scenario 1, trigger latency: a spec change committed to git -> the UpdateService call.

Real time throughout (sandbox clock x1, every interval at its production
default). Each change pins a new healthy image in one release's spec file of
a real git repository (then ``git commit``); the latency runs from just before
the file is written to the moment the sandbox receives that service's
UpdateService, from the sandbox's call log. Each release is changed once, so
every change meets a steady service.

- ecsop watches the work tree (``ecsop run --specs``).
- The script is started as a fresh process the instant the commit exists (a
  CI system's own queueing, minutes in practice, is not counted).
- The naive reconciler notices at its next pass over the directory.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from bench import fleet
from bench.config import Config
from bench.harness import (
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


def run(config: Config, workdir: Path) -> dict[str, Any]:
    changes = config.trigger_changes
    labels = [f"{c}-v{i}" for c in fleet.CONTENDERS for i in range(changes)]
    box = Sandbox(
        workdir,
        fleet.scenario(
            fleet.per_contender_services(changes), fleet.healthy_images(labels), clock_speed=1
        ),
        name="trigger-sandbox",
    )
    rng = random.Random(1)
    try:
        results = {
            "ecsop": _ecsop(config, workdir, box, rng),
            "script": _script(config, workdir, box, rng),
            "naive": _naive(config, workdir, box),
        }
    finally:
        box.stop()
    return {"changes": changes, "contenders": results}


def _repo(workdir: Path, contender: str, changes: int) -> SpecRepo:
    repo = SpecRepo(workdir / f"trigger-{contender}-specs")
    repo.write(
        {
            f"{fleet.service_name(i)}.yaml": fleet.release(
                f"{contender}-{fleet.service_name(i)}",
                contender,
                fleet.service_name(i),
                fleet.BASE,
            )
            for i in range(changes)
        }
    )
    repo.commit("fleet")
    return repo


def _change(repo: SpecRepo, contender: str, index: int) -> float:
    """Pin the next image in release ``index``'s file and commit; returns when it was written."""
    name = fleet.service_name(index)
    doc = fleet.release(
        f"{contender}-{name}", contender, name, fleet.image(f"{contender}-v{index}")
    )
    written = time.time()
    repo.write({f"{name}.yaml": doc})
    repo.commit(f"deploy {name}")
    return written


def _summary(latencies: list[float], missed: int, **extra: Any) -> dict[str, Any]:
    return {
        "samples": len(latencies),
        "missed": missed,
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies) if latencies else float("nan"),
        "latencies_s": latencies,
        **extra,
    }


def _ecsop(config: Config, workdir: Path, box: Sandbox, rng: random.Random) -> dict[str, Any]:
    changes = config.trigger_changes
    repo = _repo(workdir, "ecsop", changes)
    daemon = Daemon(
        workdir,
        box,
        repo.path,
        "--resync-interval",
        "30",
        "--active-poll-interval",
        "5",
        "--workers",
        str(config.workers),
    )
    latencies: list[float] = []
    detected: list[float] = []
    missed = 0
    try:
        daemon.wait_settled(changes, 120)
        for index in range(changes):
            mark = box.last_seq()
            written = _change(repo, "ecsop", index)
            name = fleet.service_name(index)
            found = wait_updates(box, "ecsop", {name: 1}, mark, timeout=15, cluster="ecsop")[name]
            if found:
                latencies.append(found[0].wall - written)
                first = next(
                    c
                    for c in box.calls([], ["ecsop"], after=mark)
                    if name in (c.request.get("service"), *c.request.get("services", ()))
                )
                detected.append(first.wall - written)
            else:
                missed += 1
            time.sleep(rng.uniform(0.1, 0.4))
    finally:
        daemon.stop()
    return _summary(
        latencies,
        missed,
        how="watchfiles on the work tree, resync 30 s",
        first_call_p50_s=percentile(detected, 50),
        first_call_p99_s=percentile(detected, 99),
    )


def _script(config: Config, workdir: Path, box: Sandbox, rng: random.Random) -> dict[str, Any]:
    changes = config.trigger_changes
    repo = _repo(workdir, "script", changes)
    latencies: list[float] = []
    missed = 0
    procs = []
    try:
        for index in range(changes):
            name = fleet.service_name(index)
            mark = box.last_seq()
            written = _change(repo, "script", index)
            procs.append(
                start_script(
                    workdir,
                    box,
                    name,
                    fleet.image(f"script-v{index}"),
                    poll="30",
                    timeout="120",
                    log_name="trigger-script",
                )
            )
            found = wait_updates(box, "script", {name: 1}, mark, timeout=30, cluster="script")[name]
            if found:
                latencies.append(found[0].wall - written)
            else:
                missed += 1
            time.sleep(rng.uniform(0.1, 0.4))
    finally:
        for proc in procs:
            end(proc)
    return _summary(latencies, missed, how="new process per commit (CI queueing not counted)")


def _naive(config: Config, workdir: Path, box: Sandbox) -> dict[str, Any]:
    changes = config.trigger_changes
    interval = config.naive_trigger_interval
    repo = _repo(workdir, "naive", changes)
    report = workdir / "trigger-naive.json"
    proc = start_baseline(
        workdir,
        box,
        "naive",
        "naive",
        "--specs",
        str(repo.path),
        "--interval",
        str(interval),
        "--workers",
        str(config.workers),
        "--report",
        str(report),
        log_name="trigger-naive",
    )
    written: dict[str, float] = {}
    try:
        wait_for(report.exists, 60, "the naive reconciler's first pass", 0.1)
        mark = box.last_seq()
        gap = interval / changes
        for index in range(changes):
            written[fleet.service_name(index)] = _change(repo, "naive", index)
            time.sleep(gap)
        found = wait_updates(
            box,
            "naive",
            dict.fromkeys(written, 1),
            mark,
            timeout=2 * interval + 60,
            cluster="naive",
        )
    finally:
        end(proc)
    latencies = [calls[0].wall - written[name] for name, calls in found.items() if calls]
    return _summary(
        latencies,
        changes - len(latencies),
        how=f"polls the directory and every service each {interval:g} s",
    )
