"""Prometheus metrics of the daemon.

Every metric takes an injected ``CollectorRegistry`` so tests build a fresh
one and assert with ``get_sample_value``. Labels are bounded: release names,
phases, outcomes, reasons and AWS operation names; never digests or
deployment ids, which grow without bound.

AWS API calls are counted from botocore's ``needs-retry`` event, which fires
once per HTTP attempt (retries included), so the count is what AWS bills
against the account's API quota, not what the code meant to call.

Every label value goes through ``label``, inside the metric classes themselves
(so callers elsewhere, the recorder and the controller, get it too): one value
that UTF-8 cannot encode (a file name's undecodable byte, a YAML ``"\\udcff"``)
would otherwise make every scrape of ``/metrics`` fail.
"""

from __future__ import annotations

import threading
from contextlib import suppress
from typing import Any, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry

from ecsop import __version__
from ecsop.decision.analysis import MeasurementVerdict
from ecsop.decision.reasons import HELD, Failure, Outcome, Phase
from ecsop.observability.release_metrics import ReleaseFamily
from ecsop.spec.quoting import printable

DURATION_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
RESTORE_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
"""Time to restore: seconds (blue/green's instant rollback) to half an hour (a slow rolling one)."""
OUTCOMES = tuple(o.value for o in Outcome)
"""The ``outcome`` label values of ``ecsop_deployments_total``."""
ROLLBACK_REASONS = tuple(f.value for f in Failure if f is not Failure.ROLLBACK_FAILED)
"""The ``reason`` label values of ``ecsop_rollbacks_total`` (a failed rollback is not one)."""
STEP_OUTCOMES = ("succeeded", "failed", "timeout")
"""The ``outcome`` label values of ``ecsop_steps_total``."""
STEP_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)


def label(value: object) -> str:
    """A label value every scrape can encode: unsafe characters escaped (``\\xff``, ``\\n``)."""
    return printable(str(value))


_Metric = TypeVar("_Metric", bound="_SafeLabels")


class _SafeLabels(prometheus_client.metrics.MetricWrapperBase):
    """A metric whose label values all pass through ``label``, whoever sets them."""

    def labels(self: _Metric, *labelvalues: object, **labelkwargs: object) -> _Metric:
        return super().labels(
            *(label(v) for v in labelvalues), **{k: label(v) for k, v in labelkwargs.items()}
        )

    def remove(self, *labelvalues: Any) -> None:
        super().remove(*(label(v) for v in labelvalues))


class Counter(_SafeLabels, prometheus_client.Counter):
    pass


class Gauge(_SafeLabels, prometheus_client.Gauge):
    pass


