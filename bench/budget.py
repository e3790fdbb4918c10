"""Scenario 7, observing within ECS's API budget: the sandbox throttling at ECS's rates.

For each fleet size N, the contenders run one after the other, each against
its own fresh sandbox holding one cluster of N steady services already
adopted by ecsop (their ``ecsop:`` tags written by the bench, as a daemon
restart finds them), with the sandbox's fault injection set to ECS's
documented token buckets (``faults: {preset: ecs-documented}``: DescribeServices
and ListServices share 100 at once and 20 a second, UpdateService 50 / 5,
RegisterTaskDefinition 20 / 1, ...; ``ecsop/sandbox/ecs_rates.py``):

- ``paced``: ecsop as shipped, ``--api-budget 0.5``;
- ``today``: ecsop before this work (``TODAY``, exported with ``git archive``
  and run from there), at its defaults: no budget, a first pass whose workers
  describe releases one by one while the batched refresh runs, rollouts polled
  one service per call, the whole directory re-read on every change;
- ``unpaced`` (on request, ``--budget-contenders``): this checkout with
  ``--api-budget 0``: batched as shipped, but no budget and no stretching,
  every call sent as soon as it is made.

All rely on botocore's adaptive retries once throttled.

Real time throughout (clock x1), production intervals (resync 30 s, active
poll 5 s; ``--quick`` shortens the resync). Per contender, in this order:

1. **First pass**: from the daemon's start until every release has been
   reconciled once (``/status`` lists all N, Synced): its calls, how many
   DescribeServices named one service only (a per-release describe), and how
   many were throttled.
2. **Steady state**: a few resync intervals: calls per second by operation,
   throttled calls, and the effective resync interval as the sandbox saw it
   (for each service, the time between two DescribeServices that named it;
   the median) next to the one the daemon reports (``/status``).
3. **Trigger latency**: single spec changes, each a git commit of one file, a
   few seconds apart (RegisterTaskDefinition's documented sustained rate is
   1 a second; ecsop's half of it one every 2 s): from just before the file is
   written to the sandbox receiving that service's UpdateService.
4. **Active rollouts**: one commit changes 100 releases to an image whose
   tasks take 5 minutes to turn healthy, so the rollouts stay in progress;
   once the last UpdateService has landed, a window of two active-poll
   intervals with all 100 rollouts in progress: DescribeServices (and every
   other call) per second, and how many of them named one service.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import math
import statistics
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import fleet
from bench.config import Config
from bench.harness import (
    ROOT,
    Call,
    CpuSampler,
    Daemon,
    Sandbox,
    SpecRepo,
    describes_again,
    percentile,
    wait_for,
)
from ecsop.decision.ecs_state import Fingerprint, TaskDefinitionArn
from ecsop.decision.memory import ServiceMemory
from ecsop.spec.model import fingerprint

TODAY = "111e51d"
"""main as it was merged into the budget branch: ecsop without the budget's work (no
pacing, no batched first pass or active polls, a full spec reload per change)."""


@dataclass(frozen=True)
class Contender:
    flags: tuple[str, ...]
    today: bool = False
    """Run ``TODAY``'s ecsop (exported with ``git archive``) rather than this checkout's."""

    def label(self) -> str:
        flags = " ".join(self.flags) or "defaults"
        return f"ecsop at {TODAY} ({flags})" if self.today else flags


CONTENDERS: dict[str, Contender] = {
    "paced": Contender(("--api-budget", "0.5")),
    "unpaced": Contender(("--api-budget", "0")),
    "today": Contender((), today=True),
}
SLOW = fleet.image("slow-rollout")
"""The 100 rollouts' image: healthy, but only 5 minutes after its tasks start."""
CLUSTER = "fleet"


def run(config: Config, workdir: Path) -> dict[str, Any]:
    chosen = {name: CONTENDERS[name] for name in config.budget_contenders}
    code = _export(TODAY, workdir / "today") if any(c.today for c in chosen.values()) else None
    sizes: dict[str, Any] = {}
    for size in config.budget_sizes:
        sizes[str(size)] = {
            name: _contender(
                config,
                workdir / f"budget-{size}-{name}",
                size,
                name,
                contender.flags,
                code if contender.today else None,
            )
            for name, contender in chosen.items()
        }
    return {
        "sizes": sizes,
        "resync_s": config.budget_resync_s,
        "active_poll_s": config.budget_active_poll_s,
        "rollouts": config.budget_rollouts,
        "changes": config.budget_changes,
        "contenders": {name: contender.label() for name, contender in chosen.items()},
    }


