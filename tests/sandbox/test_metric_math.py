"""The sandbox's CloudWatch metric math (using-metric-math.html), table-driven."""

from __future__ import annotations

import datetime as dt

import pytest

from ecsop.sandbox.metric_math import MathError, Series, evaluate

T = [dt.datetime(2026, 1, 1, 0, minute) for minute in range(4)]
SERIES: dict[str, Series] = {
    "requests": {T[0]: 100.0, T[1]: 200.0, T[2]: 0.0, T[3]: 50.0},
    "errors": {T[0]: 3.0, T[1]: 4.0, T[2]: 0.0},
    "m1": {T[0]: -1.0, T[1]: 2.0},
}


def lookup(name: str) -> Series:
    try:
        return SERIES[name]
    except KeyError:
        raise MathError(f"Unknown metric or expression id: {name}") from None


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("errors / requests", {T[0]: 0.03, T[1]: 0.02}, id="ratio-drops-0/0-and-gaps"),
        pytest.param("100 * errors / requests", {T[0]: 3.0, T[1]: 2.0}, id="precedence"),
        pytest.param("(errors + 1) * 2", {T[0]: 8.0, T[1]: 10.0, T[2]: 2.0}, id="parentheses"),
        pytest.param("-m1", {T[0]: 1.0, T[1]: -2.0}, id="unary-minus"),
        pytest.param("ABS(m1)", {T[0]: 1.0, T[1]: 2.0}, id="abs"),
        pytest.param("m1 ^ 2", {T[0]: 1.0, T[1]: 4.0}, id="power"),
        pytest.param("FILL(errors, 0) / requests", {T[0]: 0.03, T[1]: 0.02, T[3]: 0.0}, id="fill"),
        pytest.param(
            "SUM([errors, m1])", {T[0]: 2.0, T[1]: 6.0, T[2]: 0.0}, id="sum-of-array-per-point"
        ),
        pytest.param(
            "MAX([requests, errors])", {T[0]: 100.0, T[1]: 200.0, T[2]: 0.0, T[3]: 50.0}, id="max"
        ),
        pytest.param(
            "requests - AVG(requests)",
            {T[0]: 12.5, T[1]: 112.5, T[2]: -87.5, T[3]: -37.5},
            id="avg-scalar",
        ),
    ],
)
def test_expressions_evaluate_as_cloudwatch_documents(expression: str, expected: Series) -> None:
    result = evaluate(expression, lookup, list(SERIES.values()))
    assert result == pytest.approx(expected)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        pytest.param("nope / requests", "Unknown metric", id="unknown-id"),
        pytest.param("ANOMALY_DETECTION_BAND(m1)", "does not evaluate", id="unsupported-function"),
        pytest.param("errors +", "Unexpected end", id="truncated"),
        pytest.param("errors $ 2", "Cannot read", id="bad-character"),
        pytest.param("(errors", "Unexpected end", id="unbalanced"),
    ],
)
def test_what_it_cannot_evaluate_is_an_error_naming_it(expression: str, message: str) -> None:
    with pytest.raises(MathError, match=message):
        evaluate(expression, lookup, list(SERIES.values()))
