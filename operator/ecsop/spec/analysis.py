"""Analysis gates in the spec: ``rollout.analysis``, metric queries a rollout is judged by.

Each analysis is one query, Prometheus (PromQL, an instant query) or
CloudWatch (``GetMetricData`` queries, metric math allowed), whose scalar
result is compared with ``failIf`` / ``successIf``. A comparison is parsed
here, an operator and a number, and never evaluated as code. Query text may
name placeholders (``{{release}}``, ``{{deployment}}`` ...) that the probe
fills for the deployment it judges; an unknown one is refused here, at its
line.

The CloudWatch queries have ``GetMetricData``'s shape with the spec's
camelCase keys (``metricStat.metric.metricName``, as Argo Rollouts' CloudWatch
provider writes them); ``ecsop.aws.metric_data`` capitalises each key back to
the API's (``MetricStat.Metric.MetricName``). The rules checked here are the
API reference's ("GetMetricData", "MetricDataQuery", "MetricStat",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDataQuery.html).

Pure, like ``ecsop.spec.model``, which holds these models in ``Rollout``.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from ecsop.spec.quoting import clip, quote

PLACEHOLDERS: dict[str, str] = {
    "release": "the release's metadata.name",
    "cluster": "the ECS cluster's name",
    "service": "the ECS service's name",
    "region": "the service's AWS region",
    "fingerprint": "the fingerprint (images) of the release being judged",
    "deployment": "the judged ECS deployment's id (ecs-svc/...)",
    "taskDefinition": "the judged task definition revision, family:revision",
    "stableTaskDefinition": "the last-good revision, family:revision (none before one is proven)",
    "targetGroup": "the service's first target group as CloudWatch names it "
    "(targetgroup/NAME/ID; none without a load balancer)",
    "targetGroupName": "the service's first target group's name",
}
"""Every ``{{name}}`` a query may use, and what it is replaced with."""

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
NO_DATA = "no data"
"""``inconclusiveIf``'s default word: an empty result (or NaN) is inconclusive."""
_COMPARISON = re.compile(
    r"^\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<number>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$"
)
_OPERATORS = ">, >=, <, <=, ==, !="
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_QUERY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 20, 30)
"""MetricStat periods below a minute; anything else must be a multiple of 60."""
STANDARD_UNITS = (
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
)
"""CloudWatch's ``StandardUnit`` (a unit test holds it equal to botocore's model)."""


@dataclass(frozen=True)
class Comparison:
    """``> 0.01``: an operator and a number, parsed from the spec, never evaluated as code."""

    operator: Literal[">", ">=", "<", "<=", "==", "!="]
    threshold: float

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the comparison (NaN satisfies none but ``!=``)."""
        match self.operator:
            case ">":
                return value > self.threshold
            case ">=":
                return value >= self.threshold
            case "<":
                return value < self.threshold
            case "<=":
                return value <= self.threshold
            case "==":
                return value == self.threshold
            case _:
                return value != self.threshold

    def __str__(self) -> str:
        return f"{self.operator} {self.threshold:g}"


def comparison(text: str) -> Comparison:
    """Parse ``text`` (``"> 0.01"``, ``"<=250"``, ``"!= 0"``); ValueError says how to write it."""
    found = _COMPARISON.match(text)
    if found is None:
        hint = ""
        try:
            float(text)
        except ValueError:
            pass
        else:  # `failIf: > 0.01` unquoted is a YAML folded scalar: only the number survives
            hint = '; quote it in YAML, failIf: "> 0.01" (an unquoted > starts a folded block)'
        raise ValueError(
            f"{quote(text)} is not a comparison: write an operator ({_OPERATORS}) and a "
            f'number, e.g. "> 0.01"{hint}'
        )
    threshold = float(found["number"])
    if not math.isfinite(threshold):
        raise ValueError(f"{quote(text)}: the number must be finite")
    return Comparison(found["op"], threshold)  # type: ignore[arg-type]


def placeholders_in(text: str) -> list[str]:
    """The placeholder names ``text`` uses, in order (``{{ release }}`` -> ``release``)."""
    return [match.group(1) for match in _PLACEHOLDER.finditer(text)]


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with each ``{{name}}`` replaced; KeyError names a placeholder without a value."""
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def _known_placeholders(text: str) -> str:
    for name in placeholders_in(text):
        if name not in PLACEHOLDERS:
            raise ValueError(
                f"unknown placeholder {{{{{clip(name, 40)}}}}}: use one of "
                + ", ".join(f"{{{{{known}}}}}" for known in PLACEHOLDERS)
            )
    stray = _PLACEHOLDER.sub("", text)
    if "{{" in stray or "}}" in stray:
        raise ValueError("a placeholder is {{name}}: an unmatched '{{' or '}}' is left")
    return text


Templated = Annotated[str, AfterValidator(_known_placeholders)]
"""Text that may use placeholders; unknown ones are refused."""
Expression = Annotated[
    str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_known_placeholders)
]
Label = Annotated[str, StringConstraints(max_length=255), AfterValidator(_known_placeholders)]


