"""What ecsop remembers, kept in AWS tags: how it is read, and what each record writes.

ecsop keeps nothing it cannot lose (``docs/design.md``, "State lives in AWS").
This module is the one home of that memory: the decision reads it as a
``ServiceMemory`` value, computes the next value as a pure transition
(``deploying``, ``failed_with``, ``proven`` ...), and the executor writes
``tags()`` of that value. No other module spells a tag key.

On a service, ecsop keeps **two tags, whatever happens**: ECS allows 50 per
resource and a user's own come first (``docs/design.md``, "The tag budget").

- ``ecsop:last-good``: ARN of the task definition revision last proven good.
- ``ecsop:state``: everything else, as ``key=value`` words, because ECS tag
  values allow only letters, digits, spaces and ``+ - = . _ : / @``:
  ``v=1 release=NAME lg=CHECK lgf=CHECK deploying=FP failed=FP/REASON writer=ID``.
  ``lg`` binds last-good to this service and release (a hash of the three), so
  a last-good written by hand or copied from another service is not followed.
  ``lgf`` binds last-good's fingerprint (the images ecsop read in it when it
  proved it) to the same three: a revision is immutable, so a fresh process
  can know a steady service runs its release without describing the revision
  (``ServiceMemory.last_good_carries``; ``docs/design.md``, "A restart describes
  nothing it already proved").
  ``writer`` is the ecsop instance that wrote it last: a second instance
  acting on the same service is detected by it.

On each task definition revision ecsop registers: ``ecsop:release``,
``ecsop:fingerprint``, ``ecsop:content`` (``ecsop.aws.taskdef.content_hash`` of
the revision: what decides reuse) and ``ecsop:commit`` (when the spec
directory is a git work tree). Each step (``spec.preDeploy``, ``spec.verify``)
run on a revision keeps one more tag there, ``ecsop:step:NAME``, written before
anything else happens: ``state=started try=N at=SECONDS`` before RunTask, then
``state=succeeded`` or ``state=failed`` with the task, exit code, stop code and
why (``StepRecord``).

Services managed by ecsop before this layout carry the older one-tag-per-field
keys (``LEGACY_SERVICE_KEYS``); they are read, trusted when their release
matches, and replaced by the two tags on the next write.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from ecsop.decision.ecs_state import Fingerprint, TaskDefinitionArn
from ecsop.decision.reasons import Failure

TAG_PREFIX = "ecsop:"
"""Every tag ecsop writes starts with this; a clone never inherits its base's."""
RESERVED_TAG_PREFIX = "aws:"
"""Tags AWS sets itself (CloudFormation's ``aws:cloudformation:*``): not counted, not writable."""
MAX_TAGS = 50
"""ECS's cap on user tags per resource (``aws:`` tags do not count)."""
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256

TAG_LAST_GOOD = "ecsop:last-good"
"""On the service: ARN of the last task definition proven good (completed and baked)."""
TAG_STATE = "ecsop:state"
"""On the service: the rest of ecsop's memory, as ``key=value`` words."""
SERVICE_KEYS = (TAG_LAST_GOOD, TAG_STATE)
"""Every tag ecsop keeps on a service: what ``LetGo`` removes."""

TAG_RELEASE = "ecsop:release"
"""On task definitions ecsop registers: the release they were registered for."""
TAG_FINGERPRINT = "ecsop:fingerprint"
"""On task definitions ecsop registers: the release fingerprint (the images) they carry."""
TAG_COMMIT = "ecsop:commit"
"""On task definitions ecsop registers: the git commit of the spec directory."""
TAG_CONTENT = "ecsop:content"
"""On task definitions ecsop registers: the content hash of the registration request."""
REVISION_KEYS = (TAG_RELEASE, TAG_FINGERPRINT, TAG_COMMIT, TAG_CONTENT)
"""Every tag ecsop writes on a revision it registers (steps add one each)."""

