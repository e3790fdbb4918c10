"""``rollout.analysis`` in the spec: comparisons without evaluation, placeholders, shapes.

Every refusal names its field (and, through the loader, its file and line);
CloudWatch's facts (units, the request shape) are checked against botocore's
service model, not a list copied by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator
from pydantic import ValidationError

from builders import release as build_release
from ecsop.aws.metric_data import api_shape
from ecsop.spec import loader
from ecsop.spec.analysis import Analysis
from ecsop.spec.cloudwatch_query import STANDARD_UNITS
from ecsop.spec.query_text import PLACEHOLDERS, Comparison, comparison, fill, placeholders_in

PROMQL = 'sum(rate(http_requests_total{deployment="{{deployment}}",code="500"}[1m]))'


def cloudwatch(*extra: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "metricDataQueries": [
            {
                "id": "errors",
                "metricStat": {
                    "metric": {
                        "namespace": "Sandbox/App",
                        "metricName": "5xxCount",
                        "dimensions": [
                            {"name": "ClusterName", "value": "{{cluster}}"},
                            {"name": "DeploymentId", "value": "{{deployment}}"},
                        ],
                    },
                    "period": 60,
                    "stat": "Sum",
                },
                "returnData": False,
            },
            {"id": "requests", "metricStat": _stat("RequestCount"), "returnData": False},
            {"id": "ratio", "expression": "errors / requests"},
            *extra,
        ],
        **fields,
    }


def _stat(name: str) -> dict[str, Any]:
    return {"metric": {"namespace": "Sandbox/App", "metricName": name}, "period": 60, "stat": "Sum"}


def analysis(**fields: Any) -> dict[str, Any]:
    return {"name": "error-rate", "prometheus": {"query": PROMQL}, "failIf": "> 0.01", **fields}


def validate(*analyses: dict[str, Any]) -> list[Analysis]:
    return build_release(rollout={"analysis": list(analyses)}).spec.rollout.analysis


# --- comparisons --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("> 0.01", Comparison(">", 0.01), id="gt"),
        pytest.param(">=1e-3", Comparison(">=", 0.001), id="ge-scientific"),
        pytest.param("  < 250 ", Comparison("<", 250.0), id="spaces"),
        pytest.param("<= -1.5", Comparison("<=", -1.5), id="negative"),
        pytest.param("== 0", Comparison("==", 0.0), id="eq"),
        pytest.param("!= .5", Comparison("!=", 0.5), id="ne-leading-dot"),
    ],
)
def test_comparisons_are_an_operator_and_a_number(text: str, expected: Comparison) -> None:
    assert comparison(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        pytest.param("0.01", "an unquoted > starts a folded block", id="folded-yaml"),
        pytest.param("> x", "write an operator", id="not-a-number"),
        pytest.param("=> 1", "write an operator", id="wrong-operator"),
        pytest.param("> 1 and < 2", "write an operator", id="no-logic"),
        pytest.param("__import__('os').system('x') > 1", "write an operator", id="no-code"),
        pytest.param("> 1e999", "finite", id="infinite"),
        pytest.param("> nan", "write an operator", id="nan"),
    ],
)
def test_anything_else_is_refused_without_being_evaluated(text: str, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        comparison(text)


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [
        pytest.param("> 0.01", 0.034, True, id="above"),
        pytest.param("> 0.01", 0.01, False, id="equal-is-not-above"),
        pytest.param(">= 0.01", 0.01, True, id="at-least"),
        pytest.param("< 0.5", float("inf"), False, id="inf"),
        pytest.param("!= 0", float("nan"), True, id="nan-differs"),
        pytest.param("== 0", float("nan"), False, id="nan-equals-nothing"),
    ],
)
def test_a_comparison_holds_as_the_operator_says(text: str, value: float, holds: bool) -> None:
    assert comparison(text).holds(value) is holds


# --- placeholders -------------------------------------------------------------------


def test_placeholders_are_found_and_filled() -> None:
    text = 'x{d="{{deployment}}", s="{{ service }}"}'
    assert placeholders_in(text) == ["deployment", "service"]
    assert fill(text, {"deployment": "ecs-svc/1", "service": "api"}) == 'x{d="ecs-svc/1", s="api"}'
    with pytest.raises(KeyError, match="deployment"):
        fill(text, {"service": "api"})


def test_every_placeholder_is_accepted_in_every_text() -> None:
    everything = " ".join(f"{{{{{name}}}}}" for name in PLACEHOLDERS)
    (prom,) = validate(analysis(prometheus={"query": everything}))
    assert prom.texts() == [everything]
    dims = [{"name": "D", "value": everything}]
    queries = [{"id": "m", "metricStat": {**_stat("M"), "metric": {**_stat("M")["metric"]}}}]
    queries[0]["metricStat"]["metric"]["dimensions"] = dims
    (cw,) = validate(analysis(prometheus=None, cloudwatch={"metricDataQueries": queries}))
    assert everything in cw.texts()


# --- what is refused, where ---------------------------------------------------------

BASE = ("spec", "rollout", "analysis", 0)


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [
        pytest.param({"failIf": ">> 1"}, ("failIf",), "is not a comparison", id="fail-if"),
        pytest.param({"successIf": "1"}, ("successIf",), "is not a comparison", id="success-if"),
        pytest.param({"inconclusiveIf": "sometimes"}, ("inconclusiveIf",), "no data", id="incl"),
        pytest.param({"failIf": None}, (), "give failIf, successIf or both", id="no-rule"),
        pytest.param(
            {"prometheus": {"query": 'x{r="{{relase}}"}'}},
            ("prometheus", "query"),
            "unknown placeholder {{relase}}: use one of {{release}}",
            id="typo-placeholder",
        ),
        pytest.param(
            {"prometheus": {"query": "x {{deployment}"}},
            ("prometheus", "query"),
            "unmatched",
            id="unclosed-placeholder",
        ),
        pytest.param(
            {"prometheus": {"query": "x", "address": "https://bob:hunter2@prom:9090"}},
            ("prometheus", "address"),
            "must not carry credentials",
            id="credentials-in-address",
        ),
        pytest.param(
            {"prometheus": {"query": "x", "address": "prom:9090"}},
            ("prometheus", "address"),
            "absolute http",
            id="relative-address",
        ),
        pytest.param(
            {"prometheus": {"query": "x", "address": "http://prom/?token=abc"}},
            ("prometheus", "address"),
            "no ?query",
            id="address-with-query",
        ),
        pytest.param({"prometheus": {"query": ""}}, ("prometheus", "query"), "at least 1", id="e"),
        pytest.param(
            {"cloudwatch": cloudwatch()}, (), "exactly one of prometheus and cloudwatch", id="both"
        ),
        pytest.param(
            {"intervalSeconds": 0.5}, ("intervalSeconds",), "greater than or equal", id="i"
        ),
        pytest.param({"failuresAllowed": -1}, ("failuresAllowed",), "greater than", id="allowed"),
        pytest.param({"name": "Error_Rate"}, ("name",), "pattern", id="name"),
        pytest.param({"query": "x"}, ("query",), "Extra inputs", id="unknown-field"),
    ],
)
def test_a_malformed_analysis_is_refused_at_its_field(
    fields: dict[str, Any], where: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        validate(analysis(**fields))
    errors = [(e["loc"], e["msg"]) for e in caught.value.errors()]
    assert any(loc == (*BASE, *where) and message in msg for loc, msg in errors), errors


@pytest.mark.parametrize(
    ("mutate", "where", "message"),
    [
        pytest.param(
            lambda q: q["metricDataQueries"][2].update(returnData=False),
            (),
            "none does",
            id="no-result",
        ),
        pytest.param(
            lambda q: q["metricDataQueries"][0].update(returnData=True),
            (),
            "2 do (errors, ratio)",
            id="two-results",
        ),
        pytest.param(
            lambda q: q["metricDataQueries"][1].update(id="errors"),
            (),
            "repeat the id errors",
            id="repeated-id",
        ),
        pytest.param(
            lambda q: q["metricDataQueries"][2].update(id="Ratio"),
            ("metricDataQueries", 2, "id"),
            "starts with a lowercase letter",
            id="id-case",
        ),
        pytest.param(
            lambda q: q["metricDataQueries"][2].update(metricStat=_stat("X")),
            ("metricDataQueries", 2),
            "exactly one of metricStat and expression",
            id="stat-and-expression",
        ),
        pytest.param(
            lambda q: q["metricDataQueries"][0]["metricStat"].update(period=90),
            ("metricDataQueries", 0, "metricStat", "period"),
            "multiple of 60",
            id="period",
        ),
        pytest.param(
            lambda q: q["metricDataQueries"][0]["metricStat"].update(unit="Requests"),
            ("metricDataQueries", 0, "metricStat", "unit"),
            "not a CloudWatch unit",
            id="unit",
        ),
        pytest.param(
            lambda q: q["metricDataQueries"][0]["metricStat"]["metric"]["dimensions"][0].update(
                value="{{clustre}}"
            ),
            ("metricDataQueries", 0, "metricStat", "metric", "dimensions", 0, "value"),
            "unknown placeholder {{clustre}}",
            id="dimension-placeholder",
        ),
        pytest.param(
            lambda q: q.update(lookbackSeconds=30),
            ("lookbackSeconds",),
            "greater than or equal to 60",
            id="lookback",
        ),
    ],
)
def test_a_malformed_cloudwatch_query_is_refused_at_its_field(
    mutate: Any, where: tuple[Any, ...], message: str
) -> None:
    query = cloudwatch()
    mutate(query)
    with pytest.raises(ValidationError) as caught:
        validate(analysis(prometheus=None, cloudwatch=query))
    errors = [(e["loc"], e["msg"]) for e in caught.value.errors()]
    assert any(loc == (*BASE, "cloudwatch", *where) and message in msg for loc, msg in errors), (
        errors
    )


def test_defaults_and_names_must_not_repeat() -> None:
    (one,) = validate(analysis())
    assert (one.interval_seconds, one.failures_allowed, one.inconclusive_if) == (30, 0, "no data")
    assert one.prometheus is not None and one.prometheus.timeout_seconds == 10
    with pytest.raises(ValidationError, match="analysis names must not repeat"):
        validate(analysis(), analysis(failIf="> 0.5"))


def test_errors_name_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "api.yaml").write_text(
        """apiVersion: ecsop.dev/v1