class _Model(BaseModel):
    """The spec's configuration (``ecsop.spec.model``): no unknown fields, no coercion."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


def address_problem(address: str, *, credentials_allowed: bool) -> str | None:
    """What is wrong with a Prometheus address, or None.

    The spec's may not carry credentials (they would be in git and in every
    status); the daemon's ``--prometheus-url`` may, and is shown redacted.
    """
    try:
        parts = urllib.parse.urlsplit(address)
        parts.port  # noqa: B018 -- raises on a port outside 0-65535
    except ValueError as exc:
        return f"address cannot be parsed: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "address must be an absolute http:// or https:// URL with a host"
    if any(c.isspace() for c in address):
        return "address must not contain whitespace"
    if parts.query or parts.fragment:
        return "address is the server's base URL: no ?query or #fragment"
    if "@" in parts.netloc and not credentials_allowed:
        return (
            "address must not carry credentials (user:password@host): they would be in git "
            "and in every status; give the daemon --prometheus-url with them (env "
            "ECSOP_PROMETHEUS_URL) or --prometheus-bearer-token-file, and leave address out"
        )
    return None


class PrometheusQuery(_Model):
    """A PromQL instant query, whose result must be one number (a scalar or one series)."""

    address: str | None = Field(
        default=None,
        max_length=2048,
        description="Base URL of the Prometheus server (http:// or https://, e.g. "
        "http://prometheus.monitoring:9090). Default: the daemon's --prometheus-url. "
        "Credentials never go here: the daemon's own are sent to its --prometheus-url's "
        "host only.",
    )
    query: Templated = Field(
        min_length=1,
        max_length=8192,
        description="PromQL whose result is one number, e.g. an error ratio summed over "
        "the service. May use the placeholders {{release}}, {{deployment}}, ...",
    )
    timeout_seconds: float = Field(
        default=10,
        gt=0,
        le=60,
        description="Give up on one query after this long (also sent to Prometheus as the "
        "query's timeout); a timeout is an error, never green.",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, address: str | None) -> str | None:
        problem = address_problem(address, credentials_allowed=False) if address else None
        if problem:
            raise ValueError(problem)
        return address


class Dimension(_Model):
    name: Templated = Field(min_length=1, max_length=255, description="Dimension name.")
    value: Templated = Field(min_length=1, max_length=1024, description="Dimension value.")


class Metric(_Model):
    namespace: Templated = Field(
        min_length=1, max_length=255, description="e.g. AWS/ApplicationELB."
    )
    metric_name: Templated = Field(
        min_length=1, max_length=255, description="e.g. HTTPCode_Target_5XX_Count."
    )
    dimensions: list[Dimension] = Field(
        default_factory=list, max_length=30, description="Exactly the metric's dimensions."
    )


class MetricStat(_Model):
    metric: Metric
    period: int = Field(
        ge=1,
        description="Seconds per data point: 1, 5, 10, 20, 30 (high-resolution metrics) or "
        "a multiple of 60.",
    )
    stat: str = Field(min_length=1, max_length=64, description="e.g. Sum, Average, p99.")
    unit: str | None = Field(default=None, description="A CloudWatch StandardUnit, e.g. Count.")

    @field_validator("period")
    @classmethod
    def _period(cls, period: int) -> int:
        if period not in HIGH_RESOLUTION_PERIODS and period % 60:
            raise ValueError(
                f"period {period} is not one CloudWatch accepts: 1, 5, 10, 20, 30 or a "
                "multiple of 60"
            )
        return period

    @field_validator("unit")
    @classmethod
    def _unit(cls, unit: str | None) -> str | None:
        if unit is not None and unit not in STANDARD_UNITS:
            raise ValueError(f"{quote(unit)} is not a CloudWatch unit: {', '.join(STANDARD_UNITS)}")
        return unit


class MetricDataQuery(_Model):
    """One entry of GetMetricData's ``MetricDataQueries``: a metric, or metric math."""

    id: str = Field(
        min_length=1,
        max_length=255,
        description="Short name, unique in the analysis, starting with a lowercase letter; "
        "expressions refer to it.",
    )
    metric_stat: MetricStat | None = Field(default=None, description="A metric to read.")
    expression: Expression | None = Field(
        default=None, description="Metric math over the other queries' ids, e.g. errors / requests."
    )
    label: Label | None = Field(default=None, description="A label for the result.")
    return_data: bool = Field(
        default=True,
        description="Whether this query's result is the measurement: exactly one query of "
        "an analysis returns data; set false on the ones an expression uses.",
    )
    period: int | None = Field(
        default=None, ge=1, description="Seconds per data point of an expression."
    )
    account_id: str | None = Field(
        default=None,
        pattern=r"^\d{12}$",
        description="Account of a metric, with CloudWatch cross-account observability.",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _QUERY_ID.match(value):
            raise ValueError(
                f"{quote(value)}: an id starts with a lowercase letter and holds only letters, "
                "digits and _"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> MetricDataQuery:
        if (self.metric_stat is None) == (self.expression is None):
            raise ValueError("give exactly one of metricStat and expression")
        return self


class CloudWatchQuery(_Model):
    """GetMetricData over the last ``lookbackSeconds``; the newest point is the measurement."""

    metric_data_queries: list[MetricDataQuery] = Field(
        min_length=1,
        max_length=20,
        description="GetMetricData's MetricDataQueries with camelCase keys; metric math "
        "allowed; exactly one returns data.",
    )
    lookback_seconds: int = Field(
        default=300,
        ge=60,
        le=86400,
        description="How far back to read: the newest data point of the window (whole "
        "minutes, the current partial one excluded) is the measurement.",
    )

    @model_validator(mode="after")
    def _one_result(self) -> CloudWatchQuery:
        ids = [query.id for query in self.metric_data_queries]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"metricDataQueries repeat the id {repeated[0]}")
        returning = [query.id for query in self.metric_data_queries if query.return_data]
        if not returning:
            raise ValueError(
                "exactly one of metricDataQueries must return data (the measurement), none "
                "does: leave returnData true (the default) on the one whose value is judged"
            )
        if len(returning) > 1:
            raise ValueError(
                "exactly one of metricDataQueries must return data (the measurement); "
                f"{len(returning)} do ({', '.join(returning)}): set returnData: false on "
                "the ones an expression only uses"
            )
        return self

    @property
    def result_id(self) -> str:
        return next(query.id for query in self.metric_data_queries if query.return_data)


def _comparison_text(text: str | None) -> str | None:
    if text is not None:
        comparison(text)
    return text


def _inconclusive_text(text: str) -> str:
    if text.strip().lower() != NO_DATA:
        try:
            comparison(text)
        except ValueError:
            raise ValueError(
                f'{quote(text)}: write "{NO_DATA}" (an empty result, always inconclusive) or '
                f'a comparison whose values are inconclusive too, e.g. "== 0"'
            ) from None
    return text


class Analysis(_Model):
    """A metric query that must keep passing while a rollout runs and bakes.

    Measured every ``intervalSeconds`` from the daemon (a thread pool of its
    own, never a reconcile worker), from the start of the rollout through the
    bake. A measurement passes, fails, is inconclusive (no data, or
    ``inconclusiveIf``) or errs (the query could not be run). More than
    ``failuresAllowed`` failed measurements in a row roll the release back
    (reason ``analysis``); an inconclusive or erring latest measurement is
    never green: the release waits, and is not recorded as last-good.
    """

    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=63,
        description="Names the analysis in status, logs and metrics: lowercase letters, "
        "digits and '-'.",
    )
    prometheus: PrometheusQuery | None = Field(default=None, description="A PromQL query.")
    cloudwatch: CloudWatchQuery | None = Field(
        default=None, description="CloudWatch GetMetricData queries, metric math allowed."
    )
    fail_if: Annotated[str | None, AfterValidator(_comparison_text)] = Field(
        default=None,
        description='A measurement satisfying this comparison fails, e.g. "> 0.01".',
    )
    success_if: Annotated[str | None, AfterValidator(_comparison_text)] = Field(
        default=None,
        description="A measurement satisfying this passes; with failIf as well, one "
        "satisfying neither is inconclusive; alone, one not satisfying it fails.",
    )
    inconclusive_if: Annotated[str, AfterValidator(_inconclusive_text)] = Field(
        default=NO_DATA,
        description='"no data" (the default: an empty result or NaN is inconclusive), or a '
        'comparison whose values are inconclusive as well, e.g. "== 0".',
    )
    interval_seconds: float = Field(
        default=30, ge=1, le=3600, description="Seconds between the starts of two measurements."
    )
    failures_allowed: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Failed measurements in a row tolerated; one more fails the rollout.",
    )

    @model_validator(mode="after")
    def _complete(self) -> Analysis:
        if (self.prometheus is None) == (self.cloudwatch is None):
            raise ValueError("give exactly one of prometheus and cloudwatch")
        if self.fail_if is None and self.success_if is None:
            raise ValueError('give failIf, successIf or both, e.g. failIf: "> 0.01"')
        return self

    @property
    def fail_comparison(self) -> Comparison | None:
        return comparison(self.fail_if) if self.fail_if is not None else None

    @property
    def success_comparison(self) -> Comparison | None:
        return comparison(self.success_if) if self.success_if is not None else None

    @property
    def inconclusive_comparison(self) -> Comparison | None:
        text = self.inconclusive_if
        return None if text.strip().lower() == NO_DATA else comparison(text)

    def texts(self) -> list[str]:
        """Every string of the query that placeholders may appear in."""
        if self.prometheus is not None:
            return [self.prometheus.query]
        return _strings(self.cloudwatch.model_dump() if self.cloudwatch else {})


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def distinct_names(analyses: list[Analysis]) -> list[Analysis]:
    """``rollout.analysis`` names are unique: they name metric series and status entries."""
    names = [analysis.name for analysis in analyses]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"analysis names must not repeat ({repeated[0]})")
    return analyses