LEGACY_SERVICE_KEYS = (
    "ecsop:release",
    "ecsop:failed-fingerprint",
    "ecsop:failed-reason",
    "ecsop:deploying-fingerprint",
)
"""Service tags of ecsop 0.1, one per field: read, then removed on the next write."""

STATE_VERSION = "1"
_CHECK_LENGTH = 12


@dataclass(frozen=True, slots=True)
class FailedRecord:
    """A release that failed: not deployed again until the spec changes or ``ecsop retry``."""

    fingerprint: Fingerprint
    failure: Failure


@dataclass(frozen=True, slots=True)
class ServiceMemory:
    """ecsop's memory of one service, as read from (and written to) its tags."""

    release: str = ""
    """The release that wrote this memory."""
    last_good: TaskDefinitionArn | None = None
    """The revision last proven good, as tagged (see ``vouches_for_last_good``)."""
    last_good_check: str = ""
    """``lg``: binds ``last_good`` to this service and release."""
    last_good_fingerprint: str = ""
    """``lgf``: binds the fingerprint ecsop computed from ``last_good``'s images when it
    recorded it to this service, release and revision ("" when not recorded: memory
    written by an earlier ecsop, or a revision whose images did not cover the release)."""
    deploying: Fingerprint | None = None
    """The release ecsop rolled out and has not yet proven good.

    Written right after UpdateService, cleared when the release is proven. A
    steady service running something else while it is set was rolled back
    behind ecsop's back (ECS's breaker between two looks, or while the daemon
    was down), or changed by someone: the decision asks which.
    """
    failed: FailedRecord | None = None
    writer: str = ""
    """The ecsop instance that wrote this memory last."""
    legacy: bool = False
    """Read from the 0.1 one-tag-per-field layout."""

    @classmethod
    def read(cls, tags: Mapping[str, str]) -> ServiceMemory:
        """The memory in a service's tags; unknown or malformed words are ignored."""
        last_good = TaskDefinitionArn(tags[TAG_LAST_GOOD]) if tags.get(TAG_LAST_GOOD) else None
        if TAG_STATE not in tags:
            return _read_legacy(tags, last_good)
        words = dict(word.split("=", 1) for word in tags[TAG_STATE].split() if "=" in word)
        failed = None
        if "/" in words.get("failed", ""):
            fingerprint, reason = words["failed"].split("/", 1)
            failed = FailedRecord(Fingerprint(fingerprint), _failure(reason))
        return cls(
            release=words.get("release", ""),
            last_good=last_good,
            last_good_check=words.get("lg", ""),
            last_good_fingerprint=words.get("lgf", ""),
            deploying=Fingerprint(words["deploying"]) if words.get("deploying") else None,
            failed=failed,
            writer=words.get("writer", ""),
        )

    def vouches_for_last_good(self, service_arn: str, release: str) -> bool:
        """Whether ``last_good`` was written by ecsop for this service and release.

        A hand-edited tag, or one copied from another service, fails the check
        and is not followed: a rollback must never deploy a revision ecsop did
        not prove for this service (an unrelated family, an admin task role).
        """
        if self.last_good is None:
            return False
        if self.legacy:
            return self.release == release
        return self.last_good_check == last_good_check(service_arn, release, self.last_good)

    def last_good_carries(self, service_arn: str, release: str, fingerprint: Fingerprint) -> bool:
        """Whether ecsop recorded that last-good carries ``fingerprint`` (its images).

        Read instead of describing the revision when a fresh process finds a steady
        service on last-good: a revision never changes after it is registered, and
        ecsop computed this fingerprint from its images. The record counts only
        when last-good itself is vouched for and the binding matches all four, so
        a word copied from another service, or left from an older last-good, does not.
        """
        if not fingerprint or not self.last_good_fingerprint or self.last_good is None:
            return False
        if not self.vouches_for_last_good(service_arn, release):
            return False
        bound = last_good_fingerprint_check(service_arn, release, self.last_good, fingerprint)
        return self.last_good_fingerprint == bound

    # --- transitions: each returns the memory to write --------------------------------

    def stamped(self, release: str, writer: str, *, service_arn: str) -> ServiceMemory:
        """This memory as this release and writer write it, in the current layout.

        A last-good trusted from the 0.1 layout (its release matches) gets its ``lg``
        check here: written without one, the next read would not vouch for it, and
        the release would lose its rollback target on its first write.
        """
        check = self.last_good_check
        if self.legacy and self.last_good is not None and self.release == release:
            check = last_good_check(service_arn, release, self.last_good)
        return replace(self, release=release, writer=writer, legacy=False, last_good_check=check)

    def rolling_out(self, fingerprint: Fingerprint) -> ServiceMemory:
        return replace(self, deploying=fingerprint)

    def failed_with(self, fingerprint: Fingerprint, failure: Failure) -> ServiceMemory:
        """Record a failure; a rollout of it is over, so ``deploying`` goes."""
        deploying = None if self.deploying == fingerprint else self.deploying
        return replace(self, failed=FailedRecord(fingerprint, failure), deploying=deploying)

    def proven(
        self,
        service_arn: str,
        release: str,
        task_definition: TaskDefinitionArn,
        *,
        fingerprint: Fingerprint | None,
    ) -> ServiceMemory:
        """``task_definition`` is last-good now; nothing is being rolled out.

        ``fingerprint`` is what ecsop computed from the revision's images (None when
        they do not cover the release); any binding left from an older last-good is
        dropped. Required, so that no caller forgets it and makes restarts describe.
        """
        check = last_good_check(service_arn, release, task_definition)
        proven = replace(
            self,
            last_good=task_definition,
            last_good_check=check,
            last_good_fingerprint="",
            deploying=None,
        )
        return proven.carrying(service_arn, release, fingerprint) if fingerprint else proven

    def carrying(self, service_arn: str, release: str, fingerprint: Fingerprint) -> ServiceMemory:
        """Record that last-good carries ``fingerprint``, changing nothing else: for memory
        written by an earlier ecsop, or a spec edit that kept its revision in sync."""
        if self.last_good is None:
            return self
        bound = last_good_fingerprint_check(service_arn, release, self.last_good, fingerprint)
        return replace(self, last_good_fingerprint=bound)

    def without_failure(self) -> ServiceMemory:
        return replace(self, failed=None)

    def retried(self) -> ServiceMemory:
        """What ``ecsop retry`` leaves: no failed record, no rollout record."""
        return replace(self, failed=None, deploying=None)

    def without_rollout(self) -> ServiceMemory:
        return replace(self, deploying=None)

    # --- writing ---------------------------------------------------------------------

    def tags(self) -> dict[str, str]:
        """The service tags that store this memory (at most ``len(SERVICE_KEYS)``)."""
        words = [f"v={STATE_VERSION}", f"release={self.release}"]
        if self.last_good is not None and self.last_good_check:
            words.append(f"lg={self.last_good_check}")
            if self.last_good_fingerprint:
                words.append(f"lgf={self.last_good_fingerprint}")
        if self.deploying:
            words.append(f"deploying={self.deploying}")
        if self.failed is not None:
            words.append(f"failed={self.failed.fingerprint}/{self.failed.failure.value}")
        if self.writer:
            words.append(f"writer={self.writer}")
        tags = {TAG_STATE: " ".join(words)}
        if self.last_good is not None:
            tags[TAG_LAST_GOOD] = self.last_good
        return tags

    def stale_keys(self, current: Mapping[str, str]) -> list[str]:
        """Keys among ``current`` this memory no longer uses: to remove after writing it."""
        wanted = self.tags()
        return [
            key
            for key in current
            if key not in wanted and (key in LEGACY_SERVICE_KEYS or key in SERVICE_KEYS)
        ]

    def same_as(self, other: ServiceMemory) -> bool:
        """Whether writing ``self`` over ``other`` would change no tag."""
        return self.tags() == other.tags() and not other.legacy


