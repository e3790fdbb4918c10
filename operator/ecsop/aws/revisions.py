"""Task definition revisions: an immutable cache, content-exact reuse, idempotent registration.

``Revisions`` is the task definition half of ``ecsop.aws.ecs.EcsGateway``.

- **Cache.** Revisions never change once registered, so each is described
  once (tags included) and kept. The cache is sized by the gateway's owner to
  the revisions the releases it serves need: steady state must never evict
  what the next resync reads.
- **Reuse only what a fresh clone would register.** A revision is reused for a
  deploy only when its content hash (``taskdef.content_hash``: every field
  RegisterTaskDefinition takes, tags included, ecsop's own excepted) equals
  that of the clone ecsop would register now from the service's current
  base, and (when ecsop registered it) it was registered for the same
  release. Matching images alone once let production run staging's revision
  (its environment and task role) in a shared family, and let a revert undo a
  configuration change made since.
- **Register once.** RegisterTaskDefinition is not idempotent: when AWS applies
  a call and the answer is lost, botocore's retry registers a second
  revision. Registration therefore goes through a client with botocore's
  retries off, and before each retry of its own ecsop looks for the revision
  the lost answer may have registered (it carries ``ecsop:content``).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ecsop.aws import clients, ecs_mapping, taskdef
from ecsop.decision.ecs_state import TaskDefinition, TaskDefinitionArn, short_name
from ecsop.decision.memory import TAG_CONTENT, RevisionMemory

Call = Callable[..., dict[str, Any]]
"""``(boto3 method name, **kwargs) -> response``, raising ``AwsError``."""

FIND_REVISION_LIMIT = 50
"""How many of a family's newest ACTIVE revisions a reuse search looks at.

A revision worth reusing is recent: the one registered just before a crash, or
the last-good one a revert returns to. Looking further back would cost one
DescribeTaskDefinition per revision on first sight (families with thousands of
revisions exist) for a reuse that only saves one RegisterTaskDefinition call.
"""
_LIST_PAGES_MAX = 10
"""ListTaskDefinitions pages read per search: familyPrefix also matches longer families."""
REGISTER_ATTEMPTS = 5
"""RegisterTaskDefinition attempts, each preceded (after the first) by a search."""
_REVISION = re.compile(r":(\d+)$")


@dataclass(frozen=True)
class PreparedClone:
    """What ecsop would register for a deploy, and how to recognise it once registered."""

    family: str
    request: Mapping[str, Any]
    """RegisterTaskDefinition keyword arguments (tags included)."""
    revision: RevisionMemory
    """ecsop's tags on it: release, fingerprint, content, commit."""


@dataclass(frozen=True)
class _Described:
    """A cached DescribeTaskDefinition answer: the value, and the raw parts for cloning."""

    value: TaskDefinition
    raw: Mapping[str, Any]
    raw_tags: list[dict[str, Any]]


