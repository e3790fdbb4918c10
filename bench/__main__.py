"""``python -m bench [--quick] [--only trigger,rollback,steady,budget] [--sizes 10,100]``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    budget,
    crashloop,
    failover,
    race,
    report,
    rollback,
    scale,
    steady,
    strategies,
    timestamps,
    trigger,
)
from bench.config import FULL, QUICK
from bench.harness import ROOT

SCENARIOS = {
    "trigger": trigger.run,
    "rollback": rollback.run,
    "crashloop": crashloop.run,
    "strategies": strategies.run,
    "steady": steady.run,
    "race": race.run,
    "scale": scale.run,
    "failover": failover.run,
    "budget": budget.run,
    "timestamps": timestamps.run,
}


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpus = os.cpu_count() or 0
    system = f"{platform.system()} {platform.machine()}"
    return f"{system}, {cpus} CPUs ({model}), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N, few changes (< 2 min)")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help="comma-separated: " + ",".join(SCENARIOS)
    )
    parser.add_argument("--sizes", help="fleet sizes of the steady scenario, e.g. 10,100,1000")
    parser.add_argument("--scale-sizes", help="fleet sizes of the scale scenario, e.g. 1000,5000")
    parser.add_argument("--budget-sizes", help="fleet sizes of the budget scenario, e.g. 1000")
    parser.add_argument(
        "--budget-contenders",
        help="of the budget scenario: paced,unpaced,today (default paced,today)",
    )
    parser.add_argument(
        "--rollback-clock-speed",
        type=float,
        help="simulated seconds per real second in the rollback scenario (default 5); "
        "each real millisecond the sandbox takes to deliver an event counts this many "
        "times in simulated reaction time",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    if args.sizes:
        config = replace(config, steady_sizes=tuple(int(s) for s in args.sizes.split(",")))
    if args.scale_sizes:
        config = replace(config, scale_sizes=tuple(int(s) for s in args.scale_sizes.split(",")))
    if args.budget_sizes:
        config = replace(config, budget_sizes=tuple(int(s) for s in args.budget_sizes.split(",")))
    if args.rollback_clock_speed:
        config = replace(config, rollback_clock_speed=args.rollback_clock_speed)
    if args.budget_contenders:
        config = replace(
            config,
            budget_contenders=tuple(c.strip() for c in args.budget_contenders.split(",")),
        )
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(tempfile.mkdtemp(prefix=f"ecsop-bench-{stamp}-"))
    results: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "command": shlex.join(
            ["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])]
        ),
        "mode": "quick" if args.quick else "full",
        "workdir": str(workdir),
    }
    began = time.monotonic()
    for name in chosen:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        results[name] = SCENARIOS[name](config, workdir / name)
        print(f"bench: {name} done in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    results["duration_s"] = time.monotonic() - began
    results["targets"] = report.targets(results)
    table = report.markdown(results)
    (args.out / f"results-{stamp}.json").write_text(json.dumps(results, indent=2))
    (args.out / "latest.json").write_text(json.dumps(results, indent=2))
    (args.out / f"table-{stamp}.md").write_text(table + "\n")
    (args.out / "latest.md").write_text(table + "\n")
    print(table)
    print(f"bench: results in {args.out} ({results['duration_s']:.0f} s)", file=sys.stderr)
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
