"""Analysis gates: a release's metric queries, measured while it rolls out and bakes.

Owned by ``ecsop.probes.health.HealthProber``, which calls ``AnalysisProbes.watch``
on each pass whose situation judges a rollout (``situation.Probe.GATES``) and
``forget`` once the rollout is judged. Like HTTP checks, measurements run on a
scheduler thread and a bounded pool of their own, each time-boxed, so a slow
Prometheus or CloudWatch never holds a reconcile worker; a pass only reads the
latest ``AnalysisState`` of each analysis. A new rollout (another generation:
fingerprint and deployment) or a changed query starts the measurements afresh.

- Prometheus: ``ecsop.probes.prometheus.instant_query`` against the analysis's
  ``address`` or the daemon's ``--prometheus-url``. The daemon's credentials
  (userinfo in ``--prometheus-url``, a bearer token from a file or
  ``ECSOP_PROMETHEUS_BEARER_TOKEN``) are sent only to that URL's own origin
  (scheme, host, port): a spec naming another address can never collect them.
  A token file is read at every query, so a rotated token is used at once.
- CloudWatch: ``ecsop.aws.metric_data.newest_value`` with the release's region
  and role, over a window ending at AWS's time (the last pass's, advanced by
  the time elapsed since), so the sandbox's fast clock works as AWS's does.

Each measurement is logged, counted (``on_measurement``: the daemon's
``ecsop_analysis_measurements_total``) and kept (``decision.analysis``).
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from ecsop.aws import clients as aws
from ecsop.aws import metric_data
from ecsop.decision.analysis import (
    AnalysisState,
    Measurement,
    MeasurementVerdict,
    as_of,
    judge,
    measured,
    missing_value,
    number,
)
from ecsop.probes import prometheus
from ecsop.probes.interval_scheduler import IntervalScheduler
from ecsop.spec.analysis import Analysis
from ecsop.spec.query_text import fill

log = structlog.get_logger("ecsop.probes.analysis")

ClientFor = Callable[[str, str | None, str | None], Any]
"""(service name, region, role ARN) -> boto3 client: ``ClientFactory.client``."""
TOKEN_VARIABLE = "ECSOP_PROMETHEUS_BEARER_TOKEN"
"""Where ``ecsop run`` reads a bearer token when no token file is given."""


@dataclass(frozen=True)
class AnalysisSettings:
    """Daemon-wide analysis settings (``ecsop run --prometheus-*``)."""

    prometheus_url: str = field(default="", repr=False)
    """Default Prometheus for analyses without ``address``; may carry ``user:password@``."""
    bearer_token_file: str = ""
    """A file holding a bearer token for ``prometheus_url``'s origin, read at every query."""
    bearer_token: str = field(default="", repr=False)
    """A bearer token for that origin (``ECSOP_PROMETHEUS_BEARER_TOKEN``), if no file."""
    workers: int = 4
    """Measurements in flight at once, across every release (their own pool)."""


class Unmeasurable(Exception):
    """A measurement could not be made; the text says why, without secrets."""


