"""Scenario 8, scale with one task definition family per service: N = 1,000 to 10,000.

Most fleets give every service its own family, so every release's revision is
a task definition of its own: the revision cache must hold them all or every
resync describes them again. One sandbox per N (clock x1) holds one cluster of
N steady services ``svc-0001``... in families ``fleet-svc-0001``..., none
tagged by ecsop yet; ecsop has N release files, all already satisfied.

- **Cold start, adoption**: ``ecsop run`` from process start until every
  release is Synced (``/status``), the calls it made meanwhile by operation (the
  sandbox's call log), and the TagResource calls per service (adopting a
  service records its last-good: at most one each).
- **Steady**: then ``resyncs`` resyncs are measured exactly as in the steady
  scenario (``steady.measure_resyncs``): calls per resync (target: 0
  DescribeTaskDefinition), the daemon's CPU and busy time per resync, peak RSS.
- **The botocore floor** of that resync: with the daemon stopped (so the two
  never share the CPU), the ``floor`` contender (``bench/baselines.py``) makes
  the DescribeServices calls one resync cannot avoid, as ecsop sends them and
  through ecsop's own client factory, every resync interval, ``resyncs`` + 1
  times (the first is discarded, as ecsop's first resync is: it pays botocore's
  lazy loading); its CPU per pass is what any botocore-based operator pays, and
  ecsop's CPU per resync over it is ecsop's own.
- **Restart**: the daemon is stopped and a fresh one started on the adopted
  fleet (a deploy of ecsop, a node replaced): time to Synced, the first pass's
  calls (target ≤ N + ⌈N/10⌉: ⌈N/10⌉ DescribeServices and one
  DescribeTaskDefinition per revision, which a new process has never seen), and
  TagResource calls (target 0: the tags are already right).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import fleet
from bench.config import Config
from bench.harness import Daemon, Sandbox, SpecRepo, describes_again
from bench.steady import measure_resyncs, names_of, run_contender


def run(config: Config, workdir: Path) -> dict[str, Any]:
    sizes = {}
    for size in config.scale_sizes:
        sizes[str(size)] = _one_size(config, workdir / f"scale-{size}", size)
    return {"sizes": sizes}


def _one_size(config: Config, workdir: Path, size: int) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    box = Sandbox(workdir, fleet.fleet_scenario(size, distinct=True), name="sandbox")
    names = names_of(size)
    repo = SpecRepo(workdir / "specs")
    repo.write(
        {f"{name}.yaml": fleet.release(f"r-{name}", "fleet", name, fleet.BASE) for name in names}
    )
    repo.commit("fleet")
    resync = config.scale_resync_s(size)
    try:
        adoption = _start(config, workdir, box, repo, size, resync, steady=True)
        restart = _start(config, workdir, box, repo, size, resync, steady=False)
    finally:
        box.stop()
    return {
        "resync_interval_s": resync,
        "first_pass_budget": size + math.ceil(size / 10),
        "adoption": adoption,
        "restart": restart,
    }


def _start(
    config: Config,
    workdir: Path,
    box: Sandbox,
    repo: SpecRepo,
    size: int,
    resync: float,
    *,
    steady: bool,
) -> dict[str, Any]:
    mark = box.last_seq()
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
        # ecsop's own cost, not ECS's rates: scenario 10 (``budget``) measures within
        # them. At the default share a cold start of 10,000 distinct families waits
        # for 10,000 DescribeTaskDefinition tokens at 10 a second (1,000 s).
        "--api-budget",
        "0",
    )
    try:
        daemon.wait_settled(size, 900, every=0.5 if size <= 1000 else 2.0)
        synced_s = time.monotonic() - started
        settled = box.last_seq()
        first = [c for c in box.calls([], ["ecsop"], after=mark) if c.seq <= settled]
        measured = (
            measure_resyncs(daemon, box, size, resync, config.scale_resyncs) if steady else {}
        )
    finally:
        daemon.stop()
    floor = _floor(config, workdir, box, size, resync) if steady else {}
    tags = Counter(str(c.request.get("resourceArn")) for c in first if c.operation == "TagResource")
    calls = Counter(c.operation for c in first)
    again = describes_again(first)  # the next resync's, begun before /status was read
    return {
        "startup_to_synced_s": synced_s,
        "first_pass_calls": dict(sorted(calls.items())),
        "first_pass_total": sum(calls.values()) - again,
        "next_resync_describes": again,
        "tag_resource": sum(tags.values()),
        "tag_resource_max_per_service": max(tags.values(), default=0),
        "services_tagged_twice": sum(1 for n in tags.values() if n > 1),
        **({"steady": measured} if measured else {}),
        **({"floor": floor} if floor else {}),
    }


def _floor(config: Config, workdir: Path, box: Sandbox, size: int, resync: float) -> dict[str, Any]:
    """The botocore floor of one resync of ``size`` services (``baselines floor``), measured
    as many times as ecsop's resyncs were, on the same sandbox, while no daemon runs."""
    services = workdir / "services.txt"
    services.write_text("\n".join(names_of(size)) + "\n")
    return run_contender(
        workdir,
        box,
        "floor",
        "floor",
        "--cluster",
        "fleet",
        "--services",
        str(services),
        interval=resync,
        workers=config.workers,
        passes=config.scale_resyncs + 1,
        warm_up=1,  # the first pass loads botocore's models and rules lazily
    )
