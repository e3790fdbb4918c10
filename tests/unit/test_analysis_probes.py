"""The analysis probes: the Prometheus client's answers, credentials, scheduling, CloudWatch.

Prometheus's protocol edge cases (errors, several series, redirects, huge or
hanging answers) are served by a local HTTP server here; the real Prometheus
is in ``tests/e2e/test_analysis.py``. CloudWatch is a stand-in client: what
``newest_value`` does with GetMetricData's answers is table-driven, and the
sandbox's real metric math is in the end-to-end test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ecsop.aws import metric_data
from ecsop.aws.clients import AwsError
from ecsop.decision.analysis import MeasurementVerdict
from ecsop.probes import prometheus
from ecsop.probes.analysis import AnalysisProbes, AnalysisSettings
from ecsop.spec.analysis import Analysis

VECTOR = {"status": "success", "data": {"resultType": "vector", "result": []}}


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "value": [1.0, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


class FakePrometheus:
    """Answers POST /api/v1/query with ``answer`` (status, body); records what it got."""

    def __init__(self) -> None:
        self.answer: tuple[int, bytes | dict[str, Any]] = (200, vector("0.5"))
        self.requests: list[dict[str, Any]] = []
        self.delay = 0.0
        self.drip = 0.0
        """Seconds between the bytes of the body: each read returns within any timeout."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                server.requests.append(
                    {"path": self.path, "body": body, "headers": dict(self.headers)}
                )
                time.sleep(server.delay)
                status, answer = server.answer
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    if not server.drip:
                        self.wfile.write(data)  # the client stops reading a huge answer
                    for byte in data if server.drip else b"":
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(server.drip)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    server = FakePrometheus()
    yield server
    server.stop()


# --- the Prometheus client ------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        pytest.param((200, vector("0.034")), 0.034, id="one-series"),
        pytest.param((200, VECTOR), None, id="empty-is-no-data"),
        pytest.param((200, vector("NaN")), None, id="nan-is-no-data"),
        pytest.param((200, vector("+Inf")), float("inf"), id="inf"),
        pytest.param(
            (200, {"status": "success", "data": {"resultType": "scalar", "result": [1, "2"]}}),
            2.0,
            id="scalar",
        ),
    ],
)
def test_an_answer_is_one_number_or_no_data(
    fake: FakePrometheus, answer: Any, value: float | None
) -> None:
    fake.answer = answer
    assert prometheus.instant_query(fake.url, "up", 2) == value
    (request,) = fake.requests
    assert request["path"] == "/api/v1/query"
    assert "query=up" in request["body"] and "timeout=2s" in request["body"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        pytest.param((200, vector("1", "2", "3")), "returned 3 series", id="several-series"),
        pytest.param(
            (200, {"status": "success", "data": {"resultType": "matrix", "result": []}}),
            "returned a matrix",
            id="range-query",
        ),
        pytest.param(
            (400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}),
            "bad_data: parse error at char 3",
            id="promql-error",
        ),
        pytest.param((503, b"<html>overloaded</html>"), "HTTP 503, not JSON", id="not-json"),
        pytest.param((302, b""), "HTTP 302 (redirects are not followed)", id="redirect"),
        pytest.param((200, b"x" * (prometheus.MAX_ANSWER + 10)), "over", id="huge"),
        pytest.param((200, {"status": "success", "data": []}), "returned a None", id="odd"),
    ],
)
def test_anything_else_is_an_error_that_says_what(
    fake: FakePrometheus, answer: Any, message: str
) -> None:
    fake.answer = answer
    with pytest.raises(prometheus.QueryError, match=re.escape(message)) as caught:
        prometheus.instant_query(fake.url, "up", 2)
    assert str(caught.value).startswith(f"Prometheus {fake.url}: ")


def test_an_unreachable_or_hanging_prometheus_is_an_error_within_the_timeout(
    fake: FakePrometheus,
) -> None:
    with pytest.raises(prometheus.QueryError, match=r"unreachable .*Connection refused"):
        prometheus.instant_query("http://127.0.0.1:1", "up", 1)
    fake.delay = 3
    started = time.monotonic()
    with pytest.raises(prometheus.QueryError, match="timed out"):
        prometheus.instant_query(fake.url, "up", 0.3)
    assert time.monotonic() - started < 2


