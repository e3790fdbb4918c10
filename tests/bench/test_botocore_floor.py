"""The botocore floor of a resync (issue 22): the calls it makes and how the scale table
reports it beside ecsop's own CPU.

Pure: a recording client stands in for ECS, and the report is fed results as
``bench/scale.py`` writes them. The floor against the sandbox is run by
``python -m bench --only scale``.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import baselines, report_scale  # noqa: E402
from ecsop.aws.clients import ClientFactory  # noqa: E402


class RecordingEcs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []

    def describe_services(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.append(kwargs)
        return {"services": [], "failures": []}


@pytest.mark.parametrize("workers", [1, 4], ids=["one-at-a-time", "four-threads"])
def test_the_floor_describes_every_service_ten_at_a_time_with_tags_as_ecsop_does(
    workers: int,
) -> None:
    ecs = RecordingEcs()
    names = [f"svc-{i:04d}" for i in range(1, 26)]

    baselines.floor_round(ecs, "fleet", names, workers)

    assert len(ecs.calls) == 3  # ⌈25/10⌉
    assert all(c["cluster"] == "fleet" and c["include"] == ["TAGS"] for c in ecs.calls)
    asked = sorted(name for c in ecs.calls for name in c["services"])
    assert asked == names
    assert sorted(len(c["services"]) for c in ecs.calls) == [5, 10, 10]


def test_the_floor_client_is_configured_as_ecsops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    ours = ClientFactory().config

    config = baselines.floor_client().meta.config

    assert config.retries == ours.retries
    assert config.user_agent_extra == ours.user_agent_extra
    assert (config.connect_timeout, config.read_timeout) == (
        ours.connect_timeout,
        ours.read_timeout,
    )


def _row(floor: dict[str, Any] | None) -> dict[str, Any]:
    adoption: dict[str, Any] = {
        "startup_to_synced_s": 142.0,
        "first_pass_total": 21_001,
        "next_resync_describes": 5,
        "tag_resource": 10_000,
        "tag_resource_max_per_service": 1,
        "steady": {
            "calls_per_resync": {"DescribeServices": 1000.0},
            "cpu_s_per_resync": 8.8,
            "full_resync_s": 8.3,
            "peak_rss_mib": 402.0,
        },
    }
    if floor is not None:
        adoption["floor"] = floor
    restart = {
        "startup_to_synced_s": 102.0,
        "first_pass_total": 11_001,
        "next_resync_describes": 179,
        "tag_resource": 0,
        "tag_resource_max_per_service": 0,
    }
    return {
        "scale": {
            "sizes": {
                "10000": {"first_pass_budget": 11_000, "adoption": adoption, "restart": restart}
            }
        }
    }


FLOOR = {"cpu_s_per_resync": 5.5, "peak_rss_mib": 80.0, "calls_per_resync": {}}


def test_the_scale_table_shows_the_floor_ecsops_own_cpu_and_the_ratio() -> None:
    lines = report_scale.markdown(_row(FLOOR))

    header = next(line for line in lines if line.startswith("| N |"))
    assert "| CPU s / resync | botocore floor CPU s / resync " in header
    assert "| ecsop's own CPU s / resync | ecsop ÷ floor |" in header
    adoption = next(line for line in lines if "| adoption |" in line)
    assert "| 8.800 | 5.500 | 3.300 | 1.60x | 8.30 | 402 | 80 |" in adoption
    restart = next(line for line in lines if "| restart |" in line)
    assert "| - | - | - | - | - | - | - |" in restart
    widths = {line.count("|") for line in lines if line.startswith("|")}
    assert len(widths) == 1  # every row has the header's columns


def test_results_without_a_floor_still_report() -> None:
    lines = report_scale.markdown(_row(None))

    adoption = next(line for line in lines if "| adoption |" in line)
    assert "| 8.800 | - | - | - | 8.30 | 402 | - |" in adoption


@pytest.mark.parametrize(
    ("floor", "says"),
    [
        pytest.param(FLOOR, "8.80 s (botocore floor 5.50 s of it, measured beside it)", id="floor"),
        pytest.param(None, "8.80 s", id="no-floor"),
    ],
)
def test_the_cpu_target_names_botocores_share(floor: dict[str, Any] | None, says: str) -> None:
    targets = report_scale.targets(_row(floor))

    cpu = next(t for t in targets if t["target"] == "N=10,000: CPU per resync < 5 s")
    assert cpu["measured"] == says
    assert cpu["met"] is False


def test_the_cold_start_target_is_judged_for_a_restart_and_for_adoption_apart() -> None:
    """A restart is the cold start a managed fleet meets; adoption happens once."""
    row = _row(FLOOR)
    row["scale"]["sizes"]["10000"]["restart"]["startup_to_synced_s"] = 50.1
    synced = {
        t["target"]: (t["measured"], t["met"])
        for t in report_scale.targets(row)
        if "Synced from cold start" in t["target"]
    }
    assert synced == {
        "N=10,000: Synced from cold start < 60 s (restart)": ("50.1 s", True),
        "N=10,000: Synced from cold start < 60 s (adoption)": ("142 s", False),
    }