def last_good_check(service_arn: str, release: str, task_definition: str) -> str:
    digest = hashlib.sha256(f"{service_arn}\n{release}\n{task_definition}".encode())
    return digest.hexdigest()[:_CHECK_LENGTH]


def last_good_fingerprint_check(
    service_arn: str, release: str, task_definition: str, fingerprint: str
) -> str:
    """``lgf``: a hash, not the fingerprint itself, so one word both records and checks
    it within the state tag's 256 characters; it is only ever compared."""
    text = f"fingerprint\n{service_arn}\n{release}\n{task_definition}\n{fingerprint}"
    return hashlib.sha256(text.encode()).hexdigest()[:_CHECK_LENGTH]


def user_tag_count(tags: Mapping[str, str]) -> int:
    """Tags that count against ECS's limit and are not ecsop's own."""
    return sum(
        1
        for key in tags
        if not key.startswith(RESERVED_TAG_PREFIX) and not key.startswith(TAG_PREFIX)
    )


def room_for_memory(tags: Mapping[str, str]) -> bool:
    """Whether the service can hold ecsop's tags next to its user's own."""
    return user_tag_count(tags) + len(SERVICE_KEYS) <= MAX_TAGS


@dataclass(frozen=True, slots=True)
class RevisionMemory:
    """What ecsop wrote on a task definition revision it registered."""

    release: str = ""
    fingerprint: Fingerprint | None = None
    content: str = ""
    commit: str = ""

    @classmethod
    def read(cls, tags: Mapping[str, str]) -> RevisionMemory:
        return cls(
            release=tags.get(TAG_RELEASE, ""),
            fingerprint=Fingerprint(tags[TAG_FINGERPRINT]) if tags.get(TAG_FINGERPRINT) else None,
            content=tags.get(TAG_CONTENT, ""),
            commit=tags.get(TAG_COMMIT, ""),
        )

    def tags(self) -> dict[str, str]:
        tags = {TAG_RELEASE: self.release, TAG_CONTENT: self.content}
        if self.fingerprint:
            tags[TAG_FINGERPRINT] = self.fingerprint
        if self.commit:
            tags[TAG_COMMIT] = self.commit
        return tags