kind: ServiceRelease
metadata: {name: api}
spec:
  cluster: prod
  service: api
  containers: {api: "repo/api@sha256:"""
        + "a" * 64
        + """"}
  rollout:
    analysis:
      - name: error-rate
        prometheus:
          query: 'sum(x{d="{{deploymnet}}"})'
        failIf: >
          0.01
"""
    )
    result = loader.load([tmp_path], default_region="us-east-1")
    shown = sorted(str(error) for error in result.errors)
    assert len(shown) == 2, shown
    assert (
        "api.yaml:12: spec.rollout.analysis[0].prometheus.query: unknown placeholder" in (shown[0])
    )
    assert (
        "api.yaml:13: spec.rollout.analysis[0].failIf: '0.01\\n' is not a comparison" in (shown[1])
    )
    assert "quote it in YAML" in shown[1]


# --- CloudWatch facts from botocore's model -----------------------------------------


def test_units_are_cloudwatchs_standard_units() -> None:
    model = botocore.session.get_session().get_service_model("cloudwatch")
    assert set(STANDARD_UNITS) == set(model.shape_for("StandardUnit").enum)


def test_the_spec_queries_become_a_valid_get_metric_data_request() -> None:
    (one,) = validate(analysis(prometheus=None, cloudwatch=cloudwatch()))
    assert one.cloudwatch is not None
    queries = [
        q.model_dump(by_alias=True, exclude_none=True) for q in one.cloudwatch.metric_data_queries
    ]
    operation = botocore.session.get_session().get_service_model("cloudwatch")
    shape = operation.operation_model("GetMetricData").input_shape
    request = {
        "MetricDataQueries": api_shape(queries),
        "StartTime": "2026-01-01T00:00:00Z",
        "EndTime": "2026-01-01T00:05:00Z",
    }
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    assert request["MetricDataQueries"][0]["MetricStat"]["Metric"]["MetricName"] == "5xxCount"


