"""The control loop: a work queue of release names, workers, resync, watching.

Shaped like controller-runtime: triggers (the spec watcher, the periodic
resync, requeues) put release *names* on a de-duplicating queue; a bounded
pool of workers takes one name at a time, observes afresh, asks the pure
``reconciler.decide`` for one action, has ``executor`` carry it out, and
requeues: after ``requeue_after`` when the decision asks, with per-release
exponential backoff after an error, or on the next resync otherwise.

Callers: ``ecsop run`` builds one ``Controller`` and runs it until SIGTERM.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import structlog

from ecsop.aws.service_cache import GatewayFor, ServiceObserver, observation_of
from ecsop.controller import executor
from ecsop.controller.recorder import DecisionRecorder
from ecsop.decision.actions import (
    Action,
    Deploy,
    Phase,
    Reason,
    RecordFailure,
    Rollback,
    Wait,
)
from ecsop.decision.decide import decide
from ecsop.decision.ecs_state import ServiceMissing
from ecsop.decision.gates import needs_health
from ecsop.decision.observation import Options
from ecsop.observability.metrics import Metrics
from ecsop.observability.status import StatusStore
from ecsop.probes.health import HealthProber
from ecsop.runtime.workqueue import RateLimitingQueue
from ecsop.spec import loader as source
from ecsop.spec.loader import LoadedRelease, SpecSet
from ecsop.spec.watcher import SpecWatcher

log = structlog.get_logger("ecsop.controller.manager")


@dataclass(frozen=True)
class ControllerSettings:
    specs: Path
    """The spec directory (may be, or be under, git-sync's symlink)."""
    default_region: str
    """Region of releases whose spec does not name one."""
    resync_seconds: float = 30.0
    """Every release is observed (in batches) and reconciled this often."""
    active_poll_seconds: float = 5.0
    """Releases with a rollout in progress are observed this often."""
    workers: int = 4
    """Releases reconciled at once; each holds at most one AWS call in flight."""
    self_heal: bool = True
    """Put back services changed outside ecsop (else report them only)."""
    allow_mutable_tags: bool = False
    """Accept images pinned by tag only."""
    debounce_seconds: float = 0.05
    """Quiet time after a burst of file events before the directory is read."""
    shutdown_grace_seconds: float = 30.0
    """On SIGTERM, how long to wait for reconciles in flight to finish."""


class Controller:
    def __init__(
        self,
        settings: ControllerSettings,
        gateway_for: GatewayFor,
        metrics: Metrics,
        statuses: StatusStore | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        prober: HealthProber | None = None,
    ) -> None:
        self.settings = settings
        self.prober = prober
        """Health gates (target health, alarms, HTTP checks); None judges ECS's signals only."""
        self.metrics = metrics
        self.statuses = statuses or StatusStore()
        self.recorder = DecisionRecorder(self.statuses, metrics, clock)
        self.queue = RateLimitingQueue(
            on_depth=metrics.workqueue_depth.set, on_retry=metrics.workqueue_retries.inc
        )
        self.observer = ServiceObserver(gateway_for, max_age_seconds=settings.resync_seconds)
        self._gateway_for = gateway_for
        self._clock = clock
        self._options = Options(
            self_heal=settings.self_heal, active_poll_seconds=settings.active_poll_seconds
        )
        self._load_lock = threading.Lock()
        """Guards ``_specs`` and ``_last_valid``; held only to read or swap them."""
        self._reload_lock = threading.Lock()
        """One directory read at a time (watcher and resync both reload; the cache is shared)."""
        self._parse_cache = source.ParseCache()
        self._specs = SpecSet(releases={}, errors=[], files=0, commit=None)
        self._last_valid: dict[str, LoadedRelease] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watcher: SpecWatcher | None = None
        self.specs_loaded = threading.Event()
        self.aws_reachable = threading.Event()

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self.reload_specs()
        self._watcher = SpecWatcher(
            self.settings.specs,
            on_change=self.reload_specs,
            debounce_seconds=self.settings.debounce_seconds,
        )
        self._watcher.start()
        for index in range(self.settings.workers):
            self._spawn(self._work, f"ecsop-worker-{index}")
        self._spawn(self._resync_forever, "ecsop-resync")
        log.info(
            "controller started", specs=str(self.settings.specs), workers=self.settings.workers
        )

    def stop(self) -> None:
        """Stop taking work; let reconciles in flight finish their AWS call."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.stop()
        self.queue.shutdown()
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        log.info("controller stopped")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # --- triggers --------------------------------------------------------------------

    def reload_specs(self) -> None:
        """Read the directory; queue the releases whose spec changed, appeared or vanished."""
        with self._reload_lock:
            self._reload_specs()

    def _reload_specs(self) -> None:
        # Reading files and running git happen outside ``_load_lock``, which
        # every worker takes at the start and end of a pass.
        fresh = source.load(
            [self.settings.specs],
            default_region=self.settings.default_region,
            allow_mutable_tags=self.settings.allow_mutable_tags,
            cache=self._parse_cache,
        )
        with self._load_lock:
            before = self._specs
            self._specs = fresh
            self._last_valid.update(fresh.releases)
            for name in list(self._last_valid):
                if name not in fresh.releases and name not in fresh.invalid_releases:
                    del self._last_valid[name]
        self.metrics.set_specs([e.file for e in fresh.errors], len(fresh.errors), fresh.commit)
        if fresh.errors and [str(e) for e in fresh.errors] != [str(e) for e in before.errors]:
            for error in fresh.errors:
                log.warning(
                    "invalid spec",
                    file=error.file,
                    line=error.line,
                    field=error.field,
                    error=error.message,
                    release=error.release,
                )
        changed = {
            name
            for name, loaded in fresh.releases.items()
            if name not in before.releases or before.releases[name].release != loaded.release
        }
        vanished = set(before.releases) - set(fresh.releases)
        invalid = set(fresh.invalid_releases) - set(before.invalid_releases)
        for name in sorted(changed | vanished | invalid):
            loaded = fresh.releases.get(name) or self._last_valid.get(name)
            if loaded is not None:
                self.observer.invalidate(loaded)
            self.queue.add(name)
        if fresh.commit != before.commit or changed:
            log.info(
                "specs loaded",
                commit=fresh.commit,
                releases=len(fresh.releases),
                errors=len(fresh.errors),
                changed=sorted(changed),
            )
        self.specs_loaded.set()

    def _resync_forever(self) -> None:
        while not self._stop.is_set():
            self.resync()
            self._stop.wait(self.settings.resync_seconds)

    def resync(self) -> None:
        """Re-read the directory (in case an event was missed), observe everything, queue it all."""
        self.reload_specs()
        with self._load_lock:
            releases = dict(self._last_valid)
            names = set(self._specs.releases) | set(self._specs.invalid_releases)
        errors = self.observer.refresh(releases.values())
        if errors:
            self.aws_reachable.clear()
            log.warning("batched observe failed", errors=[str(e) for e in errors[:5]])
        elif releases:
            self.aws_reachable.set()
        for name in sorted(names):
            self.queue.add(name)

    # --- workers ---------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            name = self.queue.get()
            if name is None:
                return
            started = time.perf_counter()
            try:
                requeue = self.reconcile(name)
            except Exception as exc:  # any failure: back off this release only
                with self._load_lock:
                    loaded = self._specs.releases.get(name) or self._last_valid.get(name)
                    commit = self._specs.commit
                self.recorder.failed(name, loaded, exc, commit)
                self.queue.add_rate_limited(name)
                self._count_reconcile(name, "error")
            else:
                self.queue.forget(name)
                if requeue is not None and not self._stop.is_set():
                    # Counted from the start of the pass, so a rollout is looked
                    # at every interval, not every interval plus a pass.
                    elapsed = time.perf_counter() - started
                    self.queue.add_after(name, max(0.0, requeue - elapsed))
                self._count_reconcile(name, "requeue" if requeue is not None else "success")
            finally:
                self.metrics.reconcile_duration.observe(time.perf_counter() - started)
                self.queue.done(name)

    def _count_reconcile(self, name: str, result: str) -> None:
        """Count a pass, unless it was the one that let go of a vanished release.

        That pass removed the release's series; counting it would bring one back.
        """
        with self._load_lock:
            managed = (
                name in self._specs.releases
                or name in self._specs.invalid_releases
                or name in self._last_valid
            )
        if managed:
            self.metrics.reconciles.labels(name, result).inc()

    def reconcile(self, name: str) -> float | None:
        """One pass for one release. Returns seconds until the next pass, or None."""
        with self._load_lock:
            specs = self._specs
            loaded = specs.releases.get(name)
            problems = specs.invalid_releases.get(name, [])
            last_valid = self._last_valid.get(name)
        if loaded is None and problems and last_valid is not None:
            return self._reconcile(last_valid, specs.commit, problems=[str(p) for p in problems])
        if loaded is None:
            if problems:
                self.recorder.invalid(name, problems, specs.commit)
                return None
            self.recorder.forget(name)
            if self.prober is not None:
                self.prober.idle(name)
            return None
        return self._reconcile(loaded, specs.commit, problems=[])

    def _reconcile(
        self, loaded: LoadedRelease, commit: str | None, problems: list[str]
    ) -> float | None:
        spec = loaded.release.spec
        gateway = self._gateway_for(loaded.region, spec.role_arn)
        state = self.observer.observe(loaded)
        self.aws_reachable.set()
        if isinstance(state, ServiceMissing):
            action: Action = Wait(
                Phase.DEGRADED,
                Reason.SERVICE_NOT_FOUND,
                f"service {state.cluster}/{state.name} not found: {state.reason}",
                None,
            )
            self.recorder.decided(loaded, commit, action, None)
            return None
        observation = observation_of(gateway, state)
        now = state.observed_at or self._clock()
        if self.prober is not None and needs_health(loaded.release, observation):
            health = self.prober.probe(
                loaded.name, loaded.region, loaded.release, observation, gateway, now
            )
            observation = replace(observation, health=health)
        elif self.prober is not None:
            self.prober.idle(loaded.name)
        action = decide(loaded.release, observation, now, self._options)
        if self.prober is not None and isinstance(action, Rollback | RecordFailure):
            action = self.prober.explain(action, gateway, loaded.release, state)
        if self.prober is not None and not isinstance(action, Wait | Deploy):
            self.prober.idle(loaded.name)  # judged (good or bad): the gates are done with it
        if problems and isinstance(action, Deploy):
            action = Wait(
                Phase.INVALID,
                Reason.INVALID_SPEC,
                f"spec is invalid, not deploying: {problems[0]}",
                None,
            )
        elif problems and action.phase in (Phase.SYNCED, Phase.PROGRESSING):
            action = Wait(
                Phase.INVALID,
                Reason.INVALID_SPEC,
                f"spec is invalid (last valid spec still watched): {problems[0]}",
                action.requeue_after,
            )
        applied = executor.execute(action, gateway, state, loaded.name, commit)
        if not isinstance(action, Wait):
            self.observer.invalidate(loaded)
        self.recorder.decided(loaded, commit, action, observation, applied, now)
        return action.requeue_after
