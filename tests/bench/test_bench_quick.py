"""The benchmark runner works end to end on a tiny fleet (not a timing test).

Runs the steady-state scenario for 10 releases (sandbox, daemon and both
baselines as processes) and checks what the runner attributes to whom: the
sandbox's call log, the daemon's own call counter and the baselines' reports
must tell the same story. Timings are printed by ``python -m bench``, never
asserted here.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.config import QUICK  # noqa: E402

from bench import report, steady  # noqa: E402

pytestmark = pytest.mark.e2e


def test_steady_scenario_attributes_every_call(tmp_path: Path) -> None:
    config = replace(QUICK, steady_sizes=(10,), steady_resyncs=1, resync_small=2.0)
    results = {"started": "now", "machine": "test", "command": "pytest"}
    results["steady"] = steady.run(config, tmp_path)
    row = results["steady"]["sizes"]["10"]

    ecsop = row["ecsop"]
    assert ecsop["resyncs"] == 1
    assert ecsop["calls_per_resync"] == {"DescribeServices": 1.0}  # one batch of 10
    assert ecsop["metrics_agree"]  # the daemon counted what the sandbox received
    assert ecsop["cpu_s_per_resync"] > 0 and ecsop["peak_rss_mib"] > 20
    assert row["naive"]["calls_per_resync"] == {
        "DescribeServices": 10.0,
        "DescribeTaskDefinition": 10.0,
    }
    assert row["script"]["calls_per_resync"] == {"DescribeServices": 10.0}

    table = report.markdown(results)
    assert "| 10 | ecsop | 1.0 | 0.0 | 0.0 | 1.0 | 1 | 1x |" in table
    assert "| 10 | naive | 10.0 | 10.0 | 0.0 | 20.0 |  | 0.05x |" in table
    assert all(t["met"] for t in report.targets(results))