# --- attacks: comparisons that together can never fail, or never pass -------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param(
            {"failIf": "> 0.01", "inconclusiveIf": ">= 0"},
            "can never fail: every value failIf matches is inconclusiveIf",
            id="inconclusive-swallows-fail",
        ),
        pytest.param(
            {"failIf": "> 0.01", "successIf": "> 0.5"},
            "can never pass: every value successIf matches is failIf or inconclusiveIf",
            id="success-inside-fail",
        ),
        pytest.param(
            {"failIf": None, "successIf": "< 0.01", "inconclusiveIf": "<= 1"},
            "can never pass",
            id="inconclusive-swallows-success",
        ),
        pytest.param(
            {"failIf": "!= 0", "successIf": "== 0", "inconclusiveIf": "== 0"},
            "can never pass",
            id="point",
        ),
    ],
)
def test_comparisons_that_can_never_fail_or_never_pass_are_refused(
    fields: dict[str, Any], message: str
) -> None:
    """A typo that turns a gate off (a canary nothing can roll back) or holds every
    release for ever (nothing can prove it) is refused at load, not found in production."""
    with pytest.raises(ValidationError) as caught:
        validate(analysis(**fields))
    assert message in str(caught.value), caught.value


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"failIf": "> 0.01", "successIf": "< 0.005"}, id="band-between"),
        pytest.param({"successIf": "< 0.5", "inconclusiveIf": "== 0"}, id="zero-is-no-traffic"),
        pytest.param({"failIf": "!= 0"}, id="anything-but-zero-fails"),
        pytest.param({"failIf": "> 0.01", "inconclusiveIf": "> 1"}, id="partly-inconclusive"),
    ],
)
def test_comparisons_that_can_both_pass_and_fail_are_accepted(fields: dict[str, Any]) -> None:
    validate(analysis(**fields))
