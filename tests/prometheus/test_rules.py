"""The shipped Prometheus files: alert rules, their promtool tests, scrape config, dashboard.

``promtool`` comes with Debian's ``prometheus`` package. Locally a missing
promtool skips the tests that need it; in CI (``CI=true``) it fails them, so
the rules can never ship untested because a machine lacked the binary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from ecsop.decision.analysis import MeasurementVerdict
from ecsop.decision.reasons import Phase
from ecsop.notify.metrics import NotifyMetrics
from ecsop.observability.event_metrics import EventMetrics
from ecsop.observability.lease_metrics import LeaseMetrics
from ecsop.observability.metrics import Metrics
from ecsop.observability.pacing_metrics import PacingMetrics
from grafana import DASHBOARD, dashboard_queries

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "helm-free-deploy" / "prometheus"
ALERTS = DEPLOY / "alerts.yaml"
CONFIG = DEPLOY / "prometheus.yml"
ALERT_TESTS = Path(__file__).parent / "alerts_test.yaml"
DOCS = ROOT / "docs" / "observability.md"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        why = "promtool not found (apt-get install prometheus: Debian's package ships it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{why}; CI must install it")
        pytest.skip(why)
    return found


def run(promtool: str, *args: str) -> str:
    done = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


# --- promtool -----------------------------------------------------------------------------


def test_alert_rules_are_valid(promtool: str) -> None:
    run(promtool, "check", "rules", str(ALERTS))


def test_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    run(promtool, "test", "rules", str(ALERT_TESTS))


def test_example_prometheus_config_is_valid(promtool: str) -> None:
    run(promtool, "check", "config", str(CONFIG))


def test_dashboard_queries_parse(promtool: str, tmp_path: Path) -> None:
    """Every dashboard query, variables filled in, is valid PromQL (as a recording rule)."""
    rules = [
        {"record": f"dashboard:query_{index}", "expr": expr}
        for index, expr in enumerate(dashboard_queries(concrete=True))
    ]
    path = tmp_path / "dashboard_rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run(promtool, "check", "rules", str(path))


# --- consistency (no promtool needed) -----------------------------------------------------


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts never seen firing"
    assert names - silent == set(), "alerts never seen staying quiet"
    assert (firing | silent) - names == set(), "tests of alerts that do not exist"


def test_the_required_alerts_exist() -> None:
    exprs = {rule["alert"]: " ".join(rule["expr"].split()) for rule in alert_rules()}
    assert 'ecsop_release_phase{phase="Degraded"} == 1' in exprs["EcsopReleaseDegraded"]
    assert "increase(ecsop_rollbacks_total[10m])" in exprs["EcsopRollback"]
    assert 'ecsop_reconcile_total{result="error"}' in exprs["EcsopReconcileErrors"]
    assert "ecsop_spec_errors > 0" in exprs["EcsopSpecInvalid"]
    assert 'up{job="ecsop"} == 0' in exprs["EcsopDown"]
    assert 'absent(up{job="ecsop"})' in exprs["EcsopTargetMissing"]


def test_the_rollback_alert_fires_without_waiting() -> None:
    """The end-to-end test relies on it, and a rollback is news the moment it happens."""
    rule = next(r for r in alert_rules() if r["alert"] == "EcsopRollback")
    assert "for" not in rule
    assert {"release", "reason"} <= set(re.findall(r"by \(([^)]*)\)", rule["expr"])[0].split(", "))


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_tells_the_operator_what_to_do(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    anchor = annotations["runbook"].removeprefix("docs/observability.md#")
    assert anchor == rule["alert"].lower()
    headings = {
        _slug(line.lstrip("#").strip())
        for line in DOCS.read_text().splitlines()
        if line.startswith("#")
    }
    assert anchor in headings, f"docs/observability.md has no section for {rule['alert']}"


def test_rules_and_dashboard_use_only_metrics_ecsop_exposes() -> None:
    exposed = _exposed_names()
    texts = [ALERTS.read_text(), *dashboard_queries(concrete=False)]
    used = {name for text in texts for name in re.findall(r"\becsop_[a-z_]+", text)}
    assert used, "no ecsop metric referenced at all?"
    assert used - exposed == set()


@pytest.mark.parametrize("doc", ["README.md", "docs/observability.md"])
def test_every_metric_ecsop_exposes_is_documented(doc: str) -> None:
    """A metric an operator cannot look up is one nobody alerts on or dares to delete."""
    text = (ROOT / doc).read_text()
    rows = "\n".join(line for line in text.splitlines() if line.startswith("| `ecsop_"))
    missing = sorted(
        name for name in _exposed_families() if not re.search(rf"`{name}(_total)?`", rows)
    )
    assert missing == [], f"not in {doc}'s metric tables"


def test_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "ecsop-overview"
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in (
        "phase",
        "synced",
        "rollbacks",
        "deployment duration",
        "reconcile",
        "work queue",
        "aws api",
        "spec errors",
        "build",
    ):
        assert topic in titles, f"no panel about {topic}"


# --- helpers ------------------------------------------------------------------------------


def _exposed_names() -> set[str]:
    """Every family and sample name a daemon's registry exposes once one of everything happened."""
    families, samples = _exposed()
    return families | samples


def _exposed_families() -> set[str]:
    """Every metric family (counters without ``_total``, as prometheus_client names them)."""
    return _exposed()[0]


def _exposed() -> tuple[set[str], set[str]]:
    """(family names, sample names) of a registry where one of everything happened."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.set_release("r", "c", "s", "us-east-1", Phase.SYNCED, True)
    metrics.deployment_duration.labels("r").observe(1)
    metrics.last_success.labels("r").set(1)
    metrics.reconciles.labels("r", "success").inc()
    metrics.reconcile_duration.observe(0.1)
    metrics.workqueue_retries.inc()
    metrics.aws_calls.labels("ecs", "DescribeServices", "200").inc()
    metrics.set_specs(["bad.yaml"], 1, "abc")
    metrics.memory_write_failures.labels("r").inc()
    metrics.loop_errors.labels("resync").inc()
    metrics.analysis_measured("r", "error-rate", MeasurementVerdict.ERROR)
    notify = NotifyMetrics(registry)
    notify.provider("hook")
    notify.attempts.labels("hook", "200").inc()
    notify.latency.labels("hook").observe(0.1)
    metrics.known_steps("r", [("pre_deploy", "migrate")])
    metrics.step_duration.labels("r", "pre_deploy", "migrate").observe(1)
    metrics.set_held("r", "AwaitingApproval")
    events = EventMetrics(registry)
    events.matched.labels("r", "true").inc()
    events.age.observe(1)
    leases = LeaseMetrics(registry, shards=2)
    leases.transition(0, "acquired")
    leases.renew_failed(0)
    leases.round_done([0], 2, True)
    pacing = PacingMetrics(registry)
    pacing.resync(30, 30)
    pacing.waited("ecs", "DescribeServices", 0.1)
    pacing.deferred("ecs", "UpdateService")
    families = list(registry.collect())
    return {family.name for family in families}, {
        sample.name for family in families for sample in family.samples
    }


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")
