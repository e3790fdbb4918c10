"""Per-task application metrics: Prometheus endpoints, file SD, CloudWatch data.

Prometheus's text format and metric types ("Exposition formats", "Metric
types"), ``file_sd_configs`` ("<file_sd_config>"), CloudWatch's exact dimension
matching ("Dimensions", cloudwatch_concepts.html) and metric math
(using-metric-math.html). The clock is frozen; tests step it, and the numbers
are exact because the sandbox's traffic is deterministic (``traffic.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from sandbox_harness import IMAGES, Harness, scenario, service_spec

pytestmark = pytest.mark.sandbox

BAD = "registry.example/api@sha256:" + "7" * 64
FINE = "registry.example/api@sha256:" + "8" * 64
FINE_2 = "registry.example/api@sha256:" + "9" * 63 + "0"
INSTRUMENTED = {
    BAD: {"behavior": "healthy", "startSeconds": 10, "errorRate": 0.03, "latencyMs": 400},
    FINE: {"behavior": "healthy", "startSeconds": 10, "errorRate": 0},
    FINE_2: {"behavior": "healthy", "startSeconds": 10, "latencyMs": 80, "requestsPerSecond": 4},
}


@pytest.fixture
def sd_file(tmp_path: Path) -> Path:
    return tmp_path / "targets" / "ecs.json"


@pytest.fixture
def sb(start_sandbox: Callable[..., Harness], sd_file: Path) -> Harness:
    return start_sandbox(
        scenario(
            {
                "api": service_spec(image=FINE),
                "web": service_spec(image=BAD),
                "plain": service_spec(),
            },
            images={**IMAGES, **INSTRUMENTED},
            metrics={"fileSdPath": str(sd_file)},
        )
    )


def targets(sd_file: Path) -> dict[str, dict[str, str]]:
    """target -> its labels, from the file-SD file."""
    return {g["targets"][0]: g["labels"] for g in json.loads(sd_file.read_text())}


def scrape(target: str) -> dict[str, float]:
    """Samples of one endpoint: 'name{label=value,...}' -> value, task labels dropped."""
    response = requests.get(f"http://{target}/metrics", timeout=5)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in response.text.splitlines():
        if line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        metric, _, labels = name.partition("{")
        kept = [p for p in labels.rstrip("}").split(",") if p.split("=")[0] in ("code", "le")]
        samples[f"{metric}{{{','.join(kept)}}}"] = float(value)
    return samples


def by_service(sd_file: Path, service: str) -> list[str]:
    return sorted(t for t, labels in targets(sd_file).items() if labels["ecs_service"] == service)


def test_every_serving_instrumented_task_has_an_endpoint_in_the_file(
    sb: Harness, sd_file: Path
) -> None:
    found = targets(sd_file)
    assert len(found) == 4  # api and web, two tasks each; "plain" is not instrumented
    for target, labels in found.items():
        assert target.startswith("127.0.0.1:")
        assert set(labels) == {
            "ecs_cluster",
            "ecs_service",
            "ecs_task",
            "ecs_deployment",
            "ecs_task_definition_revision",
        }
        assert labels["ecs_deployment"].startswith("ecs-svc/")
    shown = requests.get(f"{sb.server.endpoint_url}/_sandbox/metrics", timeout=5).json()
    assert {t["targets"][0] for t in shown["targets"]} == set(found)
    assert shown["fileSdPath"] == str(sd_file)


def test_counters_follow_the_behaviour_over_simulated_time(sb: Harness, sd_file: Path) -> None:
    web = by_service(sd_file, "web")[0]
    before = scrape(web)
    sb.advance(100)
    after = scrape(web)
    served = {code: after[f'http_requests_total{{code="{code}"}}'] for code in ("200", "500")}
    gained = {
        code: served[code] - before[f'http_requests_total{{code="{code}"}}'] for code in served
    }
    assert gained == {"200": 970, "500": 30}  # 10 requests a second, 3% of them 500
    total = served["200"] + served["500"]
    assert after["http_request_duration_seconds_count{}"] == total
    assert after['http_request_duration_seconds_bucket{le="+Inf"}'] == total
    buckets = [v for k, v in after.items() if k.startswith("http_request_duration_seconds_bucket")]
    assert buckets == sorted(buckets)  # cumulative
    # p99 400 ms: 99% of requests within 0.5 s, fewer than 99% within 0.25 s.
    assert after['http_request_duration_seconds_bucket{le="0.5"}'] >= 0.99 * total
    assert after['http_request_duration_seconds_bucket{le="0.25"}'] < 0.99 * total
    api = scrape(by_service(sd_file, "api")[0])
    assert api['http_requests_total{code="500"}'] == 0


def test_the_file_follows_tasks_as_they_start_and_stop(sb: Harness, sd_file: Path) -> None:
    old = by_service(sd_file, "api")
    sb.deploy(FINE_2, name="api")
    sb.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED", limit=600)
    new = by_service(sd_file, "api")
    assert len(new) == 2
    assert not set(new) & set(old)
    revisions = {targets(sd_file)[t]["ecs_task_definition_revision"] for t in new}
    assert revisions == {"4"}  # api:1 to api:3 are the three services' own
    for target in old:  # their ports are closed
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{target}/metrics", timeout=2)
    sb.advance(10)
    assert scrape(new[0])['http_requests_total{code="200"}'] > 0


def test_the_file_path_can_be_set_at_run_time(sb: Harness, tmp_path: Path) -> None:
    elsewhere = tmp_path / "other.json"
    response = requests.post(
        f"{sb.server.endpoint_url}/_sandbox/metrics", json={"fileSdPath": str(elsewhere)}, timeout=5
    )
    assert response.status_code == 200
    assert len(targets(elsewhere)) == 4
    bad = requests.post(f"{sb.server.endpoint_url}/_sandbox/metrics", json={"path": 1}, timeout=5)
    assert bad.status_code == 400


def test_no_instrumented_image_means_no_port_and_no_thread(sandbox: Harness) -> None:
    shown = requests.get(f"{sandbox.server.endpoint_url}/_sandbox/metrics", timeout=5).json()
    assert shown["targets"] == []
    sandbox.advance(600)
    assert not [t for t in threading.enumerate() if t.name == "sandbox-task-metrics"]


def metric(name: str, service: str, **dims: str) -> dict[str, Any]:
    dimensions = [
        {"Name": "ClusterName", "Value": "prod"},
        {"Name": "ServiceName", "Value": service},
    ]
    dimensions += [{"Name": k, "Value": v} for k, v in dims.items()]
    return {"Namespace": "Sandbox/App", "MetricName": name, "Dimensions": dimensions}


def window(sb: Harness, minutes: int) -> dict[str, dt.datetime]:
    """StartTime/EndTime for the last ``minutes`` whole minutes of simulated time."""
    now = int(sb.server.clock.now()) // 60 * 60
    end = dt.datetime.fromtimestamp(now, dt.UTC)
    return {"StartTime": end - dt.timedelta(minutes=minutes), "EndTime": end}


def test_cloudwatch_gets_the_same_counts_every_simulated_minute(sb: Harness) -> None:
    sb.advance(600)
    web = sb.service("web")
    deployment = web["deployments"][0]["id"]
    queries = [
        {
            "Id": "requests",
            "MetricStat": {"Metric": metric("RequestCount", "web"), "Period": 60, "Stat": "Sum"},
        },
        {
            "Id": "errors",
            "MetricStat": {
                "Metric": metric("5xxCount", "web", DeploymentId=deployment),
                "Period": 60,
                "Stat": "Sum",
            },
        },
        {
            "Id": "p99",
            "MetricStat": {
                "Metric": metric("LatencyP99", "web", TaskDefinition="api:2"),
                "Period": 60,
                "Stat": "Maximum",
            },
        },
    ]
    results = {
        r["Id"]: r["Values"]
        for r in sb.cloudwatch.get_metric_data(MetricDataQueries=queries, **window(sb, 5))[
            "MetricDataResults"
        ]
    }
    assert results["requests"] == [1200.0] * 5  # 2 tasks x 10/s x 60 s
    assert results["errors"] == [36.0] * 5  # 3%
    assert results["p99"] == [400.0] * 5


def test_get_metric_data_evaluates_metric_math(sb: Harness) -> None:
    sb.advance(600)
    queries = [
        {
            "Id": "requests",
            "MetricStat": {"Metric": metric("RequestCount", "web"), "Period": 60, "Stat": "Sum"},
            "ReturnData": False,
        },
        {
            "Id": "errors",
            "MetricStat": {"Metric": metric("5xxCount", "web"), "Period": 60, "Stat": "Sum"},
            "ReturnData": False,
        },
        {"Id": "ratio", "Expression": "errors / requests", "Label": "error ratio"},
        {"Id": "percent", "Expression": "100 * ratio"},
        {"Id": "worst", "Expression": "MAX([ratio, FILL(ratio, 0)])"},
    ]
    response = sb.cloudwatch.get_metric_data(
        MetricDataQueries=queries, ScanBy="TimestampAscending", **window(sb, 3)
    )
    results = {r["Id"]: r for r in response["MetricDataResults"]}
    assert set(results) == {"ratio", "percent", "worst"}  # ReturnData False is left out
    assert results["ratio"]["Label"] == "error ratio"
    assert results["ratio"]["Values"] == [0.03] * 3
    assert results["percent"]["Values"] == pytest.approx([3.0] * 3)
    assert results["worst"]["Values"] == [0.03] * 3
    stamps = results["ratio"]["Timestamps"]
    assert stamps == sorted(stamps)