class Revisions:
    """Task definition operations for one (region, role); thread-safe."""

    def __init__(
        self,
        call: Call,
        register_call: Call,
        *,
        cache_size: int = 4096,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._call = call
        self._register_call = register_call
        self._cache: OrderedDict[str, _Described] = OrderedDict()
        self._lock = threading.Lock()
        self._sleep = sleep
        self.cache_size = cache_size
        """Revisions kept; the daemon raises it to fit the releases it serves."""

    def get(self, arn: str) -> TaskDefinition:
        """The revision ``arn`` (or ``family:revision``), described once."""
        return self._described(arn).value

    def prepare_clone(
        self, base: TaskDefinitionArn, images: Mapping[str, str], revision: RevisionMemory
    ) -> PreparedClone:
        """The clone of ``base`` with ``images``: its request and content.

        Raises ``ValueError`` (a spec error) when a container name is not in ``base``.
        """
        described = self._described(base)
        content = taskdef.content_hash(
            taskdef.with_images(described.raw, images), described.raw_tags
        )
        revision = replace(revision, content=content)
        request = taskdef.register_request_from(
            described.raw, described.raw_tags, images, revision.tags()
        )
        return PreparedClone(described.value.family, request, revision)

    def reusable(self, arn: TaskDefinitionArn, clone: PreparedClone) -> bool:
        """Whether revision ``arn`` may stand in for ``clone``: same content, same release."""
        existing = self.get(arn)
        owner = RevisionMemory.read(existing.tags).release
        return existing.content == clone.revision.content and owner in ("", clone.revision.release)

    def find(self, clone: PreparedClone) -> TaskDefinitionArn | None:
        """The newest ACTIVE revision ecsop registered that ``clone`` would duplicate."""
        for arn in self._newest(clone.family):
            existing = RevisionMemory.read(self.get(arn).tags)
            if (
                existing.release == clone.revision.release
                and existing.content == clone.revision.content
            ):
                return arn
        return None

    def register(self, clone: PreparedClone) -> TaskDefinition:
        """Register ``clone`` exactly once, even when an answer is lost after the write."""
        for attempt in range(REGISTER_ATTEMPTS):
            if attempt:
                found = self.find(clone)
                if found is not None:
                    return self.get(found)
            try:
                response = self._register_call("register_task_definition", **clone.request)
            except clients.AwsError as error:
                if not error.retryable or attempt == REGISTER_ATTEMPTS - 1:
                    raise
                self._sleep(min(8.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0))
                continue
            return self._remember(
                response["taskDefinition"], response.get("tags", clone.request.get("tags"))
            ).value
        raise AssertionError("unreachable")  # pragma: no cover

    def of_release(self, family: str, release: str) -> list[TaskDefinition]:
        """The newest ACTIVE revisions of ``family`` ecsop registered for ``release``."""
        found = []
        for arn in self._newest(family):
            revision = self.get(arn)
            if RevisionMemory.read(revision.tags).release == release:
                found.append(revision)
        return found

    def tagged(self, arn: str, tags: Mapping[str, str]) -> TaskDefinition:
        """Revision ``arn`` with ``tags`` as its tags now (read or written by this process).

        A revision's content never changes, but ecsop records steps in its tags:
        whoever writes or reads them fresh keeps the cached copy in step.
        """
        described = self._described(arn)
        value = replace(described.value, tags=dict(tags))
        raw_tags = [{"key": k, "value": v} for k, v in tags.items()]
        updated = _Described(value, described.raw, raw_tags)
        with self._lock:
            keys = [key for key, cached in self._cache.items() if cached.value.arn == value.arn]
            for key in keys:
                self._cache[key] = updated
        return value
    def newest(self, family: str) -> list[TaskDefinitionArn]:
        """ARNs of ``family``'s newest ACTIVE revisions (``FIND_REVISION_LIMIT``), newest first."""
        return self._newest(family)

    # --- internals ---------------------------------------------------------------

    def _newest(self, family: str) -> list[TaskDefinitionArn]:
        """ARNs of ``family``'s newest ACTIVE revisions, newest first.

        ``familyPrefix`` matches every family starting with ``family``, so others
        are filtered out; sorting is redone here because moto ignores ``sort``.
        """
        revisions: dict[int, str] = {}
        kwargs: dict[str, Any] = {
            "familyPrefix": family,
            "status": "ACTIVE",
            "sort": "DESC",
            "maxResults": 100,
        }
        for _ in range(_LIST_PAGES_MAX):
            response = self._call("list_task_definitions", **kwargs)
            for arn in response.get("taskDefinitionArns") or ():
                name = short_name(arn)
                match = _REVISION.search(name)
                if match and name[: match.start()] == family:
                    revisions[int(match.group(1))] = arn
            kwargs["nextToken"] = response.get("nextToken")
            if not kwargs["nextToken"] or len(revisions) >= FIND_REVISION_LIMIT:
                break
        newest = sorted(revisions, reverse=True)[:FIND_REVISION_LIMIT]
        return [TaskDefinitionArn(revisions[revision]) for revision in newest]

    def _described(self, arn: str) -> _Described:
        with self._lock:
            cached = self._cache.get(arn)
            if cached is not None:
                self._cache.move_to_end(arn)
                return cached
        response = self._call("describe_task_definition", taskDefinition=arn, include=["TAGS"])
        described = self._remember(response["taskDefinition"], response.get("tags"))
        if _REVISION.search(arn):  # "family" alone means "latest": not immutable, not a key
            self._store(arn, described)
        return described

    def _remember(self, raw: dict[str, Any], raw_tags: list[dict[str, Any]] | None) -> _Described:
        tags = taskdef.tags_of(raw_tags)
        value = TaskDefinition(
            arn=TaskDefinitionArn(raw["taskDefinitionArn"]),
            family=str(raw["family"]),
            revision=int(raw["revision"]),
            images=taskdef.images_of(raw),
            tags=tags,
            content=tags.get(TAG_CONTENT) or taskdef.content_hash(raw, raw_tags),
            logs=ecs_mapping.container_logs(raw),
            execution_role=str(raw.get("executionRoleArn") or ""),
        )
        described = _Described(value, raw, list(raw_tags or ()))
        self._store(value.arn, described)
        return described

    def _store(self, key: str, described: _Described) -> None:
        with self._lock:
            self._cache[key] = described
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
