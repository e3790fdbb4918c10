"""Application metrics of serving tasks: Prometheus endpoints and CloudWatch data.

For analysis gates: a task of an *instrumented* image (``errorRate`` or
``latencyMs``, ``traffic``) exposes, while it runs, a Prometheus endpoint on its
own port of 127.0.0.1 (``metrics_endpoints``) with

- ``http_requests_total{code="200"|"500", cluster, service, task, deployment,
  task_definition_revision}`` (counter), and
- ``http_request_duration_seconds`` (histogram, same labels without ``code``),

growing as the task serves in simulated time ("Metric types" and "Exposition
formats", https://prometheus.io/docs/concepts/metric_types/,
https://prometheus.io/docs/instrumenting/exposition_formats/).  The live
endpoints are listed in a file-SD file (``metrics.fileSdPath`` or
``POST /_sandbox/metrics``), rewritten as tasks start and stop, each target
labelled ``ecs_cluster``, ``ecs_service``, ``ecs_task``, ``ecs_deployment`` and
``ecs_task_definition_revision`` (names that do not clash with the exposed
labels, which Prometheus would otherwise rename ``exported_*``).

Every simulated minute, for each deployment that served in it, the same counts
go to CloudWatch with ``PutMetricData`` (moto's backend, as the simulator drives
target health and alarms): ``RequestCount`` and ``5xxCount`` (Count, the sum over
the minute) and ``LatencyP99`` (Milliseconds) in ``metrics.cloudWatchNamespace``
(``Sandbox/App``), each under three dimension sets: ``ClusterName`` +
``ServiceName``; + ``DeploymentId``; + ``TaskDefinition`` (``family:revision``).
CloudWatch matches dimension sets exactly ("Dimensions",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Dimension),
hence one datum per set.  ``GetMetricData`` metric math is evaluated by
``metric_math``.

Nothing here runs (no port, no thread, no per-minute work) until a task of an
instrumented image exists.  Called under the simulator's lock as one of its
``extensions``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ecsop.sandbox.metrics_endpoints import Endpoints, write_file_sd
from ecsop.sandbox.model import Service, Task, TaskStatus
from ecsop.sandbox.scenario_extras import MetricsOptions
from ecsop.sandbox.traffic import Traffic

if TYPE_CHECKING:
    from ecsop.sandbox.simulator import Simulator

MINUTE = 60.0


@dataclass
class Serving:
    """One instrumented task and where its numbers are labelled."""

    task: Task
    cluster: str
    service: str
    deployment: str
    family: str
    revision: int
    traffic: Traffic
    port: int | None = None

    def serving_seconds(self, at: float) -> float:
        started = self.task.started_at
        if started is None:
            return 0.0
        end = self.task.stopping_at if self.task.stopping_at is not None else math.inf
        return max(0.0, min(at, end) - started)

    def labels(self) -> dict[str, str]:
        return {
            "cluster": self.cluster,
            "service": self.service,
            "task": self.task.id,
            "deployment": self.deployment,
            "task_definition_revision": str(self.revision),
        }


class AppMetrics:
    def __init__(self, sim: Simulator, options: MetricsOptions) -> None:
        self._sim = sim
        self.options = options
        self.file_sd_path = options.file_sd_path
        self._serving: dict[str, Serving] = {}
        self._endpoints: Endpoints | None = None
        self._published: list[dict[str, Any]] | None = None
        self._flushed_until = math.floor(sim.now / MINUTE) * MINUTE
        """CloudWatch holds every minute before this (simulated epoch seconds)."""
        sim.new_task_hooks.append(self.track)
        for service in sim.services.values():
            for deployment in service.deployments:
                for task in deployment.tasks.values():
                    self.track(service, task)

    # -- tasks -------------------------------------------------------------
    def track(self, service: Service, task: Task) -> None:
        traffic = task.plan.traffic
        if traffic is None:
            return
        if not traffic.requests_per_second:
            traffic = dataclasses.replace(
                traffic, requests_per_second=self.options.requests_per_second
            )
        definition = self._sim.task_definitions_by_arn[task.task_definition_arn]
        self._serving[task.arn] = Serving(
            task,
            service.cluster.name,
            service.name,
            task.deployment_id,
            definition.family,
            definition.revision,
            traffic,
        )

    def advance_to(self, until: float) -> None:
        if not self._serving:
            self._flushed_until = max(self._flushed_until, math.floor(until / MINUTE) * MINUTE)
            return
        if self.options.cloud_watch:
            while self._flushed_until + MINUTE <= until:
                self._put_minute(self._flushed_until)
                self._flushed_until += MINUTE
        else:
            self._flushed_until = math.floor(until / MINUTE) * MINUTE
        self._reconcile()

    def _reconcile(self) -> None:
        """Open ports of running tasks, close those of stopped ones, refresh the file."""
        for arn, serving in list(self._serving.items()):
            status = serving.task.last_status
            alive = serving.task.started_at is not None and status is not TaskStatus.STOPPED
            if alive and serving.port is None:
                serving.port = self._endpoints_started().open(arn)
            elif not alive and serving.port is not None:
                self._endpoints_started().close(arn)
                serving.port = None
            stopped_at = serving.task.stopped_at
            if status is TaskStatus.STOPPED and (stopped_at or 0) < self._flushed_until:
                del self._serving[arn]  # its port is closed and its minutes are in CloudWatch
        self._publish()

    def _endpoints_started(self) -> Endpoints:
        if self._endpoints is None:
            self._endpoints = Endpoints(self.render, self._sim.sync, self._ticking)
        return self._endpoints

    def _ticking(self) -> bool:
        return self._sim.clock.speed > 0

    # -- Prometheus --------------------------------------------------------
    def targets(self) -> list[dict[str, Any]]:
        """The file-SD groups of the tasks serving now, one target each."""
        groups = []
        for serving in self._serving.values():
            if serving.port is None:
                continue
            groups.append(
                {
                    "targets": [f"127.0.0.1:{serving.port}"],
                    "labels": {f"ecs_{k}": v for k, v in serving.labels().items()},
                }
            )
        return sorted(groups, key=lambda g: str(g["targets"][0]))

    def set_file_sd_path(self, path: str | None) -> None:
        self.file_sd_path = path
        self._published = None
        self._publish()

    def _publish(self) -> None:
        groups = self.targets()
        if self.file_sd_path is not None and groups != self._published:
            write_file_sd(self.file_sd_path, groups)
            self._published = groups

    def render(self, arn: str) -> bytes | None:
        """The task's metrics as of the simulated now (None: no such endpoint)."""
        with self._sim.lock:
            now = self._sim.sync()
            serving = self._serving.get(arn)
            if serving is None or serving.port is None:
                return None
            return exposition(serving, now).encode()

    # -- CloudWatch --------------------------------------------------------
    def _put_minute(self, start: float) -> None:
        sums: dict[tuple[str, str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for serving in self._serving.values():
            before = serving.traffic.counts(serving.serving_seconds(start))
            after = serving.traffic.counts(serving.serving_seconds(start + MINUTE))
            requests, errors = after[0] - before[0], after[1] - before[1]
            if requests <= 0:
                continue
            key = (
                serving.cluster,
                serving.service,
                serving.deployment,
                f"{serving.family}:{serving.revision}",
            )
            found = sums[key]
            found[0] += requests
            found[1] += errors
            found[2] = max(found[2], serving.traffic.latency_ms)
        if not sums:
            return
        stamp = dt.datetime.fromtimestamp(start, dt.UTC).replace(tzinfo=None)
        data = []
        for (cluster, service, deployment, definition), (served, failed, p99) in sums.items():
            service_dims = [
                {"Name": "ClusterName", "Value": cluster},
                {"Name": "ServiceName", "Value": service},
            ]
            for dims in (
                service_dims,
                [*service_dims, {"Name": "DeploymentId", "Value": deployment}],
                [*service_dims, {"Name": "TaskDefinition", "Value": definition}],
            ):
                for name, value, unit in (
                    ("RequestCount", served, "Count"),
                    ("5xxCount", failed, "Count"),
                    ("LatencyP99", p99, "Milliseconds"),
                ):
                    data.append(
                        {
                            "MetricName": name,
                            "Value": float(value),
                            "Unit": unit,
                            "Timestamp": stamp,
                            "Dimensions": dims,
                        }
                    )
        self._cloudwatch().put_metric_data(self.options.cloud_watch_namespace, data)

    def _cloudwatch(self) -> Any:
        from moto.cloudwatch.models import cloudwatch_backends

        return cloudwatch_backends[self._sim.account_id][self._sim.region]

    def close(self) -> None:
        if self._endpoints is not None:
            self._endpoints.stop()
        if self.file_sd_path is not None and self._published:
            write_file_sd(self.file_sd_path, [])


def exposition(serving: Serving, now: float) -> str:
    """The task's counters and histogram in the Prometheus text format 0.0.4."""
    traffic = serving.traffic
    total, errors = traffic.counts(serving.serving_seconds(now))
    labels = serving.labels()

    def series(name: str, extra: dict[str, str], value: float | int) -> str:
        merged = {**labels, **extra}
        inside = ",".join(f'{k}="{_escape(v)}"' for k, v in merged.items())
        return f"{name}{{{inside}}} {value}"

    lines = [
        "# HELP http_requests_total HTTP requests the task answered, by status code.",
        "# TYPE http_requests_total counter",
        series("http_requests_total", {"code": "200"}, total - errors),
        series("http_requests_total", {"code": "500"}, errors),
        "# HELP http_request_duration_seconds Time the task took to answer.",
        "# TYPE http_request_duration_seconds histogram",
    ]
    for le, count in traffic.buckets(total):
        lines.append(series("http_request_duration_seconds_bucket", {"le": repr(le)}, count))
    lines.append(series("http_request_duration_seconds_bucket", {"le": "+Inf"}, total))
    lines.append(
        series("http_request_duration_seconds_sum", {}, round(total * traffic.mean_seconds(), 6))
    )
    lines.append(series("http_request_duration_seconds_count", {}, total))
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
