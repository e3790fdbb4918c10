"""The last few deployments of each release for ``/status``: read on demand, briefly cached.

No reconcile pass reads history: it costs nothing while nobody asks. A
``/status`` request reads the releases whose cached history is older than
``ttl_seconds`` (or whose service, phase, deployment or failed record changed
since), concurrently on a small pool of its own, and waits at most
``deadline_seconds``: a read still running then is shown by the next request.
Errors are cached like answers, so a missing IAM permission costs one call
per release per ``ttl_seconds``, not one per request.

Reconciling comes first. A read takes only API-budget tokens that exist now
(``ecsop.aws.budget.deferrable(0)``), never a future one a reconcile call would
then wait behind. Without that, a dashboard polling ``/status`` of a large
fleet keeps the pool's four workers reserving tokens in the buckets they share
with the daemon's own reads (DescribeTaskDefinition, after a restart): four of
every five such tokens go to history, deploys are deferred and a rollback
queues behind them. A read the budget cannot serve now is not cached: the release shows
what was read before with ``historyPending``, and no read starts until the
token the budget named exists, so a deferral costs one call built, not one
per release.

``ecsop history NAME`` reads the same thing without a cache
(``ecsop.aws.ecs.EcsGateway.release_history``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from ecsop.aws import budget
from ecsop.aws.clients import AwsError
from ecsop.aws.service_cache import GatewayFor
from ecsop.decision.ecs_state import Fingerprint
from ecsop.decision.memory import FailedRecord
from ecsop.decision.reasons import Failure
from ecsop.observability.status import ReleaseStatus
from ecsop.spec.loader import LoadedRelease


@dataclass(frozen=True)
class HistorySettings:
    entries: int = 3
    """Deployments ``/status`` shows per release; 0 shows none and reads nothing."""
    ttl_seconds: float = 600.0
    """A release's history is read again when older than this (a change of its phase,
    deployment or failed record reads it again at once)."""
    deadline_seconds: float = 2.0
    """How long a ``/status`` answer waits for the reads it started."""
    workers: int = 4
    """Releases read at once."""


PENDING = "reconciling comes first: read when the API budget has a call to spare"
"""``historyPending``: the read waits for a token no reconcile call needs."""


@dataclass(frozen=True)
class _Cached:
    key: tuple[str, ...]
    read_at: float
    value: Mapping[str, Any]


class StatusHistory:
    """``per_release`` for ``ecsop.observability.server.Endpoint``: name -> history fields."""

    def __init__(
        self,
        gateway_for: GatewayFor,
        release: Callable[[str], LoadedRelease | None],
        status: Callable[[str], ReleaseStatus | None],
        settings: HistorySettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gateway_for = gateway_for
        self._release = release
        self._status = status
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}
        self._reading: dict[str, Future[None]] = {}
        self._postponed: set[str] = set()
        self._quiet_until = float("-inf")
        """No read starts before this: the API budget had no token to spare."""
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, names: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        if self._settings.entries <= 0:
            return {}
        now = self._clock()
        pending: list[Future[None]] = []
        for name in names:
            loaded = self._release(name)
            if loaded is None:
                continue
            key = self._key(loaded, self._status(name))
            with self._lock:
                cached = self._cache.get(name)
                fresh = (
                    cached is not None
                    and cached.key == key
                    and now - cached.read_at < self._settings.ttl_seconds
                )
                if fresh or name in self._reading:
                    if name in self._reading:
                        pending.append(self._reading[name])
                    continue
                if now < self._quiet_until:
                    self._postponed.add(name)
                    continue
                future = self._executor().submit(self._read, name, loaded, key)
                self._reading[name] = future
                pending.append(future)
        if pending:
            wait(pending, timeout=self._settings.deadline_seconds)
        with self._lock:
            return {name: self._shown(name) for name in names if self._has(name)}

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self._settings.workers, thread_name_prefix="ecsop-history"
            )
        return self._pool

    def _has(self, name: str) -> bool:
        return name in self._cache or name in self._postponed

    def _shown(self, name: str) -> Mapping[str, Any]:
        cached = self._cache.get(name)
        value = cached.value if cached is not None else {}
        if name not in self._postponed:
            return value
        return {**value, "historyPending": PENDING}

    def _key(self, loaded: LoadedRelease, status: ReleaseStatus | None) -> tuple[str, ...]:
        spec = loaded.release.spec
        return (
            loaded.region,
            spec.role_arn or "",
            spec.cluster,
            spec.service,
            status.phase.value if status else "",
            status.deployment_id if status else "",
            status.failed_fingerprint if status else "",
        )

    def _read(self, name: str, loaded: LoadedRelease, key: tuple[str, ...]) -> None:
        with self._lock:
            if self._clock() < self._quiet_until:  # queued before the budget said no
                self._postpone(name, 0.0)
                return
        spec = loaded.release.spec
        status = self._status(name)
        failed = None
        if status is not None and status.failed_fingerprint:
            failed = FailedRecord(Fingerprint(status.failed_fingerprint), _failure(status))
        value: Mapping[str, Any]
        try:
            gateway = self._gateway_for(loaded.region, spec.role_arn)
            with budget.deferrable(0.0):
                found = gateway.release_history(
                    spec.cluster, spec.service, loaded.release, failed, self._settings.entries
                )
            value = {"history": [entry.to_json() for entry in found]}
        except budget.BudgetDeferred as deferred:
            with self._lock:
                self._postpone(name, deferred.seconds)
            return
        except AwsError as error:
            value = {"historyError": f"{error.code}: {error.message}"}
        except Exception as error:  # shown, never raised into the HTTP handler
            value = {"historyError": f"{type(error).__name__}: {error}"}
        with self._lock:
            self._cache[name] = _Cached(key, self._clock(), value)
            self._reading.pop(name, None)
            self._postponed.discard(name)

    def _postpone(self, name: str, seconds: float) -> None:
        """Under the lock: leave ``name`` to a request after ``seconds`` from now."""
        self._postponed.add(name)
        self._reading.pop(name, None)
        self._quiet_until = max(self._quiet_until, self._clock() + seconds)


def _failure(status: ReleaseStatus) -> Failure:
    try:
        return Failure(status.failed_reason)
    except ValueError:
        return Failure.FAILED_TASKS
