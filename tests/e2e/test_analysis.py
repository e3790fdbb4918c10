"""Analysis gates end to end: the daemon, the sandbox, and a real Prometheus.

The sandbox's instrumented images serve traffic whose error rate follows the
image (``errorRate``); each task exposes it on a Prometheus endpoint listed in
a file-SD file, which a real Prometheus (Debian's binary) scrapes every
second, and the same counts go to CloudWatch every simulated minute. The
image ``THREE_PERCENT`` is healthy in every other way: it starts, passes its
health checks and fires no alarm, so only its metrics can tell it is bad.

The sandbox clock runs 20 times faster than real time; analyses are measured
every (real) second.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ecsop.probes import prometheus as prometheus_api
from ecsop.spec.model import fingerprint
from prometheus_process import Prometheus, binary, scraping_files

from .conftest import (
    GOOD_V1,
    GOOD_V2,
    Daemon,
    Sandbox,
    SpecRepo,
    digest,
    free_port,
    release_doc,
    wait_for,
)

pytestmark = pytest.mark.e2e
StartDaemon = Callable[..., Daemon]

THREE_PERCENT = digest("three-percent")
ERROR_RATIO = (
    'sum(rate(http_requests_total{deployment="{{deployment}}", code="500"}[5s]))'
    ' / sum(rate(http_requests_total{deployment="{{deployment}}"}[5s]))'
)


def _service(family: str) -> dict[str, Any]:
    return {
        "desiredCount": 2,
        "deploymentConfiguration": {
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        },
        "taskDefinition": {
            "family": family,
            "containerDefinitions": [
                {"name": "app", "image": GOOD_V1, "essential": True, "memory": 256}
            ],
        },
    }


def analysis_scenario(file_sd: Path) -> dict[str, Any]:
    """Three services on instrumented images: ``shop`` and ``web`` judged by analyses,
    ``plain`` by every other gate only."""
    healthy = {"behavior": "healthy", "startSeconds": 5, "errorRate": 0.0, "latencyMs": 40}
    return {
        "region": "us-east-1",
        "clockSpeed": 20,
        "seed": 3,
        "images": {
            GOOD_V1: healthy,
            GOOD_V2: healthy,
            THREE_PERCENT: {**healthy, "errorRate": 0.03},
        },
        "metrics": {"fileSdPath": str(file_sd)},
        "clusters": {
            "prod": {"services": {name: _service(name) for name in ("shop", "web", "plain")}}
        },
    }


@pytest.fixture
def file_sd(tmp_path: Path) -> Path:
    return tmp_path / "ecs-tasks.json"


@pytest.fixture
def sandbox(tmp_path: Path, file_sd: Path) -> Iterator[Sandbox]:
    """This module's sandbox: the conftest's ``start_daemon`` picks it up."""
    box = Sandbox(tmp_path, analysis_scenario(file_sd))
    yield box
    box.stop()


@pytest.fixture
def start_prometheus(tmp_path: Path, file_sd: Path) -> Iterator[Callable[[int], Prometheus]]:
    executable = binary()
    started: list[Prometheus] = []

    def start(port: int) -> Prometheus:
        home = tmp_path / f"prometheus-{port}"
        home.mkdir()
        server = Prometheus(executable, home, scraping_files(file_sd), port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


VERSUS_STABLE = (
    "("
    + ERROR_RATIO
    + ") - (("
    + ERROR_RATIO.replace("{{deployment}}", "{{stableDeployment}}")
    + ") or vector(0))"
)
"""The judged deployment's error ratio above the stable one's (0 once it is gone)."""


def prometheus_analysis(**extra: Any) -> dict[str, Any]:
    return {
        "name": "error-rate",
        "prometheus": {"query": ERROR_RATIO, "timeoutSeconds": 2},
        "failIf": "> 0.01",
        "intervalSeconds": 1,
        "failuresAllowed": 1,
        **extra,
    }


def doc(name: str, image: str, bake: int, analysis: list[dict[str, Any]] | None) -> Any:
    rollout: dict[str, Any] = {"bakeSeconds": bake}
    if analysis is not None:
        rollout["analysis"] = analysis
    return release_doc(name, name, image, **rollout)


def metric(daemon: Daemon, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(daemon.get("/metrics")):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def present(daemon: Daemon, name: str, **labels: str) -> bool:
    return any(
        sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        for family in text_string_to_metric_families(daemon.get("/metrics"))
        for sample in family.samples
    )


def adopt(repo: SpecRepo, start: StartDaemon, docs: dict[str, Any], *flags: str) -> Daemon:
    repo.commit({f"{name}.yaml": body for name, body in docs.items()}, "adopt")
    daemon = start(*flags)
    for name in docs:
        wait_for(lambda n=name: daemon.release(n).get("phase") == "Synced", 30, f"{name} adopted")
    return daemon


def sim_time_of_updates(sandbox: Sandbox, service: str) -> list[float]:
    return [
        call["sim"]
        for call in sandbox.call_log("UpdateService")
        if call["request"].get("service") == service
    ]


def test_prometheus_analysis_passes_a_good_image_and_rolls_back_a_three_percent_error_rate(
    sandbox: Sandbox,
    repo: SpecRepo,
    start_daemon: StartDaemon,
    start_prometheus: Callable[[int], Prometheus],
    tmp_path: Path,
) -> None:
    prometheus = start_prometheus(free_port())
    versus_stable = prometheus_analysis(
        name="versus-stable", prometheus={"query": VERSUS_STABLE}, failuresAllowed=5
    )
    judged = [prometheus_analysis(), versus_stable]
    daemon = adopt(
        repo,
        start_daemon,
        {
            "shop": doc("shop", GOOD_V1, 120, judged),
            "web": doc("web", GOOD_V1, 300, judged),
            "plain": doc("plain", GOOD_V1, 30, None),
        },
        "--prometheus-url",
        prometheus.url,
    )
    assert not present(daemon, "ecsop_analysis_measurements_total"), "Synced: not measured"
    repo.commit(
        {
            "shop.yaml": doc("shop", GOOD_V2, 120, judged),
            "web.yaml": doc("web", THREE_PERCENT, 300, judged),
            "plain.yaml": doc("plain", THREE_PERCENT, 30, None),
        },
        "v2 for shop; the 3% image for web and plain",
    )

    # Only the analysis sees the 3 % error rate: web is rolled back for it ...
    wait_for(lambda: sandbox.failed("web"), 60, "web's failure recorded")
    assert sandbox.failed("web") == fingerprint({"app": THREE_PERCENT})
    assert sandbox.failed_reason("web") == "analysis"
    wait_for(lambda: sandbox.steady_on("web", GOOD_V1), 60, "web back on v1")
    status = wait_for(
        lambda: daemon.release("web") if daemon.release("web")["phase"] == "Degraded" else None,
        20,
        "web Degraded",
    )
    rollout = status["lastRollout"]
    assert (rollout["outcome"], rollout["reason"]) == ("rolled_back", "analysis")
    assert rollout["detail"].startswith("error-rate 0.0")
    # Twice: more only if a loaded machine let a measurement in before the rollback.
    assert re.search(r" > 0\.01 (twice|\d+ times) in a row$", rollout["detail"]), rollout
    measured = float(rollout["detail"].split()[1])
    assert measured == pytest.approx(0.03, abs=0.006)
    # ... before its 300-second bake could have ended (it starts after the deployment does).
    deployed, rolled_back = sim_time_of_updates(sandbox, "web")[-2:]
    assert rolled_back - deployed < 300
    # ... while plain, on the same image with every other gate, is proven good.
    wait_for(lambda: daemon.release("plain").get("phase") == "Synced", 60, "plain Synced")
    assert sandbox.steady_on("plain", THREE_PERCENT) and not sandbox.failed("plain")

    # The good image passes every measurement to Synced, and becomes last-good.
    wait_for(lambda: daemon.release("shop").get("phase") == "Synced", 60, "shop Synced")
    assert sandbox.steady_on("shop", GOOD_V2) and not sandbox.failed("shop")
    assert sandbox.memory("shop").last_good == sandbox.service("shop")["taskDefinition"]
    # ... both analyses: the comparison with the stable deployment too, which reads 0
    # once that deployment is gone ({{stableDeployment}} is "none").
    for shop_analysis in daemon.release("shop")["analysis"]:
        assert shop_analysis["state"] == "passing", shop_analysis
        assert shop_analysis["measurements"][-1]["verdict"] == "passed"
        assert shop_analysis["measurements"][-1]["value"] == 0.0

    # Once judged, a release is measured no more: its latest verdict is withdrawn.
    wait_for(lambda: not present(daemon, "ecsop_analysis_verdict", release="shop"), 10, "withdrawn")
    # /status, the metrics, `ecsop status NAME` and the log tell the same story.
    web_analysis, versus = daemon.release("web")["analysis"]
    assert versus["name"] == "versus-stable"
    assert {m["verdict"] for m in versus["measurements"]} <= {"inconclusive", "failed"}
    assert web_analysis["state"] == "failing" and web_analysis["failedInARow"] >= 2
    assert [m["verdict"] for m in web_analysis["measurements"][-2:]] == ["failed", "failed"]
    assert metric(daemon, "ecsop_rollbacks_total", release="web", reason="analysis") == 1.0
    failed = metric(daemon, "ecsop_analysis_measurements_total", release="web", verdict="failed")
    assert failed >= 2.0
    assert (
        metric(daemon, "ecsop_analysis_measurements_total", release="shop", verdict="passed") >= 1.0
    )
    shown = subprocess.run(
        [sys.executable, "-m", "ecsop", "status", "web", "--url", daemon.url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert all(len(line) <= 80 for line in shown.splitlines()), shown
    assert "analysis error-rate: failing: error-rate 0.0" in shown
    assert "[last rollout rolled_back: analysis]" in shown
    assert sum(" failed " in line for line in shown.splitlines()) >= 2
    logged = [e for e in daemon.logs() if e.get("event") == "analysis measurement"]
    assert {e["release"] for e in logged} == {"shop", "web"}
    assert all(prometheus.url not in str(e) or "@" not in prometheus.url for e in logged)
    assert daemon.stop() == 0


def test_prometheus_down_keeps_the_release_waiting_not_rolled_back_nor_good(
    sandbox: Sandbox,
    repo: SpecRepo,
    start_daemon: StartDaemon,
    start_prometheus: Callable[[int], Prometheus],
) -> None:
    port = free_port()  # nothing listens here until the end of the test
    judged = [prometheus_analysis()]
    daemon = adopt(
        repo,
        start_daemon,
        {"shop": doc("shop", GOOD_V1, 30, judged)},
        "--prometheus-url",
        f"http://ecsop:hunter2@127.0.0.1:{port}",
    )
    before = sandbox.memory("shop")
    repo.commit({"shop.yaml": doc("shop", GOOD_V2, 30, judged)}, "v2")

    waiting = "baked, waiting to judge analysis error-rate (cannot be measured: Prometheus"
    status = wait_for(
        lambda: daemon.release("shop") if waiting in daemon.release("shop")["message"] else None,
        60,
        "the bake waiting for the analysis",
    )
    assert status["phase"] == "Progressing" and status["reason"] == "Baking"
    assert "unreachable" in status["message"]
    assert "hunter2" not in status["message"] and "REDACTED@127.0.0.1" in status["message"]
    # Long past its bake, it is neither rolled back nor recorded as good.
    clock = sandbox.control("GET", "clock")["now"]
    wait_for(lambda: sandbox.control("GET", "clock")["now"] > clock + 120, 30, "2 more minutes")
    after = sandbox.memory("shop")
    assert sandbox.steady_on("shop", GOOD_V2)
    assert after.failed is None and after.last_good == before.last_good
    assert after.deploying == fingerprint({"app": GOOD_V2})
    assert daemon.release("shop")["phase"] == "Progressing"
    assert metric(daemon, "ecsop_analysis_verdict", release="shop", verdict="error") == 1.0
    assert metric(daemon, "ecsop_rollbacks_total", release="shop", reason="analysis") == 0.0
    assert "hunter2" not in daemon.log_path.read_text()
    assert "hunter2" not in daemon.get("/metrics")

    # Prometheus comes back: the good release passes its analysis and is proven.
    start_prometheus(port)
    wait_for(lambda: daemon.release("shop").get("phase") == "Synced", 60, "shop Synced")
    assert sandbox.memory("shop").last_good == sandbox.service("shop")["taskDefinition"]
    assert daemon.release("shop")["analysis"][0]["measurements"][-1]["verdict"] == "passed"
    assert daemon.stop() == 0


def test_a_daemon_killed_mid_rollout_measures_afresh_and_still_rolls_back(
    sandbox: Sandbox,
    repo: SpecRepo,
    start_daemon: StartDaemon,
    start_prometheus: Callable[[int], Prometheus],
) -> None:
    """Measurements live in the process: a restarted daemon starts them again, so it
    neither forgets a bad release nor proves one on measurements it no longer has."""
    prometheus = start_prometheus(free_port())
    judged = [prometheus_analysis()]
    flags = ("--prometheus-url", prometheus.url)
    first = adopt(repo, start_daemon, {"web": doc("web", GOOD_V1, 600, judged)}, *flags)
    proven = sandbox.memory("web").last_good
    repo.commit({"web.yaml": doc("web", THREE_PERCENT, 600, judged)}, "the 3% image")

    def measured_not_failing() -> bool:
        analyses = first.release("web").get("analysis") or []
        return bool(analyses and analyses[0]["measurements"] and not analyses[0]["failedInARow"])

    wait_for(measured_not_failing, 30, "web's rollout measured once")
    first.kill()
    assert not sandbox.failed("web"), "killed before anything was judged"

    second = start_daemon(*flags)
    wait_for(lambda: sandbox.failed_reason("web") == "analysis", 60, "web rolled back")
    wait_for(lambda: sandbox.steady_on("web", GOOD_V1), 60, "web back on v1")
    assert sandbox.memory("web").last_good == proven, "the 3% revision was never proven"
    measured = [
        e
        for e in second.logs()
        if e.get("event") == "analysis measurement" and e.get("release") == "web"
    ]
    assert len([e for e in measured if e["verdict"] == "failed"]) >= 2
    rollback = [e for e in second.logs() if e.get("action") == "Rollback"]
    assert rollback and rollback[0]["failure"] == "analysis"
    assert second.stop() == 0


def cloudwatch_analysis() -> dict[str, Any]:
    def count(query_id: str, metric_name: str) -> dict[str, Any]:
        return {
            "id": query_id,
            "metricStat": {
                "metric": {
                    "namespace": "Sandbox/App",
                    "metricName": metric_name,
                    "dimensions": [
                        {"name": "ClusterName", "value": "{{cluster}}"},
                        {"name": "ServiceName", "value": "{{service}}"},
                        {"name": "DeploymentId", "value": "{{deployment}}"},
                    ],
                },
                "period": 60,
                "stat": "Sum",
            },
            "returnData": False,
        }

    return {
        "name": "error-rate",
        "cloudwatch": {
            "lookbackSeconds": 180,
            "metricDataQueries": [
                count("errors", "5xxCount"),
                count("requests", "RequestCount"),
                {"id": "ratio", "expression": "errors / requests", "label": "5xx ratio"},
            ],
        },
        "failIf": "> 0.01",
        "intervalSeconds": 1,
    }


def test_cloudwatch_metric_math_passes_a_good_image_and_rolls_back_a_bad_one(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    judged = [cloudwatch_analysis()]
    daemon = adopt(
        repo,
        start_daemon,
        {"shop": doc("shop", GOOD_V1, 120, judged), "web": doc("web", GOOD_V1, 900, judged)},
    )
    # `ecsop plan` on the next commit shows the analysis each rollout would run.
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "shop.yaml").write_text(yaml.safe_dump(doc("shop", GOOD_V2, 120, judged)))
    planned = subprocess.run(
        [sys.executable, "-m", "ecsop", "plan", "--specs", str(staged)],
        env={**os.environ, **sandbox.aws_env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "shop: Progressing: would Deploy" in planned.stdout
    assert (
        "    with analysis error-rate: every 1s, fails if > 0.01; CloudWatch GetMetricData "
        "(3 queries, result ratio, last 180s)" in planned.stdout
    ), planned.stdout
    repo.commit(
        {
            "shop.yaml": doc("shop", GOOD_V2, 120, judged),
            "web.yaml": doc("web", THREE_PERCENT, 900, judged),
        },
        "v2 for shop, the 3% image for web",
    )
    wait_for(lambda: sandbox.failed("web"), 90, "web's failure recorded")
    assert sandbox.failed_reason("web") == "analysis"
    rollout = wait_for(lambda: daemon.release("web").get("lastRollout"), 20, "web's rollout")
    assert rollout["reason"] == "analysis"
    name, value, rule = rollout["detail"].split(" ", 2)
    assert (name, rule) == ("error-rate", "> 0.01"), rollout
    # floor(10 x 0.03 x s) 5xx of 10 x s per task: a minute a task served only part of
    # reads low (after 5 s, 1 of 50), so only the bounds are sure.
    assert 0.01 < float(value) <= 0.0301
    deployed, rolled_back = sim_time_of_updates(sandbox, "web")[-2:]
    assert rolled_back - deployed < 900

    wait_for(lambda: daemon.release("shop").get("phase") == "Synced", 90, "shop Synced")
    assert sandbox.memory("shop").last_good == sandbox.service("shop")["taskDefinition"]
    (passing,) = daemon.release("shop")["analysis"]
    assert passing["measurements"][-1] | {"at": None} == {
        "at": None,
        "verdict": "passed",
        "value": 0.0,
        "detail": "0, not > 0.01",
    }
    assert sandbox.calls("GetMetricData") >= 2
    assert daemon.stop() == 0


@pytest.mark.parametrize("timeout", [2.5, 0.25, 10.0])
def test_a_fractional_query_timeout_is_one_a_real_prometheus_reads(
    tmp_path: Path, timeout: float
) -> None:
    """``timeoutSeconds: 2.5`` is a valid spec: sent as ``2.5s``, every measurement was an
    error (Prometheus's durations take whole units), so nothing was ever proven."""
    server = Prometheus(binary(), tmp_path, {"global": {"scrape_interval": "15s"}})
    try:
        assert prometheus_api.instant_query(server.url, "vector(1)", timeout) == 1.0
    finally:
        server.stop()