def test_credentials_in_the_address_are_sent_and_never_shown(fake: FakePrometheus) -> None:
    address = fake.url.replace("http://", "http://ecsop:hunter2@")
    fake.answer = (401, {"status": "error", "errorType": "auth", "error": "ecsop:hunter2 bad"})
    with pytest.raises(prometheus.QueryError) as caught:
        prometheus.instant_query(address, "up", 2)
    sent = fake.requests[0]["headers"]["Authorization"]
    assert base64.b64decode(sent.removeprefix("Basic ")) == b"ecsop:hunter2"
    assert "hunter2" not in str(caught.value)
    assert "REDACTED@127.0.0.1" in str(caught.value)


# --- the probes: credentials go to the daemon's own Prometheus only ----------------------


def measure_once(probes: AnalysisProbes, analysis: Analysis, **values: str) -> Any:
    state = probes.watch("shop", "g1", [analysis], values, "us-east-1", None, NOW)
    assert state[0].latest is None  # nothing measured yet: the caller never waits
    found = wait(lambda: probes.watch("shop", "g1", [analysis], values, "us-east-1", None, NOW))
    return found[0]


NOW = datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)


def wait(read: Callable[[], Any], timeout: float = 5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = read()
        if all(state.latest is not None for state in found):
            return found
        time.sleep(0.02)
    raise AssertionError("no measurement")


def prom(address: str | None = None, query: str = "up", **fields: Any) -> Analysis:
    prometheus_query: dict[str, Any] = {"query": query, "timeoutSeconds": 2}
    if address:
        prometheus_query["address"] = address
    return Analysis.model_validate(
        {"name": "error-rate", "prometheus": prometheus_query, "failIf": "> 0.01", **fields}
    )


@pytest.fixture
def other() -> Iterator[FakePrometheus]:
    server = FakePrometheus()
    yield server
    server.stop()


def test_the_daemons_token_reaches_its_own_prometheus_only(
    fake: FakePrometheus, other: FakePrometheus, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    settings = AnalysisSettings(prometheus_url=fake.url, bearer_token_file=str(token))
    probes = AnalysisProbes(lambda *a: None, settings)
    try:
        measure_once(probes, prom())
        assert fake.requests[-1]["headers"]["Authorization"] == "Bearer s3cret-token"
        # A spec naming another address (another port of the same host) gets nothing.
        measure_once(probes, prom(other.url), release="x")
        assert "Authorization" not in other.requests[-1]["headers"]
        # A rotated token is read at the next query.
        token.write_text("rotated")
        measure_once(probes, prom(fake.url + "/"), release="y")
        assert fake.requests[-1]["headers"]["Authorization"] == "Bearer rotated"
        token.unlink()
        state = measure_once(probes, prom(), release="z")
        assert state.latest.verdict is MeasurementVerdict.ERROR
        assert "bearer token file" in state.latest.detail and "rotated" not in str(state)
    finally:
        probes.close()


def test_measurements_are_judged_counted_and_counted_in_a_row(fake: FakePrometheus) -> None:
    counted: list[tuple[str, str, MeasurementVerdict]] = []
    forgotten: list[str] = []
    probes = AnalysisProbes(
        lambda *a: None,
        AnalysisSettings(prometheus_url=fake.url),
        on_measurement=lambda *args: counted.append(args),
        on_forget=forgotten.append,
    )
    analysis = prom(intervalSeconds=1, failuresAllowed=1)
    fake.answer = (200, vector("0.034"))
    try:
        probes.watch("shop", "g1", [analysis], {}, "us-east-1", None, NOW)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            (state,) = probes.watch("shop", "g1", [analysis], {}, "us-east-1", None, NOW)
            if state.failing:
                break
            time.sleep(0.05)
        # Twice, or more when a loaded machine let a third measurement in before this look.
        assert state.failing
        assert re.fullmatch(
            r"error-rate 0\.034 > 0\.01 (twice|\d+ times) in a row", state.failure_detail
        ), state.failure_detail
        assert counted[:2] == [("shop", "error-rate", MeasurementVerdict.FAILED)] * 2
        # A placeholder's value changing within the rollout (the old deployment goes)
        # keeps the count; an edited analysis, or another rollout, starts afresh.
        (kept,) = probes.watch("shop", "g1", [analysis], {"x": "y"}, "us-east-1", None, NOW)
        assert kept.consecutive_failures >= 2
        edited = prom(intervalSeconds=1, failuresAllowed=2)
        (fresh,) = probes.watch("shop", "g1", [edited], {}, "us-east-1", None, NOW)
        assert fresh.measurements == ()
        (fresh,) = probes.watch("shop", "g2", [analysis], {}, "us-east-1", None, NOW)
        assert fresh.measurements == () and fresh.consecutive_failures == 0
        probes.forget("shop")
        assert forgotten == ["shop"] and probes.watching() == []
    finally:
        probes.close()


def test_a_hanging_prometheus_never_holds_the_caller(fake: FakePrometheus) -> None:
    fake.delay = 3
    probes = AnalysisProbes(lambda *a: None, AnalysisSettings(prometheus_url=fake.url))
    try:
        started = time.monotonic()
        for _ in range(20):
            probes.watch("shop", "g1", [prom()], {}, "us-east-1", None, NOW)
        assert time.monotonic() - started < 1, "never waits for the answer (2 s timeout)"
        assert len(fake.requests) <= 1, "a measurement is never in flight twice"
    finally:
        probes.close()


def test_a_pass_no_measurement_followed_for_minutes_is_not_green(fake: FakePrometheus) -> None:
    """A proxy that drips its answer a byte at a time never trips the per-read timeout,
    so a measurement can hang far past ``timeoutSeconds`` (a saturated pool or CloudWatch's
    retries delay one too). Meanwhile the latest measurement, a pass from before, must not
    keep the gate green through a whole bake: a stale pass is evidence of nothing."""
    skew = [0.0]
    probes = AnalysisProbes(
        lambda *a: None,
        AnalysisSettings(prometheus_url=fake.url),
        monotonic=lambda: time.monotonic() + skew[0],
    )
    analysis = prom(intervalSeconds=1)
    fake.answer = (200, vector("0.001"))

    def look() -> Any:
        return probes.watch("shop", "g1", [analysis], {}, "us-east-1", None, NOW)

    try:
        (state,) = wait(look)
        assert state.state == "passing"
        fake.drip = 0.5  # the next measurement hangs, each byte well within the 2 s timeout
        deadline = time.monotonic() + 5
        while len(fake.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(fake.requests) == 2, "the next measurement is in flight"
        skew[0] = 600.0  # ten minutes later, that measurement still hangs
        (state,) = look()
        assert state.state == "unknown"
        assert re.match(r"no measurement for 60\ds \(one every 1s\)", state.unknown), state.unknown
        assert "the latest, passed, is too old to judge by" in state.unknown
    finally:
        fake.drip = 0
        probes.close()


def test_two_releases_with_the_same_analysis_name_are_measured_apart(
    fake: FakePrometheus,
) -> None:
    probes = AnalysisProbes(lambda *a: None, AnalysisSettings(prometheus_url=fake.url))
    query = prom(query='x{service="{{service}}"}')

    def both() -> list[Any]:
        return [
            probes.watch(name, "g", [query], {"service": name}, "us-east-1", None, NOW)[0]
            for name in ("shop", "web")
        ]

    try:
        wait(both)
        assert sorted(r["body"] for r in fake.requests) == [
            "query=x%7Bservice%3D%22shop%22%7D&timeout=2s",
            "query=x%7Bservice%3D%22web%22%7D&timeout=2s",
        ]
        assert probes.watching() == ["shop", "web"]
    finally:
        probes.close()


@pytest.mark.parametrize(
    ("analysis", "settings", "detail"),
    [
        pytest.param(
            prom(query='x{tg="{{targetGroup}}"}'),
            AnalysisSettings(prometheus_url="http://127.0.0.1:1"),
            "placeholder {{targetGroup}} has no value now",
            id="placeholder-without-value",
        ),
        pytest.param(prom(), AnalysisSettings(), "no Prometheus address", id="no-address-anywhere"),
        pytest.param(
            prom(),
            AnalysisSettings(prometheus_url="http://ecsop:hunter2@127.0.0.1:1"),
            "Prometheus http://REDACTED@127.0.0.1:1: unreachable",
            id="unreachable-redacted",
        ),
    ],
)
def test_what_cannot_be_measured_is_an_error_never_green(
    analysis: Analysis, settings: AnalysisSettings, detail: str
) -> None:
    probes = AnalysisProbes(lambda *a: None, settings)
    try:
        state = measure_once(probes, analysis)
    finally:
        probes.close()
    assert state.latest.verdict is MeasurementVerdict.ERROR
    assert detail in state.latest.detail and "hunter2" not in state.latest.detail
    assert state.unknown.startswith("cannot be measured: ") and not state.failing


# --- CloudWatch ---------------------------------------------------------------------------


class FakeCloudWatch:
    def __init__(self, *pages: dict[str, Any], error: AwsError | None = None) -> None:
        self.pages = list(pages)
        self.requests: list[dict[str, Any]] = []
        self.error = error

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        self.requests.append(dict(request))
        if self.error is not None:
            raise self.error
        return self.pages.pop(0)


T = [datetime(2026, 11, 23, 11, minute, tzinfo=UTC) for minute in range(60)]


def result(values: list[float], stamps: list[datetime], **extra: Any) -> dict[str, Any]:
    return {"Id": "ratio", "Timestamps": stamps, "Values": values, **extra}


@pytest.mark.parametrize(
    ("pages", "expected"),
    [
        pytest.param(
            [{"MetricDataResults": [result([0.02, 0.03], [T[57], T[58]])]}],
            (0.03, T[58]),
            id="newest-point",
        ),
        pytest.param(
            [
                {"MetricDataResults": [result([0.01], [T[55]])], "NextToken": "n"},
                {"MetricDataResults": [result([0.04], [T[59]])]},
            ],
            (0.04, T[59]),
            id="paginated",
        ),
        pytest.param([{"MetricDataResults": [result([], [])]}], None, id="no-data"),
        pytest.param([{"MetricDataResults": []}], None, id="no-result"),
    ],
)
def test_newest_value_reads_the_result_query(
    pages: list[dict[str, Any]], expected: tuple[float, datetime] | None
) -> None:
    client = FakeCloudWatch(*pages)
    start, end = metric_data.window(NOW, 300)
    assert (start, end) == (T[55], datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    queries = [{"id": "ratio", "expression": "1"}]
    assert metric_data.newest_value(client, queries, "ratio", start, end) == expected
    assert client.requests[0]["MetricDataQueries"] == [{"Id": "ratio", "Expression": "1"}]
    assert client.requests[0]["ScanBy"] == "TimestampDescending"


def test_a_result_cloudwatch_could_not_compute_is_an_error() -> None:
    page = {
        "MetricDataResults": [
            result([], [], StatusCode="InternalError", Messages=[{"Value": "Division by zero"}])
        ]
    }
    with pytest.raises(AwsError, match="Division by zero"):
        metric_data.newest_value(FakeCloudWatch(page), [], "ratio", T[0], T[5])


def test_cloudwatch_is_asked_over_a_window_ending_at_awss_time() -> None:
    """The window ends at the pass's AWS time, advanced by the (real) time since."""
    client = FakeCloudWatch({"MetricDataResults": [result([0.0], [T[58]])]})
    clock = [100.0]
    probes = AnalysisProbes(lambda *a: client, monotonic=lambda: clock[0])
    analysis = Analysis.model_validate(
        {
            "name": "ratio",
            "cloudwatch": {
                "metricDataQueries": [
                    {"id": "ratio", "expression": 'SUM(SEARCH(\'"{{service}}"\', "Sum", 60))'}
                ],
                "lookbackSeconds": 120,
            },
            "successIf": "< 0.01",
        }
    )
    try:
        probes.watch("shop", "g", [analysis], {"service": "api"}, "eu-west-1", None, NOW)
        clock[0] = 190.0  # 90 s later the first measurement runs
        (state,) = wait(
            lambda: probes.watch(
                "shop", "g", [analysis], {"service": "api"}, "eu-west-1", None, NOW
            )
        )
    finally:
        probes.close()
    assert state.latest.verdict is MeasurementVerdict.PASSED
    request = client.requests[0]
    assert request["MetricDataQueries"][0]["Expression"] == 'SUM(SEARCH(\'"api"\', "Sum", 60))'
    assert request["EndTime"] in (
        NOW.replace(second=0),
        NOW.replace(second=0) + timedelta(minutes=2),
    )


END = T[59] + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("since", "lookback", "period", "start"),
    [
        pytest.param(None, 300, 60, T[55], id="no-deployment-time"),
        pytest.param(T[40], 300, 60, T[55], id="older-than-the-lookback"),
        pytest.param(T[57], 300, 60, T[57], id="on-a-minute"),
        pytest.param(T[57] + timedelta(seconds=1), 300, 60, T[58], id="within-a-minute-the-next"),
        pytest.param(T[57], 300, 300, END, id="no-whole-period-yet"),
        pytest.param(T[53], 600, 300, T[55], id="whole-periods-only"),
        pytest.param(T[40], 600, 300, T[50], id="period-older-than-the-lookback"),
    ],
)
def test_the_window_starts_no_earlier_than_the_judged_deployment(
    since: datetime | None, lookback: int, period: int, start: datetime
) -> None:
    """A datapoint of a minute the deployment began in (or before) is the old revision's;
    one of a period cut short by the window's start reads low."""
    assert metric_data.window(NOW, lookback, since, period) == (start, END)


def test_a_rollout_is_never_judged_on_datapoints_from_before_it_began() -> None:
    """A service-wide metric (or green's target group, which served the revision before
    last) has datapoints from before the deployment: they are the old revision's, and a
    pass on them would carry a short bake. Until a minute of the new deployment is
    complete, there is no data."""
    client = FakeCloudWatch({"MetricDataResults": [result([0.0], [T[58]])]})
    probes = AnalysisProbes(lambda *a: client)
    analysis = Analysis.model_validate(
        {
            "name": "ratio",
            "cloudwatch": {"metricDataQueries": [{"id": "ratio", "expression": "1"}]},
            "failIf": "> 0.01",
        }
    )
    began = NOW - timedelta(seconds=20)  # 12:00:10: no minute of it is complete yet

    def look() -> Any:
        return probes.watch("shop", "g", [analysis], {}, "eu-west-1", None, NOW, since=began)

    try:
        (state,) = wait(look)
    finally:
        probes.close()
    assert state.latest.verdict is MeasurementVerdict.INCONCLUSIVE, state.latest
    assert state.latest.detail == "no data"
    assert client.requests == [], "no window to ask about"


def test_an_aws_error_is_an_error_measurement_naming_it() -> None:
    client = FakeCloudWatch(error=AwsError("AccessDenied", "not authorized", "GetMetricData"))
    probes = AnalysisProbes(lambda *a: client)
    analysis = Analysis.model_validate(
        {
            "name": "ratio",
            "cloudwatch": {"metricDataQueries": [{"id": "ratio", "expression": "1"}]},
            "failIf": "> 1",
        }
    )
    try:
        state = measure_once(probes, analysis)
    finally:
        probes.close()
    assert state.latest.verdict is MeasurementVerdict.ERROR
    assert state.latest.detail == "CloudWatch GetMetricData: AccessDenied: not authorized"


def test_plan_measures_nothing(fake: FakePrometheus) -> None:
    """`ecsop plan` cannot see the daemon's measurements and makes none of its own."""
    probes = AnalysisProbes(
        lambda *a: None, AnalysisSettings(prometheus_url=fake.url), measuring=False
    )
    try:
        for _ in range(3):
            (state,) = probes.watch("shop", "g1", [prom()], {}, "us-east-1", None, NOW)
            time.sleep(0.05)
        assert state.unknown == "no measurement yet"
        assert fake.requests == [] and probes.watching() == []
    finally:
        probes.close()


@pytest.mark.parametrize(
    ("seconds", "sent"),
    [
        pytest.param(10.0, "10s", id="whole"),
        pytest.param(2.5, "2500ms", id="fraction"),
        pytest.param(0.0004, "1ms", id="below-a-millisecond"),
    ],
)
def test_the_query_timeout_is_sent_as_a_duration_prometheus_reads(
    seconds: float, sent: str
) -> None:
    """Prometheus's durations take whole units: ``2.5s`` is refused with ``bad_data``."""
    assert prometheus.duration(seconds) == sent
