"""Scenarios 3 and 4, steady-state API cost and scale, for each fleet size N.

One sandbox per N holds one cluster of N identical steady services (clock x1);
ecsop has N release files in a git repo, all already satisfied. The
contenders run one after another against it:

- ecsop (``ecsop run``): once every release is Synced, a few resyncs are
  watched. A resync shows at the sandbox as a burst of batched DescribeServices;
  the first burst is discarded. Per resync: every AWS call ecsop made from one
  burst's start to the next's, by operation (the sandbox's call log, checked
  against the daemon's own ``ecsop_aws_api_calls_total``); the daemon process's
  CPU over the same span (utime + stime from ``/proc/<pid>/stat``, sampled
  every 10 ms); how long the resync kept it busy (from the burst's first call
  until its CPU time stopped growing for 0.3 s); and its peak RSS (VmHWM).
- the naive reconciler: a few passes over all N (its own DescribeServices and
  DescribeTaskDefinition per release, four threads).
- the script, watching: N deploy-and-watch scripts' polls (one DescribeServices
  per service), run as one process with four threads. At rest (nothing
  deploying) the script makes no call at all, and notices nothing either.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import fleet
from bench.config import Config
from bench.harness import (
    Call,
    CpuSampler,
    Daemon,
    Sandbox,
    SpecRepo,
    end,
    start_baseline,
    wait_for,
)

QUIET = 0.3
"""Seconds without CPU use that end a resync's busy span."""


def run(config: Config, workdir: Path) -> dict[str, Any]:
    sizes = {}
    for size in config.steady_sizes:
        sizes[str(size)] = _one_size(config, workdir / f"steady-{size}", size)
    return {"sizes": sizes}


def names_of(size: int) -> list[str]:
    width = max(4, len(str(size)))
    return [f"svc-{i:0{width}d}" for i in range(1, size + 1)]


def _one_size(config: Config, workdir: Path, size: int) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    box = Sandbox(
        workdir,
        fleet.scenario(
            {"fleet": {"svc": fleet.service_spec("fleet", count=size)}}, {}, clock_speed=1
        ),
        name="sandbox",
    )
    names = names_of(size)
    repo = SpecRepo(workdir / "specs")
    repo.write(
        {f"{name}.yaml": fleet.release(f"r-{name}", "fleet", name, fleet.BASE) for name in names}
    )
    repo.commit("fleet")
    (workdir / "services.txt").write_text("\n".join(names) + "\n")
    try:
        return {
            "ecsop": _ecsop(config, workdir, box, repo, size),
            "naive": _baseline(
                config,
                workdir,
                box,
                size,
                "naive",
                "--specs",
                str(repo.path),
            ),
            "script": _baseline(
                config,
                workdir,
                box,
                size,
                "watch",
                "--cluster",
                "fleet",
                "--services",
                str(workdir / "services.txt"),
                caller="script",
            ),
        }
    finally:
        box.stop()


def _bursts(calls: list[Call], gap: float) -> list[float]:
    """Start times of the bursts of calls separated by more than ``gap`` seconds."""
    starts: list[float] = []
    last = -math.inf
    for call in calls:
        if call.wall - last > gap:
            starts.append(call.wall)
        last = call.wall
    return starts


def _ecsop(
    config: Config, workdir: Path, box: Sandbox, repo: SpecRepo, size: int
) -> dict[str, Any]:
    resync = config.resync_seconds(size)
    started = time.monotonic()
    daemon = Daemon(
        workdir,
        box,
        repo.path,
        "--resync-interval",
        f"{resync:g}",
        "--workers",
        str(config.workers),
        "--log-level",
        "warning",
    )
    try:
        daemon.wait_settled(size, 600)
        settle_s = time.monotonic() - started
        measured = measure_resyncs(daemon, box, size, resync, config.steady_resyncs)
    finally:
        daemon.stop()
    return {**measured, "startup_to_synced_s": settle_s}


