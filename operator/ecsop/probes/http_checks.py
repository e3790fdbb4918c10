"""HTTP checks: a release's smoke-test URLs, polled while it rolls out and bakes.

Owned by ``ecsop.health.HealthProber``, which calls ``HttpProbes.watch`` on
each pass and ``forget`` once the rollout is judged. Requests run on a pool of
their own, each time-boxed by the check's ``timeoutSeconds``, so a slow or
hanging endpoint never holds a reconcile worker; a pass only reads the latest
verdicts. Redirects are not followed: a 302 is the answer to judge.

Secrets (``headers[].valueFrom``, ``basicAuth``) are read at every request,
from ``ECSOP_CHECK_*`` environment variables or files of ``CHECK_SECRETS_DIR``.
One that is missing makes the check unknown, never green and never failed,
with a message naming the variable or file. A URL is only ever shown
``redacted``, and secret values never reach a message or a log line.
"""

from __future__ import annotations

import base64
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from ecsop import __version__
from ecsop.probes.interval_scheduler import IntervalScheduler
from ecsop.spec.http_check import HttpCheck, SecretFrom
from ecsop.spec.quoting import REDACTED, redacted

log = structlog.get_logger("ecsop.probes.health")

USER_AGENT = f"ecsop/{__version__} (http-check)"
CHECK_SECRETS_DIR = Path("/etc/ecsop/check-secrets")
"""Where ``valueFrom: {file: NAME}`` is read: mount the checks' secrets here."""


class Unjudgeable(Exception):
    """A check cannot be run: a secret it needs is missing. Names the secret, not its value."""