def _read_legacy(tags: Mapping[str, str], last_good: TaskDefinitionArn | None) -> ServiceMemory:
    failed = None
    if tags.get("ecsop:failed-fingerprint"):
        failed = FailedRecord(
            Fingerprint(tags["ecsop:failed-fingerprint"]),
            _failure(tags.get("ecsop:failed-reason", "")),
        )
    deploying = tags.get("ecsop:deploying-fingerprint")
    return ServiceMemory(
        release=tags.get("ecsop:release", ""),
        last_good=last_good,
        deploying=Fingerprint(deploying) if deploying else None,
        failed=failed,
        legacy=bool(last_good or failed or deploying or tags.get("ecsop:release")),
    )


def _failure(value: str) -> Failure:
    """A recorded failure reason; one this version does not know reads as failed tasks."""
    try:
        return Failure(value)
    except ValueError:
        return Failure.FAILED_TASKS


# --- steps: one tag per step on the revision it runs on ---------------------------------

TAG_STEP_PREFIX = "ecsop:step:"
"""On a revision a step ran on: ``ecsop:step:NAME`` holds that step's ``StepRecord``."""
_UNSAFE_TAG_VALUE = re.compile(r"[^\w .:/=+@-]+")
"""Characters ECS refuses in tag values (it allows letters, digits, spaces and ``_.:/=+-@``)."""