def _origin(address: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(address)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def filled(value: Any, values: Mapping[str, str]) -> Any:
    """``value`` (a query's text or structure) with every placeholder filled."""
    try:
        if isinstance(value, str):
            return fill(value, dict(values))
        if isinstance(value, Mapping):
            return {key: filled(item, values) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [filled(item, values) for item in value]
    except KeyError as exc:
        raise Unmeasurable(missing_value(str(exc.args[0]))) from None
    return value


@dataclass
class _Item:
    analysis: Analysis
    due: float
    state: AnalysisState
    in_flight: bool = False
    measured_at: float = 0.0
    """``monotonic()`` when the latest measurement ended."""

    @property
    def interval_seconds(self) -> float:
        return float(self.analysis.interval_seconds)


@dataclass
class _Watch:
    key: tuple[Any, ...]
    """(generation, analyses): a change starts afresh. The rest follows each pass."""
    items: list[_Item]
    values: Mapping[str, str]
    region: str
    role: str | None
    aws_now: datetime
    at: float
    """``monotonic()`` when ``aws_now`` was AWS's time."""
    since: datetime | None = None
    """When the judged deployment was created: CloudWatch reads no earlier minute."""


class AnalysisProbes(IntervalScheduler[_Watch, _Item]):
    """Runs each watched release's analyses on their intervals, off the reconcile workers."""

    def __init__(
        self,
        clients: ClientFor,
        settings: AnalysisSettings | None = None,
        *,
        on_measurement: Callable[[str, str, MeasurementVerdict], None] | None = None,
        on_forget: Callable[[str], None] | None = None,
        open_url: urllib.request.OpenerDirector | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        measuring: bool = True,
    ) -> None:
        """``measuring`` False (``ecsop plan``): nothing is ever measured, every state stays
        "no measurement yet", since a one-shot command cannot see the daemon's."""
        self.settings = settings or AnalysisSettings()
        self._measuring = measuring
        self._clients = clients
        self._on_measurement = on_measurement
        self._on_forget = on_forget
        self._open_url = open_url or prometheus.opener()
        self._wall = wall
        super().__init__(self.settings.workers, "analysis", monotonic)

    def watch(
        self,
        name: str,
        generation: str,
        analyses: Sequence[Analysis],
        values: Mapping[str, str],
        region: str,
        role: str | None,
        now: datetime,
        since: datetime | None = None,
    ) -> tuple[AnalysisState, ...]:
        """The latest state of each of ``name``'s analyses; starts (or keeps) measuring them.

        ``now`` is AWS's time of this pass (CloudWatch windows end there), ``since``
        the judged deployment's creation (they start no earlier).
        """
        key = (generation, tuple(analyses))
        with self._cond:
            current = self._watches.get(name)
            at = self._monotonic()
            if current is None or current.key != key:
                items = [
                    _Item(a, due=at, state=AnalysisState(a.name, a.failures_allowed))
                    for a in analyses
                ]
                current = _Watch(key, items, dict(values), region, role, now, at, since)
                if not self._measuring:
                    return tuple(item.state for item in items)
                self._watches[name] = current
                self._start()
                self._cond.notify_all()
            else:
                # A placeholder's value may change within a rollout (the old deployment
                # goes): later measurements use it; the failures in a row are kept.
                current.values, current.region, current.role = dict(values), region, role
                current.aws_now, current.at = now, at
            return tuple(as_of(i.state, i.analysis, at - i.measured_at) for i in current.items)

    def _forgotten(self, name: str) -> None:
        if self._on_forget is not None:
            self._on_forget(name)

    def _items(self, watch: _Watch) -> list[_Item]:
        return watch.items

    def _run(self, name: str, watch: _Watch, item: _Item) -> None:
        analysis = item.analysis
        try:
            value = self.measure(analysis, watch)
        except Unmeasurable as exc:
            verdict, detail, value = MeasurementVerdict.ERROR, str(exc), None
        except Exception as exc:  # a measurement must never kill the pool's thread
            # Its type only: an unexpected message or traceback might quote an address
            # with its credentials.
            log.error(
                "analysis measurement crashed",
                release=name,
                analysis=analysis.name,
                error=type(exc).__name__,
            )
            verdict, detail, value = (
                MeasurementVerdict.ERROR,
                f"crashed: {type(exc).__name__}",
                None,
            )
        else:
            verdict, detail = judge(analysis, value)
        measurement = Measurement(self._wall(), verdict, value, detail)
        with self._cond:
            item.in_flight = False
            if self._watches.get(name) is not watch:
                return  # forgotten, or a new rollout started meanwhile
            was_failing = item.state.failing
            item.state = measured(item.state, measurement)
            item.measured_at = self._monotonic()
            state = item.state
            self._cond.notify_all()
        if self._on_measurement is not None:
            self._on_measurement(name, analysis.name, verdict)
        log.info(
            "analysis measurement",
            release=name,
            analysis=analysis.name,
            verdict=verdict.value,
            value=None if value is None else number(value),
            detail=detail,
            failed_in_a_row=state.consecutive_failures,
            failures_allowed=analysis.failures_allowed,
        )
        if state.failing and not was_failing:
            log.warning("analysis failing", release=name, detail=state.failure_detail)

    # --- measuring -------------------------------------------------------------------

    def measure(self, analysis: Analysis, watch: _Watch) -> float | None:
        """One measurement's value (None: no data); ``Unmeasurable`` says why there is none."""
        if analysis.prometheus is not None:
            query = analysis.prometheus
            address = query.address or self.settings.prometheus_url
            if not address:
                raise Unmeasurable(
                    "no Prometheus address: give prometheus.address, or start the daemon "
                    "with --prometheus-url (env ECSOP_PROMETHEUS_URL)"
                )
            text = filled(query.query, watch.values)
            try:
                return prometheus.instant_query(
                    address,
                    text,
                    query.timeout_seconds,
                    headers=self._credentials(address),
                    open_url=self._open_url,
                )
            except prometheus.QueryError as exc:
                raise Unmeasurable(str(exc)) from None
        assert analysis.cloudwatch is not None
        cloudwatch = analysis.cloudwatch
        queries = filled(
            [
                q.model_dump(by_alias=True, exclude_none=True)
                for q in cloudwatch.metric_data_queries
            ],
            watch.values,
        )
        elapsed = max(0.0, self._monotonic() - watch.at)
        start, end = metric_data.window(
            watch.aws_now + timedelta(seconds=elapsed),
            cloudwatch.lookback_seconds,
            watch.since,
            cloudwatch.longest_period,
        )
        if start >= end:
            return None  # no whole minute of the judged deployment yet
        try:
            client = self._clients("cloudwatch", watch.region, watch.role)
            newest = metric_data.newest_value(client, queries, cloudwatch.result_id, start, end)
        except aws.AwsError as exc:
            raise Unmeasurable(f"CloudWatch GetMetricData: {exc.code}: {exc.message}") from None
        return None if newest is None else newest[0]

    def _credentials(self, address: str) -> dict[str, str]:
        """The daemon's credentials, for its own Prometheus's origin only."""
        default = self.settings.prometheus_url
        if not default or _origin(address) != _origin(default):
            return {}
        headers: dict[str, str] = {}
        if "@" in urllib.parse.urlsplit(default).netloc and "@" not in address:
            _, basic = prometheus.without_userinfo(default)
            headers["Authorization"] = basic or ""
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _token(self) -> str:
        path = self.settings.bearer_token_file
        if not path:
            return self.settings.bearer_token
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise Unmeasurable(
                f"the Prometheus bearer token file {path} cannot be read: {why}"
            ) from None
        if not token or any(c in token for c in "\r\n\0"):
            raise Unmeasurable(f"the Prometheus bearer token file {path} is empty or not one line")
        return token