class Histogram(_SafeLabels, prometheus_client.Histogram):
    pass


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.release_info = Gauge(
            "ecsop_release_info",
            "A managed release (always 1).",
            ["release", "cluster", "service", "region"],
            registry=registry,
        )
        self.release_synced = Gauge(
            "ecsop_release_synced",
            "1 when the service runs the desired fingerprint.",
            ["release"],
            registry=registry,
        )
        self.release_phase = ReleaseFamily(
            "ecsop_release_phase",
            "The release's phase, one-hot.",
            "gauge",
            ["release", "phase"],
            registry,
            label,
            domain=[label(p.value) for p in Phase],
        )
        self.deployments = ReleaseFamily(
            "ecsop_deployments_total",
            "Rollouts judged, by outcome (succeeded, rolled_back, failed).",
            "counter",
            ["release", "outcome"],
            registry,
            label,
            domain=[label(o) for o in OUTCOMES],
        )
        self.rollbacks = ReleaseFamily(
            "ecsop_rollbacks_total",
            "Rollbacks, by failure reason.",
            "counter",
            ["release", "reason"],
            registry,
            label,
            domain=[label(r) for r in ROLLBACK_REASONS],
        )
        self.deployment_duration = Histogram(
            "ecsop_deployment_duration_seconds",
            "From deployment creation to the revision recorded as last-good.",
            ["release"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.last_success = Gauge(
            "ecsop_last_successful_deploy_timestamp_seconds",
            "When a rollout last succeeded (Unix time).",
            ["release"],
            registry=registry,
        )
        self.reconciles = Counter(
            "ecsop_reconcile_total",
            "Reconcile passes, by result (success, requeue, error).",
            ["release", "result"],
            registry=registry,
        )
        self.reconcile_duration = Histogram(
            "ecsop_reconcile_duration_seconds",
            "Time of one reconcile pass.",
            registry=registry,
        )
        self.resync_unchanged = Counter(
            "ecsop_resync_unchanged_total",
            "Releases a resync found exactly as their last pass left them (in sync, "
            "nothing changed or written since): not reconciled again.",
            registry=registry,
        )
        self.workqueue_depth = Gauge(
            "ecsop_workqueue_depth", "Releases waiting in the work queue.", registry=registry
        )
        self.workqueue_retries = Counter(
            "ecsop_workqueue_retries_total",
            "Rate-limited requeues after errors.",
            registry=registry,
        )
        self.loop_errors = Counter(
            "ecsop_loop_errors_total",
            "Iterations of the daemon's loops that failed unexpectedly (and carried on).",
            ["loop"],
            registry=registry,
        )
        self.rollout_stage = Gauge(
            "ecsop_rollout_stage",
            "1 for the stage of a traffic-shifting rollout under way (ECS's lifecycleStage).",
            ["release", "strategy", "stage"],
            registry=registry,
        )
        self.rollout_production_weight = Gauge(
            "ecsop_rollout_production_weight",
            "Percent of production traffic on the new revision while a rollout shifts it.",
            ["release"],
            registry=registry,
        )
        self.time_to_restore = Histogram(
            "ecsop_time_to_restore_seconds",
            "From a failure seen to production traffic fully back on the last-good revision.",
            ["release", "strategy"],
            buckets=RESTORE_BUCKETS,
            registry=registry,
        )
        self.memory_write_failures = Counter(
            "ecsop_memory_write_failures_total",
            "Times ecsop acted but could not record it in the service's tags.",
            ["release"],
            registry=registry,
        )
        self.steps = Counter(
            "ecsop_steps_total",
            "Steps (one-off tasks of spec.preDeploy and spec.verify) that ended, by outcome "
            "(succeeded, failed, timeout).",
            ["release", "kind", "step", "outcome"],
            registry=registry,
        )
        self.step_duration = Histogram(
            "ecsop_step_duration_seconds",
            "From a step's task being created to its stop.",
            ["release", "kind", "step"],
            buckets=STEP_BUCKETS,
            registry=registry,
        )
        self.aws_calls = Counter(
            "ecsop_aws_api_calls_total",
            "AWS API HTTP attempts, by service, operation and result code.",
            ["service", "operation", "code"],
            registry=registry,
        )
        self.spec_errors = Gauge(
            "ecsop_spec_errors", "Problems found in the spec directory.", registry=registry
        )
        self.spec_error_info = Gauge(
            "ecsop_spec_error_info",
            "Spec files with problems (1 per file).",
            ["file"],
            registry=registry,
        )
        self.spec_revision = Gauge(
            "ecsop_spec_revision_info",
            "The git commit of the spec directory.",
            ["commit"],
            registry=registry,
        )
        self.release_held = ReleaseFamily(
            "ecsop_release_held",
            "1 when a new release is held before deploying, by why (one-hot; all 0: not held).",
            "gauge",
            ["release", "reason"],
            registry,
            label,
            domain=[label(h.value) for h in HELD],
        )
        self.build_info = Gauge(
            "ecsop_build_info", "ecsop's version.", ["version"], registry=registry
        )
        self.build_info.labels(version=__version__).set(1)
        self.analysis_measurements = Counter(
            "ecsop_analysis_measurements_total",
            "Analysis measurements (rollout.analysis), by verdict: passed, failed, "
            "inconclusive, error.",
            ["release", "analysis", "verdict"],
            registry=registry,
        )
        self.analysis_verdict = Gauge(
            "ecsop_analysis_verdict",
            "1 for the verdict of an analysis's latest measurement, while its rollout is judged.",
            ["release", "analysis", "verdict"],
            registry=registry,
        )
        self._lock = threading.Lock()
        self._info: dict[str, tuple[str, str, str]] = {}
        """release -> (cluster, service, region) of its ``ecsop_release_info`` series."""

    # --- releases ---------------------------------------------------------------

    def set_release(
        self, name: str, cluster: str, service: str, region: str, phase: Phase, synced: bool
    ) -> None:
        """Publish a release's identity, phase and sync state after a pass.

        On a release's first pass its counters are created at 0 for every
        outcome and reason: ``increase()`` cannot see a series' first sample,
        so a rollback counter born at 1 would never fire the rollback alert.
        When the release's cluster, service or region changes (an invalid spec
        becoming valid), the old ``ecsop_release_info`` series is removed.
        """
        info = (cluster, service, region)
        with self._lock:
            before = self._info.get(name)
            self._info[name] = info
        if before != info:
            if before is not None:
                with suppress(KeyError):
                    self.release_info.remove(name, *before)
            for outcome in OUTCOMES:
                self.deployments.labels(name, outcome)
            for reason in ROLLBACK_REASONS:
                self.rollbacks.labels(name, reason)
        self.release_info.labels(name, *info).set(1)
        self.release_synced.labels(name).set(1 if synced else 0)
        for each in Phase:
            self.release_phase.labels(name, each.value).set(1 if each is phase else 0)

    def forget_release(self, name: str) -> None:
        """A release left the spec directory: drop its series so alerts on it resolve.

        ``ecsop_reconcile_total`` is left alone: the worker counts the pass that
        noticed the release vanish after this returns.
        """
        with self._lock:
            self._info.pop(name, None)
        for metric in (
            self.release_info,
            self.release_synced,
            self.release_phase,
            self.deployments,
            self.rollbacks,
            self.deployment_duration,
            self.last_success,
            self.memory_write_failures,
            self.rollout_stage,
            self.rollout_production_weight,
            self.time_to_restore,
            self.analysis_measurements,
            self.analysis_verdict,
            self.steps,
            self.step_duration,
            self.release_held,
        ):
            _remove_release(metric, name)

    def set_rollout(self, name: str, strategy: str, stage: str, production: float | None) -> None:
        """Show where a traffic-shifting rollout is; an empty ``stage`` clears it."""
        _remove_release(self.rollout_stage, name)
        _remove_release(self.rollout_production_weight, name)
        if stage:
            self.rollout_stage.labels(name, strategy, stage).set(1)
            if production is not None:
                self.rollout_production_weight.labels(name).set(production)

    # --- analysis -----------------------------------------------------------------

    def analysis_measured(self, release: str, analysis: str, verdict: MeasurementVerdict) -> None:
        """Count one measurement and publish it as the analysis's latest verdict.

        Every verdict's counter exists from the first measurement on, at 0, so
        ``increase()`` sees the first failure (as ``set_release`` does for rollbacks).
        """
        for each in MeasurementVerdict:
            self.analysis_measurements.labels(release, analysis, each.value)
            self.analysis_verdict.labels(release, analysis, each.value).set(
                1 if each is verdict else 0
            )
        self.analysis_measurements.labels(release, analysis, verdict.value).inc()

    def analysis_stopped(self, release: str) -> None:
        """``release``'s analyses are no longer measured: its latest verdicts are withdrawn."""
        _remove_release(self.analysis_verdict, release)

    def known_steps(self, name: str, steps: list[tuple[str, str]]) -> None:
        """Create ``ecsop_steps_total`` at 0 for each (kind, step) of a release's spec.

        Step names are bounded by the spec (at most five of each kind), so the
        ``step`` label is too; born at 0, a first failure is an ``increase()``.
        """
        for kind, step in steps:
            for outcome in STEP_OUTCOMES:
                self.steps.labels(name, kind, step, outcome)

    def set_held(self, name: str, reason: str) -> None:
        """The release's pass ended held for ``reason`` (one of ``HELD``), or not held."""
        for each in HELD:
            self.release_held.labels(name, each.value).set(1 if each.value == reason else 0)

    # --- spec directory -----------------------------------------------------------

    def set_specs(self, error_files: list[str], error_count: int, commit: str | None) -> None:
        self.spec_errors.set(error_count)
        self.spec_error_info.clear()
        for file in sorted(set(error_files)):
            self.spec_error_info.labels(file).set(1)
        self.spec_revision.clear()
        if commit:
            self.spec_revision.labels(commit).set(1)

    # --- AWS ----------------------------------------------------------------------

    def instrument(self, client: Any) -> None:
        """Count every HTTP attempt ``client`` makes, from botocore's events."""
        client.meta.events.register("needs-retry", self._count_attempt)

    def _count_attempt(self, **kwargs: Any) -> None:
        operation = kwargs.get("operation")
        if operation is None:
            return
        response = kwargs.get("response")
        if response is not None:
            http, parsed = response
            code = (parsed or {}).get("Error", {}).get("Code") or str(http.status_code)
        else:
            exception = kwargs.get("caught_exception")
            code = type(exception).__name__ if exception is not None else "unknown"
        service = operation.service_model.endpoint_prefix
        self.aws_calls.labels(service, operation.name, code).inc()


def _remove_release(metric: Any, name: str) -> None:
    """Remove every child of ``metric`` whose ``release`` label is ``name``."""
    if isinstance(metric, ReleaseFamily):
        metric.forget(name)
        return
    stale = set()
    for family in metric.collect():
        for sample in family.samples:
            if sample.labels.get("release") == label(name):
                # Label order is the metric's label names, then a histogram's "le".
                stale.add(tuple(v for k, v in sample.labels.items() if k != "le"))
    for values in stale:
        with suppress(KeyError):
            metric.remove(*values)