class StepState(StrEnum):
    """Where a step stands for one attempt."""

    STARTED = "started"
    """Recorded just before RunTask: its task is looked for before anything else is done."""
    SUCCEEDED = "succeeded"
    """Its container exited 0 within the timeout: never run again for this fingerprint."""
    FAILED = "failed"
    """It exited non-zero, failed to start, timed out or was lost: only ``ecsop retry``
    runs it again (as the next attempt)."""


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step's memory on a revision, as ``key=value`` words in one tag value."""

    state: StepState | None = None
    """None: not started in this attempt (never run, or cleared by ``ecsop retry``)."""
    attempt: int = 1
    """Which run of the step this is; ``ecsop retry`` moves to the next one."""
    at: int = 0
    """When it was started: AWS's clock, Unix seconds."""
    task: str = ""
    """The task id (the last part of its ARN), once known."""
    exit_code: int | None = None
    stop_code: str = ""
    """ECS's ``stopCode`` (EssentialContainerExited, TaskFailedToStart, UserInitiated, ...)."""
    why: str = ""
    """A short explanation (ECS's stopped reason, "timed out after 900s"), tag-safe."""
    definition: str = ""
    """``step_state.definition`` of the step this attempt ran: a failure of another
    command, environment or timeout is not the current step's (empty: not known)."""
    limit: int = 0
    """The attempt's ``timeoutSeconds`` (0: not known): enforced even once the spec that
    set it moved on (``step_probe`` finds an earlier spec's step past it)."""

    @classmethod
    def read(cls, value: str) -> StepRecord:
        """A record from its tag value; unknown words are ignored, a broken one is pending."""
        head, _, why = value.partition(" why=")
        if value.startswith("why="):
            head, why = "", value[len("why=") :]
        words = dict(word.split("=", 1) for word in head.split() if "=" in word)
        try:
            state = StepState(words["state"]) if words.get("state") else None
        except ValueError:
            state = None
        return cls(
            state=state,
            attempt=_number(words.get("try")) or 1,
            at=_number(words.get("at")) or 0,
            task=words.get("task", ""),
            exit_code=_number(words.get("exit")),
            stop_code=words.get("stop", ""),
            why=why.strip(),
            definition=words.get("def", ""),
            limit=_number(words.get("limit")) or 0,
        )

    def value(self) -> str:
        """The tag value, at most ``MAX_TAG_VALUE`` characters (``why`` is cut to fit)."""
        words = [f"try={self.attempt}"]
        if self.state is not None:
            words.insert(0, f"state={self.state}")
        if self.at:
            words.append(f"at={self.at}")
        if self.task:
            words.append(f"task={self.task}")
        if self.exit_code is not None:
            words.append(f"exit={self.exit_code}")
        if self.stop_code:
            words.append(f"stop={_tag_safe(self.stop_code).replace(' ', '')}")
        if self.definition:
            words.append(f"def={self.definition}")
        if self.limit:
            words.append(f"limit={self.limit}")
        text = " ".join(words)
        if self.why:
            text = f"{text} why={_tag_safe(self.why)}"
        return text[:MAX_TAG_VALUE].rstrip()

    # --- transitions ------------------------------------------------------------------

    def started(self, at: int, definition: str = "", limit: int = 0) -> StepRecord:
        """Before RunTask; a re-sent RunTask of the same attempt keeps the first time.

        ``definition`` and ``limit`` (its timeout) are the step's as this RunTask sends it.
        """
        return replace(
            self, state=StepState.STARTED, at=self.at or at, definition=definition, limit=limit
        )

    def finished(
        self, succeeded: bool, task: str, exit_code: int | None, stop_code: str, why: str
    ) -> StepRecord:
        state = StepState.SUCCEEDED if succeeded else StepState.FAILED
        return replace(
            self, state=state, task=task, exit_code=exit_code, stop_code=stop_code, why=why
        )

    def retried(self) -> StepRecord:
        """What ``ecsop retry`` leaves: the next attempt, not started."""
        return StepRecord(attempt=self.attempt + 1)


TAG_STEP = "ecsop:step"
"""On a step's task (with ``ecsop:release`` and ``ecsop:fingerprint``): ``NAME try=N``."""