def _export(rev: str, into: Path) -> Path:
    """``rev``'s operator package, as files: ``into/operator``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "operator"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "operator"


def names_of(size: int) -> list[str]:
    width = max(4, len(str(size)))
    return [f"svc-{i:0{width}d}" for i in range(1, size + 1)]


def _contender(
    config: Config,
    workdir: Path,
    size: int,
    name: str,
    flags: tuple[str, ...],
    code: Path | None,
) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    images = {SLOW: {"behavior": "healthy", "startSeconds": 300}}
    images.update(fleet.healthy_images([f"change-{i}" for i in range(config.budget_changes)]))
    box = Sandbox(
        workdir,
        fleet.scenario(
            {CLUSTER: {"svc": fleet.service_spec("fleet", count=size)}}, images, clock_speed=1
        ),
        name="sandbox",
    )
    names = names_of(size)
    try:
        _adopt(box, names)
        repo = SpecRepo(workdir / "specs")
        repo.write({f"{n}.yaml": _release(n, fleet.BASE) for n in names})
        repo.commit("fleet")
        box.control("POST", "faults", {"preset": "ecs-documented"})
        return _measure(config, workdir, box, repo, names, name, flags, code)
    finally:
        box.stop()


def _release(name: str, image: str) -> dict[str, Any]:
    return fleet.release(f"r-{name}", CLUSTER, name, image, bake_seconds=5)


def _adopt(box: Sandbox, names: list[str]) -> None:
    """Tag every service as ecsop leaves one it proved good: a restart's starting point."""
    ecs = box.ecs("setup")
    first = ecs.describe_services(cluster=CLUSTER, services=names[:1])["services"][0]
    revision = TaskDefinitionArn(first["taskDefinition"])
    prefix = first["serviceArn"].rsplit("/", 1)[0]
    carried = Fingerprint(fingerprint({fleet.CONTAINER: fleet.BASE}))  # what _release pins

    def tag(name: str) -> None:
        arn = f"{prefix}/{name}"
        memory = ServiceMemory(release=f"r-{name}").proven(
            arn, f"r-{name}", revision, fingerprint=carried
        )
        tags = [{"key": k, "value": v} for k, v in memory.tags().items()]
        ecs.tag_resource(resourceArn=arn, tags=tags)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(tag, names))


def _measure(
    config: Config,
    workdir: Path,
    box: Sandbox,
    repo: SpecRepo,
    names: list[str],
    caller: str,
    flags: tuple[str, ...],
    code: Path | None,
) -> dict[str, Any]:
    size = len(names)
    mark = box.last_seq()
    started = time.time()
    daemon = Daemon(
        workdir,
        box,
        repo.path,
        "--resync-interval",
        f"{config.budget_resync_s:g}",
        "--active-poll-interval",
        f"{config.budget_active_poll_s:g}",
        "--workers",
        str(config.workers),
        "--log-level",
        "warning",
        "--status-history",
        "0",  # /status must not read deployment history: the bench polls it
        *flags,
        caller=caller,
        code=code,
    )
    try:
        _wait_synced(daemon, size, config.budget_timeout_s)
        settled = time.time()
        first = _span(box, caller, mark, started, settled)
        first["seconds"] = settled - started
        # Before the budget, /status said nothing of the resync: it kept the configured one.
        resync = daemon.get("/status").get("resync") or {"effectiveSeconds": None}

        steady_s = max(
            config.budget_steady_intervals
            * max(resync["effectiveSeconds"] or 0.0, config.budget_resync_s),
            config.budget_min_window_s,
        )
        mark = box.last_seq()
        window_start = time.time()
        with CpuSampler(daemon.pid, every=0.05) as sampler:
            time.sleep(steady_s)
        window_end = time.time()
        steady = _span(box, caller, mark, window_start, window_end)
        steady["observed_interval_s"] = _observed_interval(box, caller, mark, window_end)
        steady["cpu_s_per_s"] = (sampler.at(window_end) - sampler.at(window_start)) / steady_s
        steady["reported"] = daemon.get("/status").get("resync") or {"effectiveSeconds": None}

        trigger = _triggers(config, box, repo, names, caller)
        rollouts = _rollouts(config, box, repo, names, caller)
        logs = daemon.log_path.read_text()
    finally:
        daemon.stop()
    return {
        "releases": size,
        "first_pass": first,
        "steady": steady,
        "trigger": trigger,
        "rollouts": rollouts,
        "stretch_logged": "resync interval stretched" in logs,
    }


def _wait_synced(daemon: Daemon, size: int, timeout: float) -> None:
    """Until every release has had its first pass and is Synced (``/status`` read each second:
    at 10,000 releases it is a large answer, and the daemon builds it)."""

    def settled() -> bool:
        phases = daemon.phases()
        return len(phases) == size and all(p == "Synced" for p in phases.values())

    wait_for(settled, timeout, f"{size} releases Synced", 1.0)


