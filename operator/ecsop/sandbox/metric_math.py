"""CloudWatch metric math for ``GetMetricData``, on top of moto's metric queries.

moto answers ``MetricStat`` queries but treats an ``Expression`` only as the
name of another query, so ``100 * errors / requests`` comes back empty.  The
sandbox wraps moto's CloudWatch backend: it runs the ``MetricStat`` (and
Metrics Insights) queries with moto, then evaluates each expression over their
time series ("Using math expressions with CloudWatch metrics",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html):

- numbers, query ids (``m1``, ``errors``: lower-case first letter), ``(...)``,
  arrays ``[a, b]``, ``METRICS()`` (every ``MetricStat`` query);
- ``+ - * / ^`` between time series and scalars: element-wise on the timestamps
  both series have; a division by zero yields no point;
- ``ABS``; ``SUM``, ``AVG``, ``MIN``, ``MAX``: of an array, the time series of the
  value at each timestamp; of a single series, a scalar over the whole series;
  ``FILL(x, value)``: points of ``x``'s queries' timestamps it lacks filled with
  ``value``.

An expression may use another's id; results keep the request's order, honour
``ReturnData`` and ``ScanBy``.  Anything else is a ``ValidationError`` naming it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Union

Series = dict[datetime, float]
Value = Union[float, Series, list[Series]]  # noqa: UP007 (a recursive-looking alias reads better)

_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>[-+*/^(),\[\]]))"
)


class MathError(ValueError):
    """An expression the sandbox cannot evaluate (answered as a ValidationError)."""


def install(backend: Any) -> None:
    """Make ``backend.get_metric_data`` evaluate metric math (once per backend)."""
    if getattr(backend, "_sandbox_metric_math", False):
        return
    original = backend.get_metric_data

    def get_metric_data(
        queries: list[dict[str, Any]],
        start_time: datetime,
        end_time: datetime,
        scan_by: str = "TimestampAscending",
    ) -> list[dict[str, Any]]:
        expressions = [
            q for q in queries if "Expression" in q and not q["Expression"].startswith("SELECT")
        ]
        if not expressions:
            return list(original(queries, start_time, end_time, scan_by))
        others = [{**q, "ReturnData": True} for q in queries if q not in expressions]
        base = original(others, start_time, end_time, "TimestampAscending") if others else []
        try:
            return _answer(queries, base, scan_by)
        except MathError as exc:
            from moto.cloudwatch.exceptions import ValidationError

            raise ValidationError(str(exc)) from exc

    setattr(backend, "get_metric_data", get_metric_data)  # noqa: B010
    setattr(backend, "_sandbox_metric_math", True)  # noqa: B010


def _answer(
    queries: list[dict[str, Any]], base: list[dict[str, Any]], scan_by: str
) -> list[dict[str, Any]]:
    by_id = {r["id"]: r for r in base}
    stats = {r["id"]: dict(zip(r["timestamps"], r["values"], strict=True)) for r in base}
    expressions = {q["Id"]: q["Expression"] for q in queries if q["Id"] not in by_id}
    metric_ids = [q["Id"] for q in queries if "MetricStat" in q]
    done: dict[str, Series] = {}

    def resolve(name: str, visiting: tuple[str, ...]) -> Series:
        if name in stats:
            return stats[name]
        if name in done:
            return done[name]
        if name not in expressions:
            raise MathError(f"Unknown metric or expression id: {name}")
        if name in visiting:
            raise MathError(f"Circular reference in expression {name}")
        value = evaluate(
            expressions[name],
            lambda ref: resolve(ref, (*visiting, name)),
            [stats[m] for m in metric_ids if m in stats],
        )
        if not isinstance(value, dict):
            raise MathError(f"Expression {name} must return a single time series")
        done[name] = value
        return value

    results = []
    for query in queries:
        if not query.get("ReturnData", True):
            continue
        name = query["Id"]
        series = resolve(name, ())
        points = sorted(series.items(), reverse=scan_by == "TimestampDescending")
        label = by_id[name]["label"] if name in by_id else query.get("Label") or name
        results.append(
            {
                "id": name,
                "label": label,
                "values": [v for _, v in points],
                "timestamps": [t for t, _ in points],
                "status_code": "Complete",
            }
        )
    return results


def evaluate(
    expression: str, lookup: Callable[[str], Series], metrics: list[Series] | None = None
) -> Value:
    """The value of ``expression``; ids are looked up with ``lookup``."""
    return _Parser(expression, lookup, metrics or []).parse()


class _Parser:
    def __init__(self, text: str, lookup: Callable[[str], Series], metrics: list[Series]) -> None:
        self._tokens = _tokenize(text)
        self._at = 0
        self._lookup = lookup
        self._metrics = metrics
        self._text = text

    def parse(self) -> Value:
        value = self._sum()
        if self._at != len(self._tokens):
            raise MathError(f"Unexpected {self._tokens[self._at][1]!r} in {self._text!r}")
        return value

    def _peek(self) -> str | None:
        return self._tokens[self._at][1] if self._at < len(self._tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self._at >= len(self._tokens):
            raise MathError(f"Unexpected end of expression {self._text!r}")
        token = self._tokens[self._at]
        if expected is not None and token[1] != expected:
            raise MathError(f"Expected {expected!r}, found {token[1]!r} in {self._text!r}")
        self._at += 1
        return token

    def _sum(self) -> Value:
        value = self._product()
        while self._peek() in ("+", "-"):
            op = self._take()[1]
            value = _binary(op, value, self._product())
        return value

    def _product(self) -> Value:
        value = self._power()
        while self._peek() in ("*", "/"):
            op = self._take()[1]
            value = _binary(op, value, self._power())
        return value

    def _power(self) -> Value:
        value = self._unary()
        if self._peek() == "^":
            self._take()
            return _binary("^", value, self._power())
        return value

    def _unary(self) -> Value:
        if self._peek() == "-":
            self._take()
            return _binary("*", -1.0, self._unary())
        return self._primary()

    def _primary(self) -> Value:
        kind, text = self._take()
        if kind == "number":
            return float(text)
        if text == "(":
            value = self._sum()
            self._take(")")
            return value
        if text == "[":
            items = [self._sum()]
            while self._peek() == ",":
                self._take()
                items.append(self._sum())
            self._take("]")
            return _array(items)
        if kind == "name" and self._peek() == "(":
            return self._call(text)
        if kind == "name" and text[0].islower():
            return self._lookup(text)
        raise MathError(f"Unsupported {text!r} in {self._text!r}")

    def _call(self, name: str) -> Value:
        self._take("(")
        args: list[Value] = []
        if self._peek() != ")":
            args.append(self._sum())
            while self._peek() == ",":
                self._take()
                args.append(self._sum())
        self._take(")")
        function = name.upper()
        if function == "METRICS" and not args:
            return list(self._metrics)
        if function == "ABS" and len(args) == 1:
            return _map(args[0], abs)
        if function in _AGGREGATES and len(args) == 1:
            return _aggregate(function, args[0])
        if function == "FILL" and len(args) == 2 and isinstance(args[1], float):
            return _fill(args[0], args[1], self._metrics)
        raise MathError(f"The sandbox does not evaluate {name}() with {len(args)} argument(s)")


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    at = 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        found = _TOKEN.match(text, at)
        if found is None:
            raise MathError(f"Cannot read {text[at:]!r}")
        kind = found.lastgroup or "op"
        tokens.append((kind, found.group(kind)))
        at = found.end()
    return tokens


_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "SUM": math.fsum,
    "AVG": lambda values: math.fsum(values) / len(values),
    "MIN": min,
    "MAX": max,
}


def _array(items: list[Value]) -> list[Series]:
    out: list[Series] = []
    for item in items:
        if isinstance(item, dict):
            out.append(item)
        elif isinstance(item, list):
            out.extend(item)
        else:
            raise MathError("An array holds time series, not numbers")
    return out


def _aggregate(function: str, value: Value) -> Value:
    combine = _AGGREGATES[function]
    if isinstance(value, list):
        stamps = sorted({t for s in value for t in s})
        return {t: combine([s[t] for s in value if t in s]) for t in stamps}
    if isinstance(value, dict):
        return combine(list(value.values())) if value else math.nan
    return value


def _fill(value: Value, filler: float, metrics: list[Series]) -> Value:
    stamps = {t for s in metrics for t in s}
    if isinstance(value, list):
        return [{**dict.fromkeys(stamps, filler), **s} for s in value]
    if isinstance(value, dict):
        return {**dict.fromkeys(stamps, filler), **value}
    return value


def _map(value: Value, function: Callable[[float], float]) -> Value:
    if isinstance(value, list):
        return [{t: function(v) for t, v in s.items()} for s in value]
    if isinstance(value, dict):
        return {t: function(v) for t, v in value.items()}
    return function(value)


def _apply(op: str, left: float, right: float) -> float | None:
    try:
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op == "/":
            return left / right
        result = left**right
        return float(result) if not isinstance(result, complex) else None
    except (ZeroDivisionError, OverflowError):
        return None


def _binary(op: str, left: Value, right: Value) -> Value:
    if isinstance(left, list):
        return [_series(_binary(op, s, right)) for s in left]
    if isinstance(right, list):
        return [_series(_binary(op, left, s)) for s in right]
    if isinstance(left, dict) and isinstance(right, dict):
        pairs: Mapping[datetime, tuple[float, float]] = {
            t: (left[t], right[t]) for t in left if t in right
        }
    elif isinstance(left, dict):
        scalar = _scalar(right)
        pairs = {t: (v, scalar) for t, v in left.items()}
    elif isinstance(right, dict):
        scalar = _scalar(left)
        pairs = {t: (scalar, v) for t, v in right.items()}
    else:
        result = _apply(op, float(left), float(right))
        if result is None:
            raise MathError(f"Cannot compute {left} {op} {right}")
        return result
    out: Series = {}
    for stamp, (a, b) in sorted(pairs.items()):
        result = _apply(op, a, b)
        if result is not None and not math.isnan(result):
            out[stamp] = result
    return out


def _scalar(value: Value) -> float:
    if isinstance(value, (dict, list)):
        raise MathError("Expected a number")
    return float(value)


def _series(value: Value) -> Series:
    if not isinstance(value, dict):
        raise MathError("Expected a time series")
    return value
