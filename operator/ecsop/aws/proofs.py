"""Proofs on task definition revisions: which digests a release ran to last-good.

Where proof lives, and why there. When a release's revision becomes last-good
after its bake, ecsop tags that revision ``ecsop:proven:<release>``
(``ecsop.decision.memory.proof_tags``, written by the executor before the
service's last-good). The revision is the right place: its images are exactly
what ran and are immutable; tags on it survive daemon restarts and the release
moving on to newer images (the service's ``ecsop:last-good`` only remembers the
latest); they cost the user none of the service's 50 tags; and they are read
with the release's own credentials, in its own account, like everything else
of it.

Reading (``ProofReader.proven``), only when a downstream deploy is pending:
the upstream's last-good and running revisions first (the common case: staging
just proved what production now asks for), then its family's newest ACTIVE
revisions (``revisions.FIND_REVISION_LIMIT``). Revisions are described from the
gateway's immutable cache; a proof not in the cached tags is read with
ListTagsForResource (a proof may have been written after the revision was
cached), and kept once found: a proof is never withdrawn.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from ecsop.aws.clients import AwsError
from ecsop.aws.ecs import EcsGateway
from ecsop.decision.ecs_state import Fingerprint, ServiceState, TaskDefinitionArn
from ecsop.decision.memory import ServiceMemory, proves
from ecsop.decision.observation import fingerprint_of
from ecsop.spec.images import digest_of
from ecsop.spec.model import ServiceRelease


class ProofReader:
    """Reads what a release proved; remembers proofs found (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proven: set[tuple[str, str]] = set()
        """(revision ARN, release) pairs known proven."""

    def proven(
        self,
        gateway: EcsGateway,
        upstream: ServiceState,
        release: str,
        digests: Iterable[str],
        spec: ServiceRelease | None = None,
    ) -> frozenset[str]:
        """The digests among ``digests`` that ``release`` (on ``upstream``) proved.

        With the upstream's ``spec``, a revision of the fingerprint its failed record
        names proves nothing, proof or not: the proof is written before last-good, so a
        pass that lost the last-good write and then saw the bake fail rolled back a
        revision already tagged proven.
        """
        remaining = set(digests)
        proven: set[str] = set()
        memory = ServiceMemory.read(upstream.tags)
        failed = memory.failed.fingerprint if memory.failed is not None and spec else None
        first: list[TaskDefinitionArn] = []
        if memory.last_good and memory.vouches_for_last_good(upstream.arn, release):
            first.append(memory.last_good)
        first.append(upstream.task_definition)
        families: list[str] = []
        for arn in dict.fromkeys(first):
            if not remaining:
                break
            family = self._consider(gateway, arn, release, remaining, proven, spec, failed)
            families.append(family)
        for family in dict.fromkeys(f for f in families if f):
            if not remaining:
                break
            for arn in gateway.newest_revisions(family):
                if not remaining:
                    break
                self._consider(gateway, arn, release, remaining, proven, spec, failed)
        return frozenset(proven)

    def _consider(
        self,
        gateway: EcsGateway,
        arn: TaskDefinitionArn,
        release: str,
        remaining: set[str],
        proven: set[str],
        spec: ServiceRelease | None = None,
        failed: Fingerprint | None = None,
    ) -> str:
        """Move the digests revision ``arn`` proves from ``remaining`` to ``proven``.

        A revision that cannot be described (a hand-edited last-good naming one that
        does not exist) proves nothing and stops nothing; throttling is raised.
        """
        try:
            revision = gateway.task_definition(arn)
        except AwsError as error:
            if error.retryable:
                raise
            return ""
        if failed is not None and spec is not None and fingerprint_of(spec, revision) == failed:
            return revision.family
        carried = {d for d in map(digest_of, revision.images.values()) if d} & remaining
        if carried and self._proves(gateway, revision.arn, revision.tags, release):
            proven |= carried
            remaining -= carried
        return revision.family

    def _proves(
        self, gateway: EcsGateway, arn: str, cached_tags: Mapping[str, str], release: str
    ) -> bool:
        with self._lock:
            if (arn, release) in self._proven:
                return True
        tags = cached_tags
        if not proves(tags, release, arn):
            tags = gateway.resource_tags(arn)
            if not proves(tags, release, arn):
                return False
        with self._lock:
            self._proven.add((arn, release))
        return True
