"""Analysis gates in the spec: ``rollout.analysis``, metric queries a rollout is judged by.

Each analysis is one query, Prometheus (PromQL, an instant query) or
CloudWatch (``GetMetricData`` queries, metric math allowed:
``ecsop.spec.cloudwatch_query``), whose one-number result is compared with
``failIf`` / ``successIf`` (``ecsop.spec.query_text``: parsed, never
evaluated). Query text may name placeholders (``{{release}}``,
``{{deployment}}`` ...) that the probe fills for the deployment it judges; an
unknown one is refused at its line.

Pure, like ``ecsop.spec.model``, which holds these models in ``Rollout``.
"""

from __future__ import annotations

import itertools
import math
import urllib.parse
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator, model_validator

from ecsop.spec.cloudwatch_query import CloudWatchQuery
from ecsop.spec.query_text import Comparison, Templated, comparison
from ecsop.spec.quoting import quote
from ecsop.spec.strict_model import StrictModel

NO_DATA = "no data"
"""``inconclusiveIf``'s default word: an empty result (or NaN) is inconclusive."""
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


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


class PrometheusQuery(StrictModel):
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


class Analysis(StrictModel):
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
        outcomes = {self._outcome(value) for value in self._telling_values()}
        if self.fail_if is not None and "fail" not in outcomes:
            raise ValueError(
                f"can never fail: every value failIf matches is inconclusiveIf "
                f"({quote(self.fail_if)}, {quote(self.inconclusive_if)}); a failing release "
                "would never be rolled back"
            )
        if "pass" not in outcomes:
            raise ValueError(
                "can never pass: every value successIf matches is failIf or inconclusiveIf "
                "(or, with failIf alone, every value is one of those); no release would "
                "ever be proven"
            )
        return self

    def _outcome(self, value: float) -> str:
        """``pass``, ``fail`` or ``inconclusive``: ``decision.analysis.judge``'s order."""
        inconclusive, fail, success = (
            self.inconclusive_comparison,
            self.fail_comparison,
            self.success_comparison,
        )
        if inconclusive is not None and inconclusive.holds(value):
            return "inconclusive"
        if fail is not None and fail.holds(value):
            return "fail"
        if success is None or success.holds(value):
            return "pass"
        return "fail" if fail is None else "inconclusive"

    def _telling_values(self) -> list[float]:
        """A value of every region the comparisons draw: each threshold, one between two
        neighbours, and the infinities (beyond each end)."""
        rules = (self.inconclusive_comparison, self.fail_comparison, self.success_comparison)
        points = sorted({rule.threshold for rule in rules if rule is not None})
        between = [(low + high) / 2 for low, high in itertools.pairwise(points)]
        return [-math.inf, *points, *between, math.inf]

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
