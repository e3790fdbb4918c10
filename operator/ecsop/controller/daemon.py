"""Assembling and running the daemon: clients, controller, HTTP endpoint, signals.

``ecsop run`` parses flags into ``DaemonSettings`` and calls ``run``; tests
and the sandbox demo call it the same way. Everything that holds state is
built here and injected, so nothing below reads the environment or globals.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from ecsop import __version__
from ecsop.aws.budget import BudgetSettings, CallBudget
from ecsop.aws.clients import AwsSettings, ClientFactory
from ecsop.aws.ecs import GatewayPool
from ecsop.aws.event_queue import open_queue
from ecsop.aws.identity import caller_account
from ecsop.controller.history import HistorySettings, StatusHistory
from ecsop.controller.manager import Controller, ControllerSettings
from ecsop.controller.notifications import NotificationEmitter
from ecsop.controller.replica import CoordinationSettings, Replica
from ecsop.notify import assembly
from ecsop.notify.config import NotificationConfig
from ecsop.observability.metrics import Metrics
from ecsop.observability.pacing_metrics import PacingMetrics
from ecsop.observability.server import Endpoint, EndpointSettings
from ecsop.probes.analysis import AnalysisProbes
from ecsop.probes.health import HealthProber, HealthSettings
from ecsop.runtime import fence
from ecsop.spec.loader import LoadedRelease

log = structlog.get_logger("ecsop.controller.daemon")


@dataclass(frozen=True)
class DaemonSettings:
    controller: ControllerSettings
    aws: AwsSettings = field(default_factory=AwsSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    metrics_host: str = "0.0.0.0"
    """Address of the /metrics, /healthz, /readyz and /status endpoint."""
    metrics_port: int = 9100
    """Port of that endpoint; 0 picks a free one."""
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    """Its threads, connection limits and requeue rate limits."""
    api_token: str | None = field(default=None, repr=False)
    """Bearer token ``POST /requeue`` requires; None: loopback clients only. Never shown."""
    notifications: NotificationConfig | None = None
    """Where to tell people about deploys (``--notifications FILE``); None tells no one."""
    history: HistorySettings = field(default_factory=HistorySettings)
    """The recent deployments ``/status`` shows per release, read on demand."""
    notification_grace_seconds: float = 5.0
    """On SIGTERM, how long queued notifications may still be delivered."""
    coordination: CoordinationSettings | None = None
    """With several replicas: the lease table and this replica (None: run alone)."""
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    """ecsop's share of AWS's API rates (``--api-budget``)."""


class Daemon:
    """The running daemon; ``start``/``stop`` for tests, ``run`` for the CLI."""

    def __init__(self, settings: DaemonSettings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.pacing = PacingMetrics(self.registry)
        self.budget = CallBudget(
            settings.budget, on_wait=self.pacing.waited, on_defer=self.pacing.deferred
        )
        # Every attempt of every AWS call checks the pass's fence: a replica that lost a
        # shard sends nothing more for it, not even a botocore retry of a write.
        self.clients = ClientFactory(
            settings.aws,
            on_client_created=self.metrics.instrument,
            before_attempt=fence.check_current,
            budget=self.budget,
        )
        self.gateways = GatewayPool(self.clients)
        # Health gates use the same clients (same retry config, same call metrics).
        self.prober = HealthProber(
            self.clients.client,
            settings.health,
            analysis=AnalysisProbes(
                self.clients.client,
                settings.health.analysis,
                on_measurement=self.metrics.analysis_measured,
                on_forget=self.metrics.analysis_stopped,
            ),
        )
        self.notifier = (
            assembly.build(settings.notifications, settings.controller.specs, self.registry)
            if settings.notifications is not None
            else None
        )
        events = settings.controller.events
        self.replica: Replica | None = None
        if settings.coordination is not None:
            self.replica = Replica(
                settings.coordination,
                self.clients,
                self.registry,
                settings.controller.default_region,
            )
        self.controller = Controller(
            settings.controller,
            self.gateways.ecs,
            self.metrics,
            prober=self.prober,
            on_release_count=self.gateways.fit_cache,
            listener=NotificationEmitter(self.notifier.publish) if self.notifier else None,
            client_for=self.clients.client,
            event_source=open_queue(
                self.clients.client, events.queue_url, settings.controller.default_region
            )
            if events is not None
            else None,
            ownership=self.replica.ownership if self.replica else None,
            budget=self.budget,
            on_resync_interval=self.pacing.resync,
        )
        self.history = StatusHistory(
            self.gateways.ecs,
            self._loaded,
            self.controller.statuses.get,
            settings.history,
        )
        if self.replica is not None:
            self.replica.attach(self.controller)
        self.endpoint = Endpoint(
            settings.metrics_host,
            settings.metrics_port,
            self.registry,
            self.controller.statuses,
            ready=self._ready,
            requeue=self._requeue,
            extra_status=self._status_header,
            healthy=self.controller.health,
            settings=settings.endpoint,
            api_token=settings.api_token,
            per_release=self.history,
            releases=self.replica.releases if self.replica else None,
            route=self.replica.route if self.replica else None,
        )

    def start(self) -> None:
        if not self.settings.controller.specs.is_dir():
            log.warning(
                "spec directory does not exist yet; waiting for it (not ready until then)",
                specs=str(self.settings.controller.specs),
            )
        self.endpoint.start()
        self.controller.specs.default_account = caller_account(
            self.clients.client, self.settings.controller.default_region
        )
        self.budget.own_account = self.controller.specs.default_account
        if self.notifier is not None:
            self.notifier.start()
        self.controller.start()
        if self.replica is not None:
            self.replica.start()
        log.info(
            "ecsop started",
            version=__version__,
            endpoint=f"http://{self.settings.metrics_host}:{self.endpoint.port}",
        )

    def stop(self) -> None:
        if self.replica is not None:
            self.replica.coordinator.quiesce()  # take nothing new while passes finish
        self.controller.stop()
        if self.replica is not None:
            self.replica.stop()  # after the passes in flight: then release every shard
        if self.notifier is not None:
            self.notifier.close(self.settings.notification_grace_seconds)
        self.prober.close()
        self.history.close()
        self.endpoint.stop()

    def run(self, stop: threading.Event | None = None) -> int:
        """Run until SIGTERM/SIGINT (or ``stop`` is set); return the exit code."""
        stop = stop or threading.Event()
        restore = _on_signals(lambda: stop.set())
        try:
            self.start()
            stop.wait()
            log.info("stopping: finishing the AWS calls in flight")
        finally:
            self.stop()
            restore()
        return 0

    def _ready(self) -> tuple[bool, str]:
        specs = self.settings.controller.specs
        if not specs.is_dir():
            # git-sync may not have cloned yet: wait for it rather than exit.
            return False, f"spec directory {specs} does not exist (yet)"
        if not self.controller.specs_loaded.is_set():
            return False, "specs not loaded yet"
        if self.replica is not None:
            ok, why = self.replica.health()
            if not ok:
                return False, why
            if not self.replica.coordinator.held():
                return True, "ready: standby, holding no shard"
        if not self.controller.aws_reachable.is_set():
            return False, "AWS not reached yet (or the last batched observe failed)"
        return True, "ready"

    def _requeue(self, name: str) -> bool:
        """Reconcile ``name`` now; False (404) when the spec directory has no such release."""
        if self.controller.specs.entry(name) is None:
            return False
        self.controller.queue.add(name)
        return True

    def _loaded(self, name: str) -> LoadedRelease | None:
        entry = self.controller.specs.entry(name)
        return entry.loaded if entry is not None else None

    def _status_header(self) -> dict[str, Any]:
        header = {
            "version": __version__,
            "specs": str(self.settings.controller.specs),
            **self.controller.events.status(),
            "resync": self.controller.pacer.status(),
        }
        if self.replica is not None:
            header.update(self.replica.status_header())
        return header


def _on_signals(handler: Callable[[], None]) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to ``handler``; return a function restoring the old ones."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal received", signal=signal.Signals(signum).name)
        handler()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
