"""Gathering the release flow's inputs: what other releases proved, where they stand, pre-flight.

The release-flow checks (``ecsop.decision.release_flow``) are pure; this is
where a reconcile pass fills ``Observation.flow`` for them, and only with
what ``hold.needs`` asks for, which is nothing unless a deploy is pending:
a steady release costs no extra AWS call.

- **Proofs** of each ``promotion.from`` release: its service (a waiting
  batched answer, else one DescribeServices) and its revisions' proof tags
  (``ecsop.aws.proofs``), read with *that* release's region and role, so an
  upstream in another account is read with its own credentials.
- **Dependencies**: each ``dependsOn`` release's service, classified the way
  its own pass would (``situation.classify``); Synced only in situation SYNCED
  with a valid spec.
- **Pre-flight**: ECR images and the execution role of the revision the
  deploy would clone (``ecsop.aws.preflight``).
- **Policy**: the windows the directory's ReleasePolicy documents give this
  release, and the policy file's problems.

``FlowContext`` is how a pass sees the rest of the spec directory; the
daemon builds it from the spec set, ``ecsop plan`` from its one read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from ecsop.aws.clients import AwsError
from ecsop.aws.preflight import ClientFor, Preflight
from ecsop.aws.proofs import ProofReader
from ecsop.aws.service_cache import GatewayFor, ServiceCache
from ecsop.controller import revision_reads
from ecsop.controller.specset import Entry
from ecsop.decision.ecs_state import ServiceMissing
from ecsop.decision.observation import Observation, Options
from ecsop.decision.release_flow import promotion
from ecsop.decision.release_flow.hold import Need, clone_base, needs
from ecsop.decision.release_flow.inputs import DependencyState, FlowInputs, Lookup, UpstreamProof
from ecsop.decision.situation import Situation, View, classify
from ecsop.spec.images import digest_of
from ecsop.spec.loader import LoadedRelease, SpecSet
from ecsop.spec.release_flow import ReleasePolicy, windows_for


@dataclass(frozen=True)
class Peer:
    """Another release of the directory, as a pass of this one sees it."""

    loaded: LoadedRelease
    """Its spec (the last valid one while its file is broken)."""
    problems: tuple[str, ...] = ()
    """Its spec file's errors (a dependency with any is not Synced)."""


@dataclass(frozen=True)
class FlowContext:
    """The rest of the spec directory, for one pass."""

    peer: Callable[[str], Peer | None] = lambda name: None
    policies: tuple[ReleasePolicy, ...] = ()
    policy_problems: tuple[str, ...] = ()

    @classmethod
    def of(cls, specs: SpecSet) -> FlowContext:
        """The context of a one-shot read (``ecsop plan``): valid releases only."""

        def peer(name: str) -> Peer | None:
            loaded = specs.releases.get(name)
            return Peer(loaded) if loaded is not None else None

        return cls(
            peer,
            tuple(p.policy for p in specs.policies),
            tuple(str(e) for e in specs.policy_errors),
        )