def step_task_tags(release: str, fingerprint: str, step: str, attempt: int) -> dict[str, str]:
    """The tags a step's task is started with: what it is, for people and for IAM."""
    return {TAG_RELEASE: release, TAG_FINGERPRINT: fingerprint, TAG_STEP: f"{step} try={attempt}"}


def step_tag(step: str) -> str:
    return f"{TAG_STEP_PREFIX}{step}"


def step_records(tags: Mapping[str, str]) -> dict[str, StepRecord]:
    """Step name -> its record, from a revision's tags."""
    return {
        key[len(TAG_STEP_PREFIX) :]: StepRecord.read(value)
        for key, value in tags.items()
        if key.startswith(TAG_STEP_PREFIX)
    }


def _tag_safe(text: str) -> str:
    return " ".join(_UNSAFE_TAG_VALUE.sub(" ", text).split())


def _number(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


# --- the release flow: proofs on revisions, approvals on services ----------------------

TAG_PROVEN_PREFIX = "ecsop:proven:"
"""On a revision that became a release's last-good after its bake: ``ecsop:proven:RELEASE``.

The value binds the proof to that revision (``proof_check``), so a tag copied
to another revision (the console's "create new revision" copies tags) proves
nothing. Written once, never removed: a digest proven last week stays
promotable after the release moved on (``ecsop.decision.release_flow.promotion``).
One key per release, so two releases proving one revision never overwrite each other.
"""
TAG_APPROVAL = "ecsop:approval"
"""On a service whose release needs approval: ``fp=FINGERPRINT spec=HASH at=TIME by=WHO``.

Written by ``ecsop approve`` (never by the daemon), before the revision it
approves exists, so it lives on the service, not on a revision; it is a third
tag (only for ``rollout.approval: manual``) because ``ecsop:state`` has no room
for who approved (an ARN). Removed with the other tags when ecsop lets go.
"""
RELEASE_FLOW_SERVICE_KEYS = (TAG_APPROVAL,)
"""Service tags of the release flow that ``LetGo`` removes as well."""


def proof_check(release: str, task_definition: str) -> str:
    digest = hashlib.sha256(f"proven\n{release}\n{task_definition}".encode())
    return digest.hexdigest()[:_CHECK_LENGTH]


def proof_tags(release: str, task_definition: str) -> dict[str, str]:
    """The tag that records ``task_definition`` as proven by ``release``."""
    return {f"{TAG_PROVEN_PREFIX}{release}": proof_check(release, task_definition)}


def proves(tags: Mapping[str, str], release: str, task_definition: str) -> bool:
    """Whether ``tags`` (of revision ``task_definition``) record a proof by ``release``."""
    return tags.get(f"{TAG_PROVEN_PREFIX}{release}") == proof_check(release, task_definition)


_TAG_VALUE_ALLOWED = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-=._:/@"
)


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """``ecsop approve``: who approved which fingerprint, when (AWS's time, ISO 8601)."""

    fingerprint: Fingerprint
    by: str = ""
    at: str = ""
    spec: str = ""
    """A hash of the rest of the release's spec as approved (``release_flow.approval.content``):
    the same images with another migration command are another release to approve."""

    @classmethod
    def read(cls, tags: Mapping[str, str]) -> ApprovalRecord | None:
        raw = tags.get(TAG_APPROVAL, "")
        words = dict(word.split("=", 1) for word in raw.split() if "=" in word)
        if not words.get("fp"):
            return None
        return cls(
            Fingerprint(words["fp"]),
            words.get("by", ""),
            words.get("at", ""),
            words.get("spec", ""),
        )

    def tags(self) -> dict[str, str]:
        """The one tag; ``by`` is cut to fit ECS's 256 characters, odd characters replaced."""
        spec = f" spec={self.spec}" if self.spec else ""
        head = f"fp={self.fingerprint}{spec} at={self.at} by="
        who = "".join(c if c in _TAG_VALUE_ALLOWED and c != " " else "_" for c in self.by)
        return {TAG_APPROVAL: head + who[: MAX_TAG_VALUE - len(head)]}
