"""``ecsop plan``: what the daemon would do now, by the daemon's own path, changing nothing.

``plan`` runs the daemon's own ``ReleaseReconciler`` (observe, probe, decide)
with a dry-run executor and prints each decision instead of recording it:
the dry run CI can gate on, and it cannot disagree with the daemon.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ecsop.aws.clients import AwsError, ClientFactory
from ecsop.aws.ecs import GatewayPool
from ecsop.aws.identity import caller_account
from ecsop.aws.service_cache import ServiceCache
from ecsop.controller.executor import Applied, DryRunExecutor
from ecsop.controller.flow import FlowContext, FlowGatherer
from ecsop.controller.reconciler import ReleaseReconciler, ReleaseTarget
from ecsop.decision.actions import Action, Deploy, RunStep, Wait
from ecsop.decision.analysis import describe
from ecsop.decision.ecs_state import short_name
from ecsop.decision.observation import Observation, Options
from ecsop.decision.reasons import HELD, Reason
from ecsop.probes.analysis import AnalysisProbes
from ecsop.probes.health import HealthProber
from ecsop.spec import loader as source
from ecsop.spec.loader import LoadedRelease

PLAN_OBSERVATION_SECONDS = 300.0
"""How long plan's batched observations stay usable: one run, however many releases."""
PREFLIGHT_FAILURES = frozenset(
    {
        Reason.IMAGE_NOT_FOUND,
        Reason.EXECUTION_ROLE_NOT_FOUND,
        Reason.PREFLIGHT_UNAVAILABLE,
        Reason.INVALID_POLICY,
    }
)
"""Held for a problem of the spec, the images it names, or an AWS error checking them:
plan exits 1, as for an invalid spec or an AWS error."""


class _Printed:
    """The recorder ``plan`` gives the reconciler: it keeps the decision to print."""

    def __init__(self) -> None:
        self.action: Action | None = None
        self.applied: Applied | None = None

    def decided(
        self,
        loaded: LoadedRelease,
        commit: str | None,
        action: Action,
        observation: Observation | None,
        applied: Applied | None = None,
        now: datetime | None = None,
    ) -> None:
        self.action, self.applied = action, applied


def main(specs: Path, *, default_region: str, allow_mutable_tags: bool, self_heal: bool) -> int:
    clients = ClientFactory()
    loaded = source.load(
        [specs],
        default_region=default_region,
        allow_mutable_tags=allow_mutable_tags,
        default_account=caller_account(clients.client, default_region),
    )
    for error in loaded.errors:
        print(f"invalid: {error}")
    gateways = GatewayPool(clients)
    cache = ServiceCache(gateways.ecs, max_age_seconds=PLAN_OBSERVATION_SECONDS)
    cache.refresh(loaded.releases.values())  # batched; a failed batch is retried per release
    # Analyses are not measured: the daemon's measurements live in its process.
    prober = HealthProber(clients.client, analysis=AnalysisProbes(clients.client, measuring=False))
    printed = _Printed()
    options = Options(self_heal=self_heal)
    flow = FlowGatherer(cache, gateways.ecs, clients.client, options)
    context = FlowContext.of(loaded)
    reconciler = ReleaseReconciler(
        cache, gateways.ecs, DryRunExecutor(), printed, options, prober=prober, flow=flow
    )
    would_change = False
    failed = bool(loaded.errors)
    try:
        for name, release in sorted(loaded.releases.items()):
            try:
                result = reconciler.reconcile(
                    ReleaseTarget(release, loaded.commit, context=context)
                )
            except AwsError as exc:
                print(f"{name}: cannot observe: {exc.code}: {exc.message}")
                failed = True
                continue
            except ValueError as exc:  # a container the task definition lacks, when cloning
                print(f"{name}: cannot plan: {exc}")
                failed = True
                continue
            if result.observation is None:
                spec = release.release.spec
                print(f"{name}: service {spec.cluster}/{spec.service} not found")
                failed = True
                continue
            action = result.action
            would_change |= not isinstance(action, Wait)
            failed |= action.reason in PREFLIGHT_FAILURES
            verb = _verb(action, result.applied)
            print(f"{name}: {action.phase.value}: {verb}: {action.message}")
            if isinstance(action, Deploy):
                for analysis in release.release.spec.rollout.analysis:
                    print(f"    with analysis {describe(analysis)}")
    finally:
        prober.close()
    if failed:
        return 1
    return 2 if would_change else 0


def _verb(action: Action, applied: Applied) -> str:
    if isinstance(action, Wait):
        return "held" if action.reason in HELD else "no change"
    verb = f"would {type(action).__name__}"
    if isinstance(action, RunStep):  # the step runs on the revision its deploy will use
        if applied.registered and action.deploy is not None:
            return f"{verb} (on a new clone of {short_name(action.deploy.base)})"
        if applied.task_definition:
            return f"{verb} (on {short_name(applied.task_definition)})"
        return verb
    deploy = action
    if isinstance(deploy, Deploy):
        if applied.registered:
            return f"{verb} (register a clone of {short_name(deploy.base)})"
        if applied.task_definition:
            return f"{verb} (reuse {short_name(applied.task_definition)})"
    return verb