def _span(box: Sandbox, caller: str, mark: int, start: float, end: float) -> dict[str, Any]:
    """What ``caller`` sent between ``start`` and ``end`` (wall clock, after seq ``mark``)."""
    calls = [c for c in box.calls([], [caller], after=mark) if start <= c.wall <= end]
    seconds = max(end - start, 1e-9)
    by_op = Counter(c.operation for c in calls)
    throttled = Counter(c.operation for c in calls if c.fault == 400)
    describes = [c for c in calls if c.operation == "DescribeServices"]
    single = sum(1 for c in describes if len(c.request.get("services") or ()) == 1)
    again = describes_again(describes)
    return {
        "calls": len(calls),
        "calls_by_operation": dict(sorted(by_op.items())),
        "calls_per_s": len(calls) / seconds,
        "describe_services": len(describes),
        "describe_services_per_s": len(describes) / seconds,
        "describe_services_single": single,
        "describe_services_again": again,
        "throttled": sum(throttled.values()),
        "throttled_by_operation": dict(sorted(throttled.items())),
        "throttled_share": sum(throttled.values()) / len(calls) if calls else 0.0,
        "window_s": seconds,
    }


def _observed_interval(box: Sandbox, caller: str, mark: int, end: float) -> float | None:
    """The median time between two DescribeServices naming the same service."""
    seen: dict[str, list[float]] = defaultdict(list)
    for call in box.calls(["DescribeServices"], [caller], after=mark):
        if call.wall <= end and call.fault is None:
            for service in call.request.get("services") or ():
                seen[str(service)].append(call.wall)
    gaps = [b - a for times in seen.values() for a, b in itertools.pairwise(times)]
    return statistics.median(gaps) if gaps else None


def _triggers(
    config: Config, box: Sandbox, repo: SpecRepo, names: list[str], caller: str
) -> dict[str, Any]:
    """Single spec changes, spaced so that RegisterTaskDefinition's budget refills."""
    step = max(1, len(names) // (config.budget_changes + 1))
    chosen = [names[i * step] for i in range(config.budget_changes)]
    latencies: list[float] = []
    missed = 0
    for index, name in enumerate(chosen):
        mark = box.last_seq()
        began = time.time()
        repo.write({f"{name}.yaml": _release(name, fleet.image(f"change-{index}"))})
        repo.commit(f"change {name}")
        found = _update_of(box, caller, name, mark, config.budget_trigger_timeout_s)
        if found is None:
            missed += 1
        else:
            latencies.append(found.wall - began)
        time.sleep(max(0.0, began + config.budget_change_spacing_s - time.time()))
    return {
        "changes": len(chosen),
        "missed": missed,
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies) if latencies else math.nan,
        "samples_s": latencies,
    }


def _update_of(box: Sandbox, caller: str, service: str, mark: int, timeout: float) -> Call | None:
    deadline = time.monotonic() + timeout
    seen = mark
    while time.monotonic() < deadline:
        for call in box.calls(["UpdateService"], [caller], after=seen):
            seen = max(seen, call.seq)
            if call.request.get("service") == service and call.fault is None:
                return call
        time.sleep(0.01)
    return None


def _rollouts(
    config: Config, box: Sandbox, repo: SpecRepo, names: list[str], caller: str
) -> dict[str, Any]:
    """Start ``budget_rollouts`` rollouts in one commit; measure polling once all run."""
    rolled = names[-config.budget_rollouts :]
    mark = box.last_seq()
    began = time.time()
    repo.write({f"{name}.yaml": _release(name, SLOW) for name in rolled})
    repo.commit(f"{len(rolled)} rollouts")
    pending = set(rolled)

    def all_started() -> bool:
        for call in box.calls(["UpdateService"], [caller], after=mark):
            if call.fault is None:
                pending.discard(str(call.request.get("service")))
        return not pending

    wait_for(all_started, config.budget_timeout_s, f"{len(rolled)} rollouts started", 0.5)
    started_s = time.time() - began
    window = 2 * config.budget_active_poll_s
    window_mark = box.last_seq()
    window_start = time.time()
    time.sleep(window)
    polled = _span(box, caller, window_mark, window_start, time.time())
    rolled_set = set(rolled)
    polls = [
        c
        for c in box.calls(["DescribeServices"], [caller], after=window_mark)
        if window_start <= c.wall and set(c.request.get("services") or ()) & rolled_set
    ]
    named = sum(len(set(c.request.get("services") or ()) & rolled_set) for c in polls)
    return {
        "rollouts": len(rolled),
        "all_started_s": started_s,
        "start_span": _span(box, caller, mark, began, window_start),
        "window": polled,
        "rollout_describes": len(polls),
        "rollout_describes_per_s": len(polls) / window,
        "services_per_rollout_describe": named / len(polls) if polls else math.nan,
    }
