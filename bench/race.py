"""Scenario 7, the mid-refresh race: a bulk commit while a resync's batched describes fly.

A resync describes every service in batches of ten (``ServiceCache.refresh``)
and hands each answer to the pass that reconciles the release. A spec change
landing while that burst is in flight is deployed at once by a worker; if the
batched answer, read before the deploy, were then used by a later pass, that
pass would see the old revision still running and deploy again: a second
RegisterTaskDefinition and a second UpdateService for one change.

One sandbox per fleet (clock x1): ``race_fleet`` steady services, one cluster,
either all on one shared task definition family or each in its own family (the
two code paths differ: a shared family's revisions are searched among the other
releases'). ecsop runs with ``race_resync_s``. Each repetition commits
``race_changes`` spec changes at once (one file per release, a new healthy
image each, releases spread over the fleet so the burst describes some before
the commit and some after):

- **race**: the commit is made the instant the sandbox's call log shows the
  resync's first batched DescribeServices, so it lands while the burst is in
  flight;
- **control**: the same commit, half an interval after a burst.

Then the bench waits for every changed service's UpdateService and one more
full resync, and counts from the sandbox's call log every UpdateService and
RegisterTaskDefinition ecsop sent since the commit, per service (per family for
registrations; for the shared family, the total). A duplicate is any write
beyond one per change; the target is 0 in every repetition.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import fleet
from bench.config import Config
from bench.harness import Call, Daemon, Sandbox, SpecRepo, wait_for
from bench.steady import names_of

CONTAINER_FAMILY = "fleet"
BURST_GAP_S = 1.0
"""Batched DescribeServices further apart than this belong to two bursts."""


def run(config: Config, workdir: Path) -> dict[str, Any]:
    fleets = {}
    for kind in ("shared", "distinct"):
        fleets[kind] = _one_fleet(config, workdir / f"race-{kind}", kind)
    return {
        "fleet": config.race_fleet,
        "changes": config.race_changes,
        "resync_s": config.race_resync_s,
        "fleets": fleets,
    }


def _batched(call: Call) -> bool:
    return call.operation == "DescribeServices" and len(call.request.get("services", ())) > 1


def _family(kind: str, name: str) -> str:
    return f"{CONTAINER_FAMILY}-{name}" if kind == "distinct" else CONTAINER_FAMILY


def _label(kind: str, repetition: int, name: str) -> str:
    return f"race-{kind}-{repetition}-{name}"


def _one_fleet(config: Config, workdir: Path, kind: str) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    size, changes = config.race_fleet, config.race_changes
    names = names_of(size)
    step = size // changes
    plan = [("race", r) for r in range(config.race_repetitions)] + [("control", 0)]
    chosen = {
        index: names[index % step :: step][:changes] for index in range(len(plan))
    }  # disjoint sets, spread over the whole burst
    scenario = fleet.fleet_scenario(size, distinct=kind == "distinct")
    scenario["images"].update(
        fleet.healthy_images(
            [_label(kind, i, name) for i, group in chosen.items() for name in group]
        )
    )
    box = Sandbox(workdir, scenario, name="sandbox")
    repo = SpecRepo(workdir / "specs")
    repo.write(
        {f"{name}.yaml": fleet.release(f"r-{name}", "fleet", name, fleet.BASE) for name in names}
    )
    repo.commit("fleet")
    repetitions: list[dict[str, Any]] = []
    try:
        daemon = Daemon(
            workdir,
            box,
            repo.path,
            "--resync-interval",
            f"{config.race_resync_s:g}",
            "--workers",
            str(config.workers),
            "--log-level",
            "warning",
        )
        try:
            daemon.wait_settled(size, 900)
            for index, (mode, _) in enumerate(plan):
                repetitions.append(_repetition(config, box, repo, kind, mode, index, chosen[index]))
        finally:
            daemon.stop()
    finally:
        box.stop()
    races = [r for r in repetitions if r["mode"] == "race"]
    return {
        "repetitions": repetitions,
        "duplicate_updates": [r["duplicate_updates"] for r in races],
        "duplicate_registrations": [r["duplicate_registrations"] for r in races],
        "control_duplicate_updates": repetitions[-1]["duplicate_updates"],
        "control_duplicate_registrations": repetitions[-1]["duplicate_registrations"],
    }


def _next_burst(box: Sandbox, after: int, timeout: float) -> Call:
    """The first batched DescribeServices ecsop sends after seq ``after``."""

    def first() -> Call | None:
        found = [c for c in box.calls(["DescribeServices"], ["ecsop"], after=after) if _batched(c)]
        return found[0] if found else None

    found: Call = wait_for(first, timeout, "a resync's batched DescribeServices", 0.005)
    return found


def _burst_end(box: Sandbox, start: Call) -> Call:
    """The last batched DescribeServices of the burst that ``start`` opened."""
    last = start
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < BURST_GAP_S + 0.5:
        for call in box.calls(["DescribeServices"], ["ecsop"], after=last.seq):
            if _batched(call) and call.wall - last.wall <= BURST_GAP_S:
                last = call
                quiet_since = time.monotonic()
        time.sleep(0.1)
    return last


def _repetition(
    config: Config,
    box: Sandbox,
    repo: SpecRepo,
    kind: str,
    mode: str,
    index: int,
    changed: list[str],
) -> dict[str, Any]:
    mark = box.last_seq()
    burst = _next_burst(box, mark, config.race_resync_s * 3 + 30)
    if mode == "control":
        time.sleep(config.race_resync_s / 2)
    repo.write(
        {
            f"{name}.yaml": fleet.release(
                f"r-{name}", "fleet", name, fleet.image(_label(kind, index, name))
            )
            for name in changed
        }
    )
    repo.commit(f"{mode} {index}: {len(changed)} changes")
    committed = time.time()
    end = _burst_end(box, burst)

    def deployed() -> bool:
        got = {c.request.get("service") for c in box.calls(["UpdateService"], ["ecsop"], mark)}
        return set(changed) <= got

    wait_for(deployed, 180, f"{len(changed)} UpdateService calls", 0.2)
    # One more full resync after the last deploy: a pass acting on a stale answer shows here.
    settled = box.last_seq()
    after = _burst_end(box, _next_burst(box, settled, config.race_resync_s * 3 + 30))
    time.sleep(2.0)
    calls = [c for c in box.calls([], ["ecsop"], after=mark) if c.seq > mark]
    return _count(calls, kind, mode, changed, committed, burst, end) | {
        "window_end_wall": after.wall
    }


def _count(
    calls: list[Call],
    kind: str,
    mode: str,
    changed: list[str],
    committed: float,
    burst: Call,
    end: Call,
) -> dict[str, Any]:
    updates = Counter(
        str(c.request.get("service")) for c in calls if c.operation == "UpdateService"
    )
    registrations = Counter(
        str(c.request.get("family")) for c in calls if c.operation == "RegisterTaskDefinition"
    )
    first_update = {}
    for call in calls:
        if call.operation == "UpdateService":
            first_update.setdefault(str(call.request.get("service")), call.wall)
    if kind == "distinct":
        registered = {name: registrations[_family(kind, name)] for name in changed}
        duplicate_registrations = sum(max(0, n - 1) for n in registered.values())
        missing_registrations = sum(1 for n in registered.values() if n == 0)
    else:
        total = registrations[CONTAINER_FAMILY]
        duplicate_registrations = max(0, total - len(changed))
        missing_registrations = max(0, len(changed) - total)
    twice = sorted(name for name in changed if updates[name] > 1)
    mid_burst = sum(
        1 for name in changed if burst.wall <= first_update.get(name, math.inf) <= end.wall
    )
    singles = sum(1 for c in calls if c.operation == "DescribeServices" and not _batched(c))
    return {
        "mode": mode,
        "changes": len(changed),
        "commit_after_burst_start_s": committed - burst.wall,
        "burst_s": end.wall - burst.wall,
        "deployed_during_burst": mid_burst,
        "update_service": sum(updates[name] for name in changed),
        "register_task_definition": sum(registrations.values()),
        "duplicate_updates": sum(updates[name] - 1 for name in twice),
        "services_updated_twice": len(twice),
        "duplicate_registrations": duplicate_registrations,
        "missing_registrations": missing_registrations,
        "unexpected_updates": sum(n for name, n in updates.items() if name not in set(changed)),
        "single_describes": singles,
        "calls": dict(sorted(Counter(c.operation for c in calls).items())),
    }
