"""The controller: the spec set, the work loop and the per-release reconciler, wired.

Three parts, each in its own module, and this module only connects them:

- ``SpecKeeper`` (``specset``) reads the directory on every file event
  (``ecsop.spec.watcher``) and every resync, and says per release name what a
  pass reconciles;
- ``WorkLoop`` (``ecsop.runtime.loop``) runs workers over a de-duplicating work
  queue of release *names*, a resync timer, and error backoff;
- ``ReleaseReconciler`` (``reconciler``) is one pass for one release.

A resync re-reads the directory, describes every service in batches of ten
(``ServiceCache.refresh``), queueing each batch as it lands, paced to fit the
AWS API budget (``pacing``). The first pass after start is such a resync, so
start-up costs one DescribeServices per ten releases. A pass that asks to be
looked at again (a rollout in progress) is observed in batches too
(``active_poll``).

With several replicas (``ecsop.controller.ownership``), a resync observes and
queues only the releases of the shards this replica holds, each pass runs only
while it holds the release's shard (checked as the pass starts, and fenced
before every write), and a shard taken over is prepared before any pass enters
it: what this process remembered writing there is forgotten, waiting
observations are dropped, then its releases are observed in batches and queued.

Callers: ``ecsop.controller.daemon`` builds one ``Controller`` and runs it until SIGTERM.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog

from ecsop.aws.budget import BudgetDeferred, CallBudget
from ecsop.aws.ecs import DESCRIBE_SERVICES_BATCH
from ecsop.aws.preflight import ClientFor
from ecsop.aws.service_cache import GatewayFor, ServiceCache
from ecsop.controller import pacing
from ecsop.controller.active_poll import ActivePoller
from ecsop.controller.event_feed import EventFeed, EventQueue, EventSettings, cadence_settings
from ecsop.controller.executor import AwsExecutor, WriteLog
from ecsop.controller.flow import FlowGatherer, dependents, flow_context
from ecsop.controller.ownership import Claim, Ownership
from ecsop.controller.reconciler import PassResult, ReleaseReconciler, ReleaseTarget
from ecsop.controller.recorder import DecisionListener, DecisionRecorder
from ecsop.controller.settled import Settled, SettledReleases, in_sync
from ecsop.controller.specset import Changes, SpecKeeper
from ecsop.decision.actions import LetGo, RecordLastGood
from ecsop.decision.observation import Options, SpecState
from ecsop.decision.reasons import Reason
from ecsop.observability.metrics import Metrics
from ecsop.observability.status import StatusStore
from ecsop.probes.health import HealthProber
from ecsop.runtime.fence import OwnershipLost, fenced
from ecsop.runtime.lease import Tenure
from ecsop.runtime.loop import LoopSettings, WorkLoop
from ecsop.runtime.workqueue import RateLimitingQueue
from ecsop.spec.loader import LoadedRelease
from ecsop.spec.watcher import SpecWatcher

log = structlog.get_logger("ecsop.controller")


def new_instance_id() -> str:
    """A short random id for this daemon process, written as ``writer=`` in ``ecsop:state``."""
    return secrets.token_hex(4)


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
    instance_id: str = field(default_factory=new_instance_id)
    """This process, as its writes name it; another id writing after it means two
    instances act on one service."""
    events: EventSettings | None = None
    """An event queue (``--events-queue``): the two intervals above are then the long
    ones, used while its events flow (``event_feed``)."""
    resync_budget_share: float = 0.75
    """Share of the DescribeServices budget a resync plans to spend; the rest is left to
    rollouts being polled and to spec changes (``pacing``)."""


class Controller:
    def __init__(
        self,
        settings: ControllerSettings,
        gateway_for: GatewayFor,
        metrics: Metrics,
        statuses: StatusStore | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        prober: HealthProber | None = None,
        on_release_count: Callable[[int], None] = lambda count: None,
        listener: DecisionListener | None = None,
        client_for: ClientFor | None = None,
        event_source: EventQueue | None = None,
        ownership: Ownership | None = None,
        budget: CallBudget | None = None,
        on_resync_interval: Callable[[float, float], None] = lambda effective, configured: None,
    ) -> None:
        self.settings = settings
        self.ownership = ownership or Ownership()
        self.prober = prober
        """Health gates (target health, alarms, HTTP checks); None judges ECS's signals only."""
        self.metrics = metrics
        self.statuses = statuses or StatusStore()
        self._clock = clock
        self.recorder = DecisionRecorder(self.statuses, metrics, clock, listener)
        self.specs = SpecKeeper(
            settings.specs,
            default_region=settings.default_region,
            allow_mutable_tags=settings.allow_mutable_tags,
        )
        self.queue = RateLimitingQueue(
            on_depth=metrics.workqueue_depth.set, on_retry=metrics.workqueue_retries.inc
        )
        self.cache = ServiceCache(gateway_for, max_age_seconds=settings.resync_seconds)
        self.settled = SettledReleases()
        """Releases whose last pass ended in sync, and what it saw: a resync that finds
        them unchanged does not pass them again (``settled``)."""
        self.write_log = WriteLog(predecessor=self.ownership.is_predecessor)
        self.events = EventFeed(
            settings.events,
            cadence_settings(
                settings.events, settings.active_poll_seconds, settings.resync_seconds
            ),
            metrics,
            self.specs,
            self.cache,
            self.queue,
            event_source,
            holds=self.ownership.holds,
        )
        options = Options(
            self_heal=settings.self_heal,
            active_poll_seconds=settings.active_poll_seconds,
            instance_id=settings.instance_id,
        )
        self.flow = (
            FlowGatherer(self.cache, gateway_for, client_for, options) if client_for else None
        )
        """The release-flow inputs (``controller.flow``); None: no AWS clients (tests)."""
        self.reconciler = ReleaseReconciler(
            self.cache,
            gateway_for,
            AwsExecutor(self.write_log),
            self.recorder,
            options,
            prober=prober,
            write_log=self.write_log,
            clock=clock,
            flow=self.flow,
        )
        self.pacer = pacing.ResyncPacer(
            self.events.resync_seconds,
            lambda: budget.rate("ecs", "DescribeServices") if budget is not None else None,
            share=settings.resync_budget_share,
            on_interval=on_resync_interval,
        )
        self.poller = ActivePoller(
            self._watched_spec,
            self.cache.refresh,
            self.queue.add,
            slack=settings.active_poll_seconds / 5,
            fill=settings.active_poll_seconds,
        )
        self.loop = WorkLoop(
            self.queue,
            self.reconcile,
            self.resync,
            LoopSettings(
                workers=settings.workers,
                resync_seconds=settings.resync_seconds,
                shutdown_grace_seconds=settings.shutdown_grace_seconds,
            ),
            on_error=self._failed,
            on_pass=self._count_pass,
            on_loop_error=lambda loop: metrics.loop_errors.labels(loop).inc(),
            requeue=self.poller.schedule,
            resync_interval=lambda: self.pacer.interval,
        )
        self._on_release_count = on_release_count
        self._room = DESCRIBE_SERVICES_BATCH * settings.workers
        """Releases ready in the queue below which a resync observes its next batch."""
        self._watcher: SpecWatcher | None = None
        self.specs_loaded = threading.Event()
        self.aws_reachable = threading.Event()

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Read the specs, watch them, and start the loop; its first resync is the first pass."""
        try:
            self._loaded(self.specs.reload(), queue=False)
        except Exception:  # never exit on a bad tree: the resync tries again
            log.exception("could not read the spec directory; the resync will retry")
        self._watcher = SpecWatcher(
            self.settings.specs,
            on_change=self.reload_specs,
            debounce_seconds=self.settings.debounce_seconds,
        )
        self._watcher.start()
        self.poller.start()
        self.loop.start()
        self.events.start()
        log.info(
            "controller started",
            specs=str(self.settings.specs),
            workers=self.settings.workers,
            instance=self.settings.instance_id,
        )

    def stop(self) -> None:
        """Stop taking work; let reconciles in flight finish their AWS call."""
        if self._watcher is not None:
            self._watcher.stop()
        self.pacer.stop()
        self.poller.stop()
        self.events.stop()
        self.loop.stop()
        log.info("controller stopped")

    def health(self) -> tuple[bool, str]:
        return self.loop.health()

    # --- triggers --------------------------------------------------------------------

    def reload_specs(self, paths: frozenset[Path] | None = None) -> None:
        """Read the directory (only ``paths`` when the watcher names them); queue the
        releases whose spec changed, appeared or vanished."""
        self._loaded(self.specs.reload(paths), queue=True)

    def resync(self) -> None:
        """Re-read the directory (in case an event was missed), observe everything, queue it all."""
        self.reload_specs()
        watched = [w for w in self.specs.watched() if self.ownership.holds(w.name)]
        errors = self.pacer.run(watched, self._observe_with_room, self._queue_observed)
        if errors:
            self.aws_reachable.clear()
            log.warning("batched observe failed", errors=[str(e) for e in errors[:5]])
        elif watched:
            self.aws_reachable.set()
        batched = {loaded.name for loaded in watched}
        self._queue_names(name for name in self.specs.names() if name not in batched)

    def _observe_with_room(self, batch: Sequence[LoadedRelease]) -> list[Exception]:
        """Observe a resync's next batch once the workers have taken all but a few of the
        releases queued: its answers are then taken within seconds, not described again
        alone once they expire (a cold start of 10,000 releases queued thousands of
        answers that its first passes, a DescribeTaskDefinition each, took minutes to
        reach). Waits at most a resync interval, so stuck workers cannot stop the resync;
        each batch counts as the resync's progress for ``/healthz``."""
        if self.loop.working:  # else nobody would make room (``resync`` called on its own)
            self.queue.wait_for_room(self._room, timeout=self.settings.resync_seconds)
        self.loop.progressed()
        return self.cache.refresh(batch)

    def _queue_names(self, names: Iterable[str]) -> None:
        for name in names:
            if self.ownership.holds(name):
                self.queue.add(name)

    def _queue_observed(self, names: Iterable[str]) -> None:
        """Queue a batch the resync has just observed, but for the releases it found as
        their last pass left them: that pass would only decide ``InSync`` again."""
        commit = self.specs.commit
        unchanged = 0
        for name in names:
            if not self.ownership.holds(name):
                continue
            if self._still_settled(name, commit):
                unchanged += 1
            else:
                self.queue.add(name)
        if unchanged:
            self.metrics.resync_unchanged.inc(unchanged)

    def _still_settled(self, name: str, commit: str | None) -> bool:
        settled = self.settled.get(name)
        entry = self.specs.entry(name)
        if (
            settled is None
            or entry is None
            or entry.loaded is None
            or entry.problems
            or entry.removed
            or not settled.holds_for(entry.loaded, commit)
            or not self.cache.take_if_unchanged(entry.loaded, settled.service, settled.generation)
        ):
            return False
        self.statuses.seen(name, self._clock())
        return True

    def _watched_spec(self, name: str) -> LoadedRelease | None:
        entry = self.specs.entry(name)
        return entry.loaded if entry is not None else None

    def _loaded(self, changes: Changes, *, queue: bool) -> None:
        fresh, before = changes.specs, changes.previous
        self.metrics.set_specs([e.file for e in fresh.errors], len(fresh.errors), fresh.commit)
        self._on_release_count(len(fresh.releases))
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
        for name in changes.names:
            entry = self.specs.entry(name)
            if entry is not None and entry.loaded is not None:
                self.cache.invalidate(entry.loaded)
            if queue:
                self.queue.add(name)
        if fresh.commit != before.commit or changes.names:
            log.info(
                "specs loaded",
                commit=fresh.commit,
                releases=len(fresh.releases),
                errors=len(fresh.errors),
                changed=list(changes.names),
            )
        self.specs_loaded.set()

    # --- one pass --------------------------------------------------------------------

    def reconcile(self, name: str) -> float | None:
        """One pass for one release. Returns seconds until the next pass, or None.

        The events that asked for it are deleted once it completes (``event_feed``).
        Only while this replica holds the release's shard; a pass that loses it
        midway stops before its next write (``OwnershipLost``) and says so. Events
        about a release another replica owns are left to the queue, which delivers
        them again after its visibility timeout, to whichever replica receives them.
        """
        with self.ownership.acting(name) as claim:
            if claim is None:
                self.events.not_ours(name)
                return None  # another replica's now; queued again if this one takes it
            with self.events.pass_of(name), fenced(lambda: self.ownership.check(claim, name)):
                try:
                    return self._reconcile(name, claim)
                except BudgetDeferred as deferred:
                    # UpdateService (or a fingerprint record) was not sent (a revision
                    # registered before it is found and reused); the pass comes back
                    # when its token exists.
                    log.debug("write deferred by the API budget", release=name, why=str(deferred))
                    # Spread: deploys deferred together would all come back for one token.
                    return deferred.seconds * random.uniform(1.0, 2.0)
                except OwnershipLost as lost:
                    log.warning(
                        "stopped a pass: this replica lost the release's shard; "
                        "the write it was about to start was not sent",
                        release=name,
                        shard=claim.shard,
                        why=str(lost),
                    )
                    return None

    def _reconcile(self, name: str, claim: Claim) -> float | None:
        self.settled.passing(name)
        entry = self.specs.entry(name)
        commit = self.specs.commit
        if entry is None:
            self._forget(name)
            return None
        if entry.loaded is None:
            self.recorder.invalid(name, entry.problems, commit)
            return None
        target = ReleaseTarget(
            entry.loaded,
            commit,
            SpecState(
                problems=tuple(str(p) for p in entry.problems),
                removed=entry.removed,
                claimed_elsewhere=entry.claimed_elsewhere,
            ),
            context=flow_context(self.specs),
            writer=claim.writer,
        )
        generation = self.cache.generation(entry.loaded)
        result = self.reconciler.reconcile(target)
        self.aws_reachable.set()
        self._settle(name, target, result, generation)
        if isinstance(result.action, RecordLastGood) and result.action.reason is Reason.BAKED:
            # Releases promoted from this one, or depending on it, may go now.
            for waiting in dependents(self.specs.watched(), name):
                self.queue.add(waiting)
        self.events.passed(name, result)
        if isinstance(result.action, LetGo):
            self.specs.let_go(name)
            self._forget(name)
            return None
        timer = result.action.reason is Reason.OUTSIDE_DEPLOY_WINDOW  # when the window opens
        return self.events.requeue_after(name, result.action.requeue_after, timer=timer)

    def _settle(
        self, name: str, target: ReleaseTarget, result: PassResult, generation: int
    ) -> None:
        """Keep what a pass that ended in sync saw, if nothing was written meanwhile."""
        observation = result.observation
        if (
            observation is not None
            and in_sync(result.action)
            and self.cache.generation(target.loaded) == generation
            and self.write_log.unwritten(observation.service.arn) is None
        ):
            self.settled.passed(
                name, Settled(target.loaded, target.commit, observation.service, generation)
            )

    def _forget(self, name: str) -> None:
        self.settled.forget(name)
        self.recorder.forget(name)
        self.events.forget(name)
        if self.prober is not None:
            self.prober.idle(name)

    # --- shards (with coordination) ----------------------------------------------------

    def releases_of(self, shard: int) -> list[str]:
        return [n for n in self.specs.names() if self.ownership.shard_of(n) == shard]

    def shard_acquiring(self, shard: int) -> None:
        """Before any pass enters a shard taken over: forget this process's knowledge of it.

        What it wrote there during an earlier tenure (``writer=`` from then would
        read as another instance's), records it could not write (another owner
        may have moved on), and observations waiting in the cache (older than the
        previous owner's writes, which this process never saw).
        """
        names = self.releases_of(shard)
        forgotten = self.write_log.forget_releases(names)
        for name in names:
            entry = self.specs.entry(name)
            if entry is not None and entry.loaded is not None:
                self.cache.invalidate(entry.loaded)
        log.info(
            "taking over shard: resuming from AWS state",
            shard=shard,
            releases=len(names),
            forgotten_services=forgotten,
        )

    def shard_acquired(self, tenure: Tenure) -> None:
        """A shard is open to work: observe its releases in batches, then queue them."""
        names = self.releases_of(tenure.shard)
        entries = [self.specs.entry(n) for n in names]
        watched = [e.loaded for e in entries if e is not None and e.loaded is not None]
        errors = self.cache.refresh(watched)
        if errors:
            log.warning("batched observe failed", errors=[str(e) for e in errors[:5]])
        elif watched:
            self.aws_reachable.set()
        for name in names:
            self.queue.add(name)

    def shard_lost(self, shard: int, why: str) -> None:
        """This replica stopped acting on a shard: its releases' status and series go."""
        for name in self.releases_of(shard):
            self.settled.forget(name)
            self.statuses.remove(name)
            self.metrics.forget_release(name)
            if self.prober is not None:
                self.prober.idle(name)

    def _failed(self, name: str, exc: Exception) -> None:
        self.settled.forget(name)
        if not self.ownership.holds(name):
            return  # the next owner reports on it
        entry = self.specs.entry(name)
        self.recorder.failed(name, entry.loaded if entry else None, exc, self.specs.commit)

    def _count_pass(self, name: str, result: str, seconds: float) -> None:
        """Count a pass, unless it was the one that let go of a release.

        That pass removed the release's series; counting it would bring one back.
        """
        self.metrics.reconcile_duration.observe(seconds)
        if self.specs.entry(name) is not None and self.ownership.holds(name):
            self.metrics.reconciles.labels(name, result).inc()