class FlowGatherer:
    """Fills ``Observation.flow`` for the checks a pass will run."""

    def __init__(
        self,
        cache: ServiceCache,
        gateway_for: GatewayFor,
        client_for: ClientFor,
        options: Options,
    ) -> None:
        self._cache = cache
        self._gateway_for = gateway_for
        self._options = options
        self.preflight = Preflight(client_for)
        self.proofs = ProofReader()

    def gather(
        self,
        loaded: LoadedRelease,
        context: FlowContext | None,
        observed: Observation,
        view: View,
    ) -> Observation:
        """``observed`` with ``flow`` filled, or unchanged when no check needs anything."""
        wanted = needs(loaded.release, observed, view, self._options)
        if not wanted:
            return observed
        context = context or FlowContext()
        flow = FlowInputs()
        if Need.PREFLIGHT in wanted:
            flow = self._preflight(loaded, observed, view, flow)
        if Need.POLICY in wanted:
            flow = replace(
                flow,
                windows=windows_for(loaded.release.metadata.labels, context.policies),
                policy_problems=context.policy_problems,
            )
        if Need.PROOFS in wanted:
            flow = replace(flow, proofs=self._proofs(loaded, observed, view, context))
        if Need.DEPENDENCIES in wanted:
            flow = replace(flow, dependencies=self._dependencies(loaded, context))
        return replace(observed, flow=flow)

    # --- pre-flight -----------------------------------------------------------------

    def _preflight(
        self, loaded: LoadedRelease, observed: Observation, view: View, flow: FlowInputs
    ) -> FlowInputs:
        role_arn = loaded.release.spec.role_arn
        images = self.preflight.images(loaded.release.spec.containers.values(), role_arn)
        roles: dict[str, Lookup] = {}
        self_heal = view.situation is Situation.DRIFTED
        base = observed.task_definitions.get(clone_base(view, observed, self_heal))
        if base is not None and base.execution_role:
            service = observed.service
            roles[base.execution_role] = self.preflight.role(
                base.execution_role, service.account, loaded.region, role_arn
            )
        return replace(flow, images=images, roles=roles)

    # --- promotion ------------------------------------------------------------------

    def _proofs(
        self, loaded: LoadedRelease, observed: Observation, view: View, context: FlowContext
    ) -> dict[str, UpstreamProof]:
        spec_promotion = loaded.release.spec.promotion
        assert spec_promotion is not None
        current = {}
        if view.last_good is not None and view.last_good in observed.task_definitions:
            current = dict(observed.task_definitions[view.last_good].images)
        wanted = promotion.digests_to_prove(loaded.release, current)
        digests = {d for d in map(digest_of, wanted.values()) if d}
        found: dict[str, UpstreamProof] = {}
        for name in spec_promotion.from_:
            peer = context.peer(name)
            if peer is None:
                found[name] = UpstreamProof(error="not a valid release of the spec directory")
                continue
            upstream = peer.loaded
            try:
                gateway = self._gateway_for(upstream.region, upstream.release.spec.role_arn)
                state = self._cache.peek(upstream)
                if isinstance(state, ServiceMissing):
                    found[name] = UpstreamProof(error=f"its service is missing: {state.reason}")
                    continue
                proven = self.proofs.proven(gateway, state, name, digests, upstream.release)
            except AwsError as error:
                if error.retryable:
                    raise
                found[name] = UpstreamProof(error=f"{error.code}: {error.message}")
                continue
            found[name] = UpstreamProof(proven=proven)
        return found

    # --- ordering -------------------------------------------------------------------

    def _dependencies(
        self, loaded: LoadedRelease, context: FlowContext
    ) -> dict[str, DependencyState]:
        states: dict[str, DependencyState] = {}
        for name in loaded.release.spec.depends_on:
            peer = context.peer(name)
            if peer is None:
                states[name] = DependencyState(False, "not a valid release of the spec directory")
                continue
            if peer.problems:
                states[name] = DependencyState(False, f"its spec is invalid: {peer.problems[0]}")
                continue
            try:
                states[name] = self._dependency(peer.loaded)
            except AwsError as error:
                if error.retryable:
                    raise
                states[name] = DependencyState(False, f"cannot observe: {error.code}")
        return states

    def _dependency(self, loaded: LoadedRelease) -> DependencyState:
        state = self._cache.peek(loaded)
        if isinstance(state, ServiceMissing):
            return DependencyState(False, f"service not found: {state.reason}")
        gateway = self._gateway_for(loaded.region, loaded.release.spec.role_arn)
        observed = Observation(service=state, task_definitions={})
        observed = revision_reads.read(gateway, loaded.release, observed, self._options)
        situation = classify(loaded.release, observed, self._options).situation
        if situation is Situation.SYNCED:
            return DependencyState(True, "Synced")
        return DependencyState(False, _DOING.get(situation, situation.value.replace("_", " ")))


class _Specs(Protocol):
    """The part of ``specset.SpecKeeper`` a context reads."""

    def entry(self, name: str) -> Entry | None: ...

    @property
    def specs(self) -> SpecSet: ...


def flow_context(keeper: _Specs) -> FlowContext:
    """The daemon's context: every release as the spec set keeps it (last valid spec)."""

    def peer(name: str) -> Peer | None:
        entry = keeper.entry(name)
        if entry is None or entry.loaded is None or entry.removed:
            return None
        return Peer(entry.loaded, tuple(str(p) for p in entry.problems))

    specs = keeper.specs
    return FlowContext(
        peer,
        tuple(p.policy for p in specs.policies),
        tuple(str(e) for e in specs.policy_errors),
    )


def dependents(releases: Iterable[LoadedRelease], name: str) -> list[str]:
    """Releases that promote from, or depend on, ``name``: to look at once it is proven."""
    return sorted(
        loaded.name
        for loaded in releases
        if name in loaded.depends_on or name in loaded.promoted_from
    )


_DOING = {
    Situation.OUT_OF_DATE: "not deployed yet",
    Situation.DRIFTED: "changed outside ecsop",
    Situation.ROLLING_OUT: "rolling out",
    Situation.SUPERSEDED: "rolling out",
    Situation.BAKING: "baking",
    Situation.FAILED_BEFORE: "Degraded: its release failed",
    Situation.GONE_UNSEEN: "its rollout vanished",
    Situation.SUSPENDED: "suspended",
    Situation.FIRST_SIGHT: "not adopted yet",
    Situation.FOREIGN: "someone else's deployment in progress",
}
"""How a dependency's situation reads in the dependent's status."""
