"""What the release-flow checks read, gathered by the reconcile pass when a deploy is pending.

The controller fills ``FlowInputs`` (``ecsop.controller.flow``) from AWS and
the spec directory, only for what ``hold.needs`` asks; the checks read it
and never reach anything themselves. A missing entry means "not gathered",
which no check ever reads as a pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ecsop.spec.release_flow import DeployWindow


class Found(StrEnum):
    """What a pre-flight lookup found."""

    FOUND = "found"
    """It exists (an image digest in its repository, a role)."""
    MISSING = "missing"
    """AWS says it does not exist."""
    SKIPPED = "skipped"
    """Not checked, by design (an image outside ECR, a role of another account)."""
    UNKNOWN = "unknown"
    """AWS could not say (access denied, ...): never read as found."""


@dataclass(frozen=True)
class Lookup:
    found: Found
    detail: str = ""
    """Why, in AWS's words, when not found."""


@dataclass(frozen=True)
class UpstreamProof:
    """What one ``promotion.from`` release has proven, among the digests asked about."""

    proven: frozenset[str] = frozenset()
    """Digests (``sha256:...``) the upstream ran to last-good after its bake."""
    error: str = ""
    """Why the upstream's proofs could not be read ("" when they were)."""


@dataclass(frozen=True)
class DependencyState:
    """Where a ``dependsOn`` release stands."""

    synced: bool
    detail: str
    """What it is doing, for the message ("rolling out 1a2b...", "Degraded: ...")."""


@dataclass(frozen=True)
class FlowInputs:
    """Everything the release-flow checks of one pass read."""

    images: Mapping[str, Lookup] = field(default_factory=dict)
    """Image reference -> whether ECR holds it (pre-flight)."""
    roles: Mapping[str, Lookup] = field(default_factory=dict)
    """Execution role ARN -> whether it exists (pre-flight)."""
    proofs: Mapping[str, UpstreamProof] = field(default_factory=dict)
    """``promotion.from`` release -> what it proved."""
    dependencies: Mapping[str, DependencyState] = field(default_factory=dict)
    """``dependsOn`` release -> where it stands."""
    windows: tuple[DeployWindow, ...] = ()
    """Windows the directory's ReleasePolicy documents give this release."""
    policy_problems: tuple[str, ...] = ()
    """The policy file's errors: while any stands, no new deploy (windows unknown)."""
