"""CloudWatch queries of an analysis: GetMetricData's ``MetricDataQueries``, camelCase.

The shape is the API's with the spec's camelCase keys
(``metricStat.metric.metricName``, as Argo Rollouts' CloudWatch provider writes
them); ``ecsop.aws.metric_data`` capitalises each key back to the API's
(``MetricStat.Metric.MetricName``). The rules checked here are the API
reference's ("MetricDataQuery", "MetricStat",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDataQuery.html,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricStat.html).
Pure.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from ecsop.spec.query_text import Expression, Label, Templated
from ecsop.spec.quoting import quote
from ecsop.spec.strict_model import StrictModel

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


class Dimension(StrictModel):
    name: Templated = Field(min_length=1, max_length=255, description="Dimension name.")
    value: Templated = Field(min_length=1, max_length=1024, description="Dimension value.")


class Metric(StrictModel):
    namespace: Templated = Field(
        min_length=1, max_length=255, description="e.g. AWS/ApplicationELB."
    )
    metric_name: Templated = Field(
        min_length=1, max_length=255, description="e.g. HTTPCode_Target_5XX_Count."
    )
    dimensions: list[Dimension] = Field(
        default_factory=list, max_length=30, description="Exactly the metric's dimensions."
    )


class MetricStat(StrictModel):
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


class MetricDataQuery(StrictModel):
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


class CloudWatchQuery(StrictModel):
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
    def longest_period(self) -> int:
        """Seconds of the longest period a query names (60 when none does)."""
        periods = [q.metric_stat.period for q in self.metric_data_queries if q.metric_stat]
        periods += [q.period for q in self.metric_data_queries if q.period]
        return max(periods, default=60)

    @property
    def result_id(self) -> str:
        return next(query.id for query in self.metric_data_queries if query.return_data)
