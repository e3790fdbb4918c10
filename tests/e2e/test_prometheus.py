"""A real Prometheus scrapes the daemon on the sandbox and fires the shipped rollback alert.

Prometheus is Debian's ``prometheus`` binary, started here with a 1 s scrape
and evaluation interval and ``helm-free-deploy/prometheus/alerts.yaml`` exactly
as shipped: the rollback alert has no ``for:``, so it fires at the first
evaluation after the rollback is scraped. Nothing here sleeps for long: the
sandbox's clock runs 20 times faster than real time.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsop.spec.model import fingerprint
from grafana import dashboard_queries
from prometheus_process import Prometheus, binary

from .conftest import (
    CRASH,
    GOOD_V1,
    Daemon,
    Sandbox,
    SpecRepo,
    release_doc,
    wait_for,
)

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "helm-free-deploy" / "prometheus" / "alerts.yaml"


def scraping_ecsop(target: str) -> dict[str, Any]:
    """Scrape ``target`` as job "ecsop" every second and evaluate the shipped rules as often."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "ecsop", "static_configs": [{"targets": [target]}]}],
    }


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
    executable = binary()
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        server = Prometheus(executable, tmp_path, scraping_ecsop(target))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_a_crash_looping_digest_fires_the_rollback_alert(
    sandbox: Sandbox,
    repo: SpecRepo,
    start_daemon: Callable[..., Daemon],
    start_prometheus: Callable[[str], Prometheus],
) -> None:
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1)}, "adopt shop")
    daemon = start_daemon()
    prometheus = start_prometheus(f"127.0.0.1:{daemon.port}")
    wait_for(lambda: daemon.release("shop").get("phase") == "Synced", 30, "shop synced")

    # Prometheus sees the daemon, the release, and a rollback counter already at 0.
    wait_for(lambda: prometheus.query('up{job="ecsop"} == 1'), 30, "ecsop scraped")
    wait_for(
        lambda: prometheus.query('ecsop_release_phase{release="shop", phase="Synced"} == 1'),
        30,
        "Synced scraped",
    )
    zero = prometheus.query('ecsop_rollbacks_total{release="shop", reason="failed_tasks"}')
    assert [float(s["value"][1]) for s in zero] == [0.0]
    assert prometheus.alerts("EcsopRollback", "firing") == []

    # A crash-looping digest: ecsop rolls it back, and Prometheus fires the alert.
    repo.commit({"shop.yaml": release_doc("shop", "shop", CRASH)}, "shop crash")
    (alert,) = wait_for(
        lambda: prometheus.alerts("EcsopRollback", "firing"), 60, "EcsopRollback firing"
    )
    assert alert["labels"]["release"] == "shop"
    assert alert["labels"]["reason"] == "failed_tasks"
    assert alert["labels"]["severity"] == "warning"
    assert alert["labels"]["job"] == "ecsop"
    assert "ecsop retry shop" in alert["annotations"]["description"]
    assert sandbox.failed("shop") == fingerprint({"app": CRASH})

    # The release ends Degraded: its alert is pending (it needs 5 minutes to fire).
    wait_for(lambda: prometheus.alerts("EcsopReleaseDegraded", "pending"), 60, "Degraded pending")
    outcome = prometheus.query('ecsop_deployments_total{release="shop", outcome="rolled_back"}')
    assert [float(s["value"][1]) for s in outcome] == [1.0]
    assert prometheus.alerts("EcsopDown", "pending") == []
    assert prometheus.alerts("EcsopMetricsMissing", "pending") == []

    # Every dashboard query runs against the real server.
    for expr in dashboard_queries(concrete=True):
        prometheus.query(expr)

    # And `ecsop status` explains it, in 80 columns.
    shown = subprocess.run(
        [sys.executable, "-m", "ecsop", "status", "--url", daemon.url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert all(len(line) <= 80 for line in shown.splitlines()), shown
    row = next(line for line in shown.splitlines() if line.startswith("shop "))
    assert row.split()[:3] == ["shop", "prod/shop", "Degraded"]
    assert "[last rollout rolled_back: failed_tasks]" in shown