def request_headers(
    check: HttpCheck,
    secrets_dir: Path = CHECK_SECRETS_DIR,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers of one request of ``check``, its secrets read now."""
    environ = os.environ if environ is None else environ
    headers = {"User-Agent": USER_AGENT}
    for header in check.headers:
        headers[header.name] = _secret(header.value_from, secrets_dir, environ)
    if check.basic_auth is not None:
        user = _secret(check.basic_auth.username_from, secrets_dir, environ)
        password = _secret(check.basic_auth.password_from, secrets_dir, environ)
        pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {pair}"
    return headers


def _secret(source: SecretFrom, secrets_dir: Path, environ: Mapping[str, str]) -> str:
    if source.env is not None:
        value = environ.get(source.env)
        if value is None:
            raise Unjudgeable(f"{source} is not set")
    else:
        path = secrets_dir / str(source.file)
        try:
            value = path.read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise Unjudgeable(f"{source} cannot be read ({path}: {why})") from None
    if not value or any(char in value for char in "\r\n\0"):
        raise Unjudgeable(f"{source} is empty or holds a line break")
    return value


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is the answer to judge, not a hop to follow."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def http_check(
    check: HttpCheck,
    opener: urllib.request.OpenerDirector,
    headers: Mapping[str, str] | None = None,
) -> tuple[bool, str]:
    """One GET of ``check.url``: (passed, what happened in a few words).

    ``headers``: from ``request_headers`` (which raises ``Unjudgeable``); by
    default only the User-Agent, for a check without secrets.
    """
    sent = dict(headers or {"User-Agent": USER_AGENT})
    passed, what = _get(check, opener, sent)
    for value in sent.values():  # an exception text must never carry a secret
        if len(value) >= 4 and value != USER_AGENT:
            what = what.replace(value, REDACTED)
    return passed, what.replace(check.url, redacted(check.url))


def _get(
    check: HttpCheck, opener: urllib.request.OpenerDirector, headers: dict[str, str]
) -> tuple[bool, str]:
    request = urllib.request.Request(check.url, headers=headers)
    try:
        with opener.open(request, timeout=check.timeout_seconds) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return False, f"{type(cause).__name__}: {cause}"
    if status == check.expect_status:
        return True, f"HTTP {status}"
    return False, f"HTTP {status}, expected {check.expect_status}"


@dataclass
class _Check:
    check: HttpCheck
    due: float
    runs: int = 0
    failures: int = 0
    """Consecutive failures."""
    successes: int = 0
    """Consecutive passes."""
    last: str = ""
    unknown: str = ""
    """Why the check cannot be judged now (a missing secret); empty when it can."""
    in_flight: bool = False

    @property
    def interval_seconds(self) -> float:
        return float(self.check.interval_seconds)


@dataclass
class _Watch:
    generation: str
    checks: list[_Check] = field(default_factory=list)


class HttpProbes(IntervalScheduler[_Watch, _Check]):
    """Runs each watched release's HTTP checks on their intervals, off the reconcile workers.

    ``watch`` starts (or keeps) a release's checks and returns the latest
    verdicts; ``forget`` stops them. A new ``generation`` (another rollout)
    starts the counts afresh. One scheduler thread hands due checks to a
    thread pool; a check is never in flight twice.
    """

    def __init__(
        self,
        workers: int = 8,
        opener: urllib.request.OpenerDirector | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        secrets_dir: Path = CHECK_SECRETS_DIR,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._opener = opener or urllib.request.build_opener(_NoRedirect)
        self._secrets_dir = secrets_dir
        self._environ = environ
        super().__init__(workers, "http-check", monotonic)

    def watch(
        self, name: str, generation: str, checks: Iterable[HttpCheck]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(failing checks with why, checks without a verdict) for ``name``'s checks.

        A check without a verdict is its redacted URL (no result yet), or its
        redacted URL with why it cannot be judged (``pending_wording`` says which).
        """
        wanted = list(checks)
        with self._cond:
            current = self._watches.get(name)
            if (
                current is None
                or current.generation != generation
                or [c.check for c in current.checks] != wanted
            ):
                now = self._monotonic()
                current = _Watch(generation, [_Check(check, due=now) for check in wanted])
                self._watches[name] = current
                self._start()
                self._cond.notify_all()
            failing = tuple(
                f"{redacted(c.check.url)}: {c.last} ({c.failures} consecutive failures)"
                for c in current.checks
                if c.failures > c.check.failures_allowed and not c.unknown
            )
            pending = tuple(
                f"{redacted(c.check.url)} (cannot be judged: {c.unknown})"
                if c.unknown
                else redacted(c.check.url)
                for c in current.checks
                if c.runs == 0 or c.unknown
            )
        return failing, pending

    def passes(self, name: str) -> dict[str, int]:
        """Each of ``name``'s checks (redacted URL) -> its consecutive passes so far."""
        with self._cond:
            current = self._watches.get(name)
            if current is None:
                return {}
            return {redacted(c.check.url): c.successes for c in current.checks}

    def _items(self, watch: _Watch) -> list[_Check]:
        return watch.checks

    def _run(self, name: str, watch: _Watch, check: _Check) -> None:
        try:
            headers = request_headers(check.check, self._secrets_dir, self._environ)
        except Unjudgeable as exc:
            with self._cond:
                check.in_flight = False
                first = not check.unknown
                check.unknown = str(exc)
            if first:
                log.warning(
                    "HTTP check cannot be judged",
                    release=name,
                    url=redacted(check.check.url),
                    why=str(exc),
                )
            return
        passed, what = http_check(check.check, self._opener, headers)
        with self._cond:
            check.in_flight = False
            check.unknown = ""
            if self._watches.get(name) is not watch:
                return  # forgotten, or a new rollout started meanwhile
            check.runs += 1
            check.failures = 0 if passed else check.failures + 1
            check.successes = check.successes + 1 if passed else 0
            check.last = what
            self._cond.notify_all()
        if not passed and check.failures == check.check.failures_allowed + 1:
            log.warning(
                "HTTP check failing", release=name, url=redacted(check.check.url), result=what
            )


def pending_wording(item: str) -> str:
    """How ``HealthProber`` names a check without a verdict, from a ``watch`` pending item."""
    # URLs hold no whitespace (the spec refuses it): a space means "why" follows.
    return f"HTTP check {item}" if " " in item else f"HTTP check {item} (no result yet)"
