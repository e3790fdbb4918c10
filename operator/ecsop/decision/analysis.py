"""Judging analysis measurements: one value against the spec's comparisons, and in a row.

``ecsop.probes.analysis`` runs the queries of ``rollout.analysis`` and folds
each measurement into an ``AnalysisState`` with ``measured``; the decision
reads the states from ``Health.analyses`` (``gates.health_failure`` rolls back
a failing one; an unknown one is in ``Health.unknown``, so the release waits).
The rules live here, pure, so every case is a table-driven unit test:

- a measurement **passes**, **fails**, is **inconclusive** (no data, NaN, or
  ``inconclusiveIf``; with both ``failIf`` and ``successIf``, a value satisfying
  neither), or is an **error** (the query could not be run);
- a passed measurement resets the count of failures in a row, a failed one
  adds one, and inconclusive or erring ones leave it as it is: they are
  evidence of nothing;
- the gate fails when more than ``failuresAllowed`` failed in a row; it is
  green only while its latest measurement passed.

The placeholders of a query are filled from what this pass judges
(``placeholder_values``), so one query fits every release and every stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from ecsop.decision.ecs_state import Deployment, short_name
from ecsop.decision.observation import Observation, fingerprint_of
from ecsop.spec.analysis import Analysis
from ecsop.spec.model import ServiceRelease, cluster_name, parse_arn
from ecsop.spec.query_text import PLACEHOLDERS
from ecsop.spec.quoting import redacted

KEPT = 10
"""Measurements kept per analysis (the newest), for status and the log."""
NO_STABLE_DEPLOYMENT = "none"
"""``{{stableDeployment}}`` when no deployment of the last-good revision serves any more."""
STALE_SLACK_SECONDS = 60.0
"""Beyond two intervals, how long the next measurement may take (a query's time box,
CloudWatch's retries, a busy pool) before the latest no longer stands for now."""


class MeasurementVerdict(StrEnum):
    """What one measurement says: the ``verdict`` label of ``ecsop_analysis_measurements_total``."""

    PASSED = "passed"
    """The value satisfies ``successIf``, or does not satisfy ``failIf``."""
    FAILED = "failed"
    """The value satisfies ``failIf``, or does not satisfy ``successIf`` (given alone)."""
    INCONCLUSIVE = "inconclusive"
    """No data (an empty result, NaN), ``inconclusiveIf``, or between failIf and successIf."""
    ERROR = "error"
    """The query could not be run (unreachable, a query error, an AWS error, a timeout)."""


@dataclass(frozen=True)
class Measurement:
    """One measurement of one analysis: when, what value, and what it says."""

    at: datetime
    verdict: MeasurementVerdict
    value: float | None
    """None: no value (no data, or an error)."""
    detail: str
    """In a few words: ``0.034 > 0.01``, ``no data``, ``Prometheus unreachable: ...``."""


@dataclass(frozen=True)
class AnalysisState:
    """An analysis gate of the judged rollout: its latest measurements and where it stands."""

    name: str
    failures_allowed: int
    consecutive_failures: int = 0
    """Failed measurements in a row (inconclusive and erring ones neither count nor reset)."""
    measurements: tuple[Measurement, ...] = ()
    """The newest ``KEPT``, oldest first."""
    stale: str = ""
    """Why the latest measurement is too old to judge by ("" when it is recent): ``as_of``."""

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > self.failures_allowed

    @property
    def latest(self) -> Measurement | None:
        return self.measurements[-1] if self.measurements else None

    @property
    def failure_detail(self) -> str:
        """``error-rate 0.034 > 0.01 twice in a row``: what a rollback's reason says."""
        last = next(
            (m for m in reversed(self.measurements) if m.verdict is MeasurementVerdict.FAILED),
            None,
        )
        what = last.detail if last else "failed"
        return f"{self.name} {what}{_in_a_row(self.consecutive_failures)}"

    @property
    def unknown(self) -> str:
        """Why this gate is neither green nor failing now ("" when it is either)."""
        if self.failing:
            return ""
        latest = self.latest
        if latest is None:
            return "no measurement yet"
        if self.stale:
            return self.stale
        if latest.verdict is MeasurementVerdict.PASSED:
            return ""
        if latest.verdict is MeasurementVerdict.INCONCLUSIVE:
            return f"inconclusive: {latest.detail}"
        if latest.verdict is MeasurementVerdict.ERROR:
            return f"cannot be measured: {latest.detail}"
        return (
            f"{latest.detail}, {self.consecutive_failures} failed in a row of "
            f"{self.failures_allowed} allowed"
        )

    @property
    def state(self) -> str:
        """``passing``, ``failing`` or ``unknown``, as status shows it."""
        if self.failing:
            return "failing"
        return "unknown" if self.unknown else "passing"


def _in_a_row(count: int) -> str:
    if count <= 1:
        return ""
    return " twice in a row" if count == 2 else f" {count} times in a row"


def number(value: float) -> str:
    """A measured value in a message: four significant digits (``0.0341``, ``+Inf``)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"


def judge(analysis: Analysis, value: float | None) -> tuple[MeasurementVerdict, str]:
    """What ``value`` (None: no data) says under ``analysis``'s comparisons, and why."""
    if value is None or math.isnan(value):
        return MeasurementVerdict.INCONCLUSIVE, "no data" if value is None else "NaN (no data)"
    shown = number(value)
    inconclusive = analysis.inconclusive_comparison
    if inconclusive is not None and inconclusive.holds(value):
        return MeasurementVerdict.INCONCLUSIVE, f"{shown} {inconclusive} (inconclusiveIf)"
    fail, success = analysis.fail_comparison, analysis.success_comparison
    if fail is not None and fail.holds(value):
        return MeasurementVerdict.FAILED, f"{shown} {fail}"
    if success is None:
        return MeasurementVerdict.PASSED, f"{shown}, not {fail}"
    if success.holds(value):
        return MeasurementVerdict.PASSED, f"{shown} {success}"
    if fail is None:
        return MeasurementVerdict.FAILED, f"{shown}, not {success}"
    return MeasurementVerdict.INCONCLUSIVE, f"{shown}, neither {fail} nor {success}"


def measured(state: AnalysisState, measurement: Measurement) -> AnalysisState:
    """``state`` after ``measurement``: kept, and the failures in a row counted."""
    count = state.consecutive_failures
    if measurement.verdict is MeasurementVerdict.PASSED:
        count = 0
    elif measurement.verdict is MeasurementVerdict.FAILED:
        count += 1
    return replace(
        state,
        consecutive_failures=count,
        measurements=(*state.measurements, measurement)[-KEPT:],
    )


def stale_after(analysis: Analysis) -> float:
    """Seconds after which an analysis's latest measurement no longer stands for now."""
    return 2 * analysis.interval_seconds + STALE_SLACK_SECONDS


def as_of(state: AnalysisState, analysis: Analysis, silent_seconds: float) -> AnalysisState:
    """``state`` as a pass reads it, ``silent_seconds`` after its latest measurement ended.

    A measurement can hang past its time box (an answer dripped a byte at a
    time trips no read timeout) or wait behind others in the pool; meanwhile
    an old pass must not keep the gate green through a bake: the gate is
    unknown until a measurement lands. Failures in a row stand: they happened.
    """
    latest = state.latest
    if latest is None or silent_seconds <= stale_after(analysis):
        return replace(state, stale="")
    return replace(
        state,
        stale=(
            f"no measurement for {int(silent_seconds)}s (one every "
            f"{analysis.interval_seconds:g}s): the latest, {latest.verdict.value}, is too old "
            "to judge by"
        ),
    )


def placeholder_values(
    release: ServiceRelease, region: str, observed: Observation, deployment: Deployment
) -> dict[str, str]:
    """The value of every placeholder that has one for ``deployment``, judged this pass.

    A placeholder missing from the result (``stableTaskDefinition`` before a
    revision is proven, ``targetGroup`` without a load balancer) makes the
    measurement an error naming it (``missing_value``), never a guess.
    """
    spec = release.spec
    service_arn = parse_arn(spec.service, "service")
    values = {
        "release": release.name,
        "cluster": cluster_name(spec.cluster),
        "service": service_arn.name if service_arn else spec.service,
        "region": region,
        "deployment": deployment.id,
        "taskDefinition": short_name(deployment.task_definition),
        "revision": _revision_number(deployment.task_definition),
    }
    judged = fingerprint_of(release, observed.task_definitions.get(deployment.task_definition))
    if judged:
        values["fingerprint"] = judged
    memory = observed.memory
    if memory.last_good and memory.vouches_for_last_good(observed.service.arn, release.name):
        values["stableTaskDefinition"] = short_name(memory.last_good)
        values["stableRevision"] = _revision_number(memory.last_good)
    # The old revision's deployment serves beside the judged one during a rollout (and a
    # canary or linear shift), then goes: "none" matches no series, so a comparison
    # query stays well-defined (its author says what no stable traffic means).
    stable = [
        other.id
        for other in observed.service.deployments
        if memory.last_good
        and other.task_definition == memory.last_good
        and other.id != deployment.id
    ]
    values["stableDeployment"] = stable[0] if stable else NO_STABLE_DEPLOYMENT
    if observed.service.load_balancers:
        arn = _judged_target_group(observed, deployment)
        dimension = arn.split(":", 5)[-1]  # targetgroup/NAME/ID, as CloudWatch's dimension
        values["targetGroup"] = dimension
        values["targetGroupName"] = dimension.split("/")[1] if "/" in dimension else dimension
    return values


def _judged_target_group(observed: Observation, deployment: Deployment) -> str:
    """The first load balancer's target group that ``deployment``'s tasks serve from.

    A rolling update has one. Blue/green, canary and linear alternate green
    between the target group and ``alternateTargetGroupArn`` every deployment,
    while the service keeps naming the first: during a shift green's is the one
    the pass's ``Traffic`` read from the target service revision.
    """
    balancer = observed.service.load_balancers[0]
    traffic = observed.traffic
    if (
        traffic is not None
        and traffic.target_task_definition == deployment.task_definition
        and traffic.green_target_group
        in (balancer.target_group_arn, balancer.alternate_target_group_arn)
    ):
        return traffic.green_target_group
    return balancer.target_group_arn


def _revision_number(arn: str) -> str:
    """``...:task-definition/api:42`` -> ``42``."""
    return short_name(arn).rpartition(":")[2]


def missing_value(name: str) -> str:
    """Why a measurement could not be made: a placeholder has no value now."""
    what = PLACEHOLDERS.get(name, "no such placeholder")
    return f"placeholder {{{{{name}}}}} has no value now ({what})"


def describe(analysis: Analysis, default_address: str = "") -> str:
    """One line for ``ecsop plan``: what is queried, how often, and when it fails."""
    rules = [f"fails if {analysis.fail_if}" if analysis.fail_if else ""]
    rules.append(f"passes if {analysis.success_if}" if analysis.success_if else "")
    allowed = analysis.failures_allowed
    tolerance = f", {allowed} failure{'s' if allowed != 1 else ''} in a row allowed"
    if analysis.prometheus is not None:
        address = analysis.prometheus.address or default_address or "the daemon's --prometheus-url"
        source = f"Prometheus {redacted(address)}: {' '.join(analysis.prometheus.query.split())}"
    else:
        assert analysis.cloudwatch is not None
        cloudwatch = analysis.cloudwatch
        source = (
            f"CloudWatch GetMetricData ({len(cloudwatch.metric_data_queries)} queries, result "
            f"{cloudwatch.result_id}, last {cloudwatch.lookback_seconds}s)"
        )
    return (
        f"{analysis.name}: every {analysis.interval_seconds:g}s, "
        f"{', '.join(r for r in rules if r)}{tolerance if allowed else ''}; {source}"
    )
