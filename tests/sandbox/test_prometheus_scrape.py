"""A real Prometheus discovers the sandbox's tasks by file SD and sees their error ratios.

The gate an operator would write: the rate of 500s over the rate of all requests,
per service. An image with ``errorRate: 0.03`` shows ~0.03, a healthy one 0.
The sandbox clock runs 10 times faster than real time, so a few seconds of
scraping hold a minute of simulated traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sandbox_harness import IMAGES, Harness, scenario, service_spec

from prometheus_process import Prometheus, binary, scraping_files, wait_for

pytestmark = pytest.mark.sandbox

THREE_PERCENT = "registry.example/api@sha256:" + "7" * 64
HEALTHY = "registry.example/api@sha256:" + "8" * 64
RATIO = (
    'sum by (service) (rate(http_requests_total{job="ecs", code="500"}[10s]))'
    ' / sum by (service) (rate(http_requests_total{job="ecs"}[10s]))'
)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[Path], Prometheus]]:
    executable = binary()
    started: list[Prometheus] = []

    def start(file_sd: Path) -> Prometheus:
        server = Prometheus(executable, tmp_path, scraping_files(file_sd))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_prometheus_sees_each_images_error_ratio(
    start_sandbox: Callable[..., Harness],
    prometheus: Callable[[Path], Prometheus],
    tmp_path: Path,
) -> None:
    file_sd = tmp_path / "ecs-tasks.json"
    start_sandbox(
        scenario(
            {"canary": service_spec(image=THREE_PERCENT), "stable": service_spec(image=HEALTHY)},
            clockSpeed=10,
            images={
                **IMAGES,
                THREE_PERCENT: {"behavior": "healthy", "errorRate": 0.03, "latencyMs": 300},
                HEALTHY: {"behavior": "healthy", "errorRate": 0.0},
            },
            metrics={"fileSdPath": str(file_sd)},
        )
    )
    server = prometheus(file_sd)
    wait_for(lambda: len(server.query('up{job="ecs"} == 1')) == 4, 60, "four tasks scraped")

    def enough() -> bool:
        # about 9 scrapes in the window: 10 rps x 10 (clock speed) x 9 s x 2 tasks
        served = server.query('sum by (service) (increase(http_requests_total{job="ecs"}[10s]))')
        return len(served) == 2 and all(float(s["value"][1]) >= 1000 for s in served)

    wait_for(enough, 60, "ten seconds of traffic")
    ratios = {r["metric"]["service"]: float(r["value"][1]) for r in server.query(RATIO)}
    assert ratios["canary"] == pytest.approx(0.03, abs=0.004)
    assert ratios["stable"] == 0.0
    p99 = server.query(
        "histogram_quantile(0.99, sum by (service, le) "
        '(rate(http_request_duration_seconds_bucket{service="canary"}[10s])))'
    )
    assert 0.2 <= float(p99[0]["value"][1]) <= 0.5  # 300 ms, within the 0.25-0.5 s bucket
