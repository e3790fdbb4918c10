"""A spec checkout behind the service: a deploy waits for git-sync instead of undoing a merge.

With several replicas, each runs its own git-sync, and one may be a pull (or,
with a slow git host, minutes) behind another. When a release's shard moves
from the replica that deployed the newest commit to one still at an older
commit, the new owner's spec is the *previous* release: deploying it would put
the older images back over the merged ones, a silent rollback nobody asked for.

ecsop tags each revision it registers with the commit it was deployed from
(``ecsop:commit``, ``RevisionMemory.commit``). Before a deploy (or a revert of
a rollout in flight to last-good, which is "the spec went back") whose spec
differs from what the service runs, the reconcile pass looks that commit up in
this process's spec repository (``asks`` says when; ``ecsop.controller.
spec_commits`` asks git, once per pass that would deploy, never for a steady
release) and fills ``Observation.service_commit``. ``check`` then holds the
deploy (``Reason.SPEC_BEHIND_SERVICE``) while the commit is one this
repository has not fetched *and* the spec's own commit was made before the
deployment the service runs started.

- Only an *unknown* commit holds. A commit the repository has, but which is not
  an ancestor of its own (a branch reset or force-pushed back to an older
  commit), is what the team asked for, as Argo CD follows the branch; a revert
  is a newer commit anyway.
- Only a spec commit *older than the running deployment* holds. git-sync's
  defaults (``--depth 1``, ``git gc`` after every sync with
  ``gc.pruneExpire=now``) keep nothing but the commit checked out, so every
  earlier commit is unknown to it, the one the service was deployed from
  included: an unknown commit alone would hold every ordinary deploy. A
  checkout that is behind is at an ancestor of the deployed commit, made before
  it, so before the deployment of it started (``createdAt``, AWS's clock); a
  commit merged after that deployment is newer than it, whatever git still has.
- Bounded: a commit that stays unknown (the repository was re-created, its
  history squashed) holds at most ``Options.spec_behind_grace_seconds`` from the
  first pass of this process that found it missing for this release; then the
  deploy goes ahead and its message says so (``noted``).
- Rollbacks (a failed gate, a failed verify) never come here: they are never held.
- A spec directory that is no git work tree (no commit), and revisions without
  ``ecsop:commit``, are never looked up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from ecsop.decision.actions import Action, Wait
from ecsop.decision.ecs_state import short_name
from ecsop.decision.memory import RevisionMemory
from ecsop.decision.observation import Observation, Options, fingerprint_of
from ecsop.decision.pass_inputs import PassInputs
from ecsop.decision.reasons import Phase, Reason
from ecsop.decision.release_flow.hold import deploys
from ecsop.decision.situation import Situation, View
from ecsop.spec.model import ServiceRelease

COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
"""A full commit hash (as ``ecsop.spec.commits.COMMIT``): a tag holding anything else is
never looked up, so an edited tag cannot hold a deploy."""


@dataclass(frozen=True)
class ServiceCommit:
    """What this process's spec repository knows of the commit the service's revision
    was deployed from; gathered only when ``asks`` names one."""

    service: str
    """``ecsop:commit`` of the revision the service points at."""
    spec: str
    """The commit of this process's spec checkout."""
    known: bool
    """The spec repository holds ``service`` (``git cat-file -e``)."""
    unknown_since: datetime | None = None
    """When this process first found ``service`` missing, for this release (AWS's time)."""
    spec_committed: datetime | None = None
    """The committer date of ``spec``; read only when ``service`` is unknown (None: not
    read, or git could not say)."""


def asks(
    release: ServiceRelease,
    observed: Observation,
    view: View,
    options: Options,
    spec_commit: str | None,
) -> str | None:
    """The commit this pass must look up, or None: only when the pass would deploy (or
    revert to last-good) and the revision the service runs came from another commit."""
    if spec_commit is None or not (deploys(view, options) or reverts(release, observed, view)):
        return None
    running = observed.task_definitions.get(observed.service.task_definition)
    if running is None:
        return None
    commit = RevisionMemory.read(running.tags).commit
    if COMMIT.fullmatch(commit) is None or commit == spec_commit:
        return None
    return commit


def reverts(release: ServiceRelease, observed: Observation, view: View) -> bool:
    """Situation SUPERSEDED with the spec back at the trusted last-good (``in_progress``)."""
    if view.situation is not Situation.SUPERSEDED or view.last_good is None:
        return False
    proven = observed.task_definitions.get(view.last_good)
    return proven is not None and fingerprint_of(release, proven) == view.desired


def check(p: PassInputs, doing: str) -> Wait | None:
    """Hold ``doing`` (the deploy, the revert) while the service's commit is unknown here."""
    seen = p.observed.service_commit
    if seen is None or not _behind(p, seen):
        return None
    remaining = p.options.spec_behind_grace_seconds - _waited(p, seen)
    if remaining <= 0:
        return None
    return Wait(
        Phase.PROGRESSING,
        Reason.SPEC_BEHIND_SERVICE,
        f"not {doing} yet: the service runs "
        f"{short_name(p.observed.service.task_definition)}, deployed by ecsop from commit "
        f"{seen.service[:12]}, which this replica's spec checkout (at {seen.spec[:12]}, made "
        "before that deployment started) does not have yet: its git-sync is behind the one "
        f"that deployed it; waiting for git-sync (at most {int(remaining + 0.999)}s more)",
        min(p.poll, max(remaining, 0.1)),
    )


def noted(p: PassInputs, action: Action) -> Action:
    """``action``, saying so when it goes ahead only because the hold's grace ran out."""
    seen = p.observed.service_commit
    grace = p.options.spec_behind_grace_seconds
    if seen is None or isinstance(action, Wait) or not _behind(p, seen):
        return action
    if _waited(p, seen) < grace:
        return action
    return replace(
        action,
        message=f"{action.message} (the service's commit {seen.service[:12]} is still not in "
        f"this replica's spec checkout after {int(grace)}s: going ahead from {seen.spec[:12]})",
    )


def _behind(p: PassInputs, seen: ServiceCommit) -> bool:
    """The service's commit is unknown here, and the spec's was made before the deployment
    the service runs started (unknown date: assumed so)."""
    if seen.known:
        return False
    primary = p.observed.service.primary
    if seen.spec_committed is None or primary is None:
        return True
    return seen.spec_committed < primary.created_at


def _waited(p: PassInputs, seen: ServiceCommit) -> float:
    if seen.unknown_since is None:
        return 0.0
    return max((p.now - seen.unknown_since).total_seconds(), 0.0)