def measure_resyncs(
    daemon: Daemon, box: Sandbox, size: int, resync: float, resyncs: int
) -> dict[str, Any]:
    """``resyncs`` resyncs of a settled daemon of ``size`` releases: calls, CPU, busy time
    and memory per resync."""
    mark, before = _counted_quietly(daemon, box)
    wanted = resyncs + 2  # the first is discarded; the last only ends a span
    with CpuSampler(daemon.pid) as sampler:

        def enough() -> list[float]:
            found = box.calls(["DescribeServices"], ["ecsop"], after=mark)
            starts = _bursts(found, resync / 2)
            return starts if len(starts) >= wanted else []

        # A resync is due an interval after the last one ended: at 10,000 releases the
        # resync itself lasts a good part of an interval, hence twice the intervals.
        starts = wait_for(enough, 2 * resync * (wanted + 2), "ecsop's resyncs", 0.5)
        time.sleep(QUIET + 0.2)
    last, after = _counted_quietly(daemon, box)
    calls = [c for c in box.calls([], ["ecsop"], after=mark) if c.seq <= last]
    memory = daemon.memory()
    spans = list(itertools.pairwise(starts[1:]))
    per_op: Counter[str] = Counter()
    for call in calls:
        if starts[1] <= call.wall < starts[-1]:
            per_op[call.operation] += 1
    count = len(spans)
    cpu = [sampler.at(b) - sampler.at(a) for a, b in spans]
    busy = [sampler.busy_until(a, QUIET, stop=b) - a for a, b in spans]
    logged = Counter(c.operation for c in calls)
    return {
        "resync_interval_s": resync,
        "resyncs": count,
        "calls_per_resync": {op: n / count for op, n in sorted(per_op.items())},
        "calls_total_per_resync": sum(per_op.values()) / count,
        "describe_services_budget": math.ceil(size / 10),
        "cpu_s_per_resync": sum(cpu) / count,
        "cpu_s_per_resync_max": max(cpu),
        "full_resync_s": sum(busy) / count,
        "full_resync_s_max": max(busy),
        "peak_rss_mib": memory["VmHWM"] / 1024,
        "rss_mib": memory["VmRSS"] / 1024,
        "metrics_agree": _agree(before, after, logged),
    }


def _counted_quietly(daemon: Daemon, box: Sandbox) -> tuple[int, Counter[str]]:
    """The call log's bookmark and the daemon's call counter, read while it makes no call.

    A call in flight would be in one count and not yet in the other, so both are
    read inside a half second in which the daemon sent nothing.
    """
    while True:
        seq = box.last_seq()
        time.sleep(0.5)
        if box.calls([], ["ecsop"], after=seq):
            continue
        counts = _metric_calls(daemon)
        if not box.calls([], ["ecsop"], after=seq):
            return seq, counts


def _metric_calls(daemon: Daemon) -> Counter[str]:
    counts: Counter[str] = Counter()
    for labels, value in daemon.metric_samples("ecsop_aws_api_calls_total").items():
        counts[dict(labels)["operation"]] += int(value)
    return counts


def _agree(before: Counter[str], after: Counter[str], logged: Counter[str]) -> bool:
    """Whether the daemon's own call counter moved exactly as the sandbox counted."""
    return all(after[op] - before[op] == logged[op] for op in set(after) | set(logged))


def _baseline(
    config: Config,
    workdir: Path,
    box: Sandbox,
    size: int,
    command: str,
    *args: str,
    caller: str | None = None,
) -> dict[str, Any]:
    return run_contender(
        workdir,
        box,
        caller or command,
        command,
        *args,
        interval=config.resync_seconds(size),
        workers=config.workers,
        passes=config.baseline_passes,
    )


def run_contender(
    workdir: Path,
    box: Sandbox,
    caller: str,
    command: str,
    *args: str,
    interval: float,
    workers: int,
    passes: int,
    warm_up: int = 0,
) -> dict[str, Any]:
    """Run a ``bench.baselines`` contender for ``passes`` passes: its calls (the sandbox's
    log), CPU and time per pass, and peak RSS, leaving out the first ``warm_up`` passes."""
    report = workdir / f"{command}.json"
    mark = box.last_seq()
    proc = start_baseline(
        workdir,
        box,
        caller,
        command,
        *args,
        "--interval",
        f"{interval:g}",
        "--workers",
        str(workers),
        "--passes",
        str(passes),
        "--report",
        str(report),
    )
    try:
        proc.wait(timeout=1800)
    finally:
        end(proc)
    data = json.loads(report.read_text())
    kept = data["passes"][warm_up:]
    calls = box.calls([], [caller], after=mark)
    per_op: Counter[str] = Counter(
        c.operation for c in calls if any(p["start"] <= c.wall <= p["end"] for p in kept)
    )
    cpu = [p["cpu"] for p in kept]
    count = len(kept)
    return {
        "passes": count,
        "calls_per_resync": {op: n / count for op, n in sorted(per_op.items())},
        "calls_total_per_resync": sum(per_op.values()) / count,
        "cpu_s_per_resync": sum(cpu) / count,
        "cpu_s_per_resync_median": statistics.median(cpu),
        "cpu_s_per_resync_max": max(cpu),
        "full_resync_s": sum(p["end"] - p["start"] for p in kept) / count,
        "peak_rss_mib": data["peak_rss_kib"] / 1024,
    }
