"""HTTP checks: a release's smoke-test URLs, polled while it rolls out and bakes.

Owned by ``ecsop.health.HealthProber``, which calls ``HttpProbes.watch`` on
each pass and ``forget`` once the rollout is judged. Requests run on a pool of
their own, each time-boxed by the check's ``timeoutSeconds``, so a slow or
hanging endpoint never holds a reconcile worker; a pass only reads the latest
verdicts. Redirects are not followed: a 302 is the answer to judge.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog

from ecsop import __version__
from ecsop.spec.model import HttpCheck

log = structlog.get_logger("ecsop.probes.health")

USER_AGENT = f"ecsop/{__version__} (http-check)"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is the answer to judge, not a hop to follow."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def http_check(check: HttpCheck, opener: urllib.request.OpenerDirector) -> tuple[bool, str]:
    """One GET of ``check.url``: (passed, what happened in a few words)."""
    request = urllib.request.Request(check.url, headers={"User-Agent": USER_AGENT})
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
    last: str = ""
    in_flight: bool = False


@dataclass
class _Watch:
    generation: str
    checks: list[_Check] = field(default_factory=list)


class HttpProbes:
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
    ) -> None:
        self._opener = opener or urllib.request.build_opener(_NoRedirect)
        self._monotonic = monotonic
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ecsop-http-check")
        self._cond = threading.Condition()
        self._watches: dict[str, _Watch] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(
        self, name: str, generation: str, checks: Iterable[HttpCheck]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(failing checks with why, URLs with no result yet) for ``name``'s checks."""
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
                f"{c.check.url}: {c.last} ({c.failures} consecutive failures)"
                for c in current.checks
                if c.failures > c.check.failures_allowed
            )
            pending = tuple(c.check.url for c in current.checks if c.runs == 0)
        return failing, pending

    def forget(self, name: str) -> None:
        with self._cond:
            self._watches.pop(name, None)

    def watching(self) -> list[str]:
        with self._cond:
            return sorted(self._watches)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._watches.clear()
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._schedule, name="ecsop-http-scheduler", daemon=True
            )
            self._thread.start()

    def _schedule(self) -> None:
        with self._cond:
            while not self._closed:
                now = self._monotonic()
                wake: float | None = None
                for name, watch in self._watches.items():
                    for check in watch.checks:
                        if check.in_flight:
                            continue
                        if check.due <= now:
                            check.in_flight = True
                            check.due = now + check.check.interval_seconds
                            self._pool.submit(self._run, name, watch, check)
                        else:
                            wake = check.due if wake is None else min(wake, check.due)
                self._cond.wait(None if wake is None else max(wake - now, 0.01))

    def _run(self, name: str, watch: _Watch, check: _Check) -> None:
        passed, what = http_check(check.check, self._opener)
        with self._cond:
            check.in_flight = False
            if self._watches.get(name) is not watch:
                return  # forgotten, or a new rollout started meanwhile
            check.runs += 1
            check.failures = 0 if passed else check.failures + 1
            check.last = what
            self._cond.notify_all()
        if not passed and check.failures == check.check.failures_allowed + 1:
            log.warning("HTTP check failing", release=name, url=check.check.url, result=what)
