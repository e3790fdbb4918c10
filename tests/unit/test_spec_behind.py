"""A spec checkout behind the service (``decision.spec_behind``, ``controller.spec_commits``).

The service runs api:2, which ecsop deployed from commit ``SERVICE`` (the merged
change); this process's spec checkout is at ``SPEC``, whose spec is the release
before it (api:1, last-good). Whether ``SERVICE`` is a commit this repository has
decides between "git-sync is behind: wait" and "the branch went back: deploy".
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from builders import NOW, deployment, memory_tags, release, service, task_definition
from ecsop import cli
from ecsop.controller.spec_commits import SpecCommits
from ecsop.decision import spec_behind
from ecsop.decision.actions import Action, Deploy, Revert, Rollback, Wait
from ecsop.decision.decide import decide
from ecsop.decision.ecs_state import Deployment, DeploymentStatus, RolloutState, TaskDefinition
from ecsop.decision.memory import TAG_COMMIT, TAG_RELEASE
from ecsop.decision.observation import Observation, Options
from ecsop.decision.reasons import HELD, Phase, Reason
from ecsop.decision.situation import classify
from ecsop.decision.spec_behind import ServiceCommit
from ecsop.spec.commits import committed_at, has_commit
from ecsop.spec.loader import LoadedRelease
from ecsop.spec.model import ServiceRelease

OLD = "repo/api@sha256:" + "0" * 64
NEW = "repo/api@sha256:" + "1" * 64
SPEC = "a" * 40
SERVICE = "b" * 40

PROVEN = task_definition("api", 1, {"api": OLD})
MERGED = task_definition("api", 2, {"api": NEW}, {TAG_RELEASE: "api-prod", TAG_COMMIT: SERVICE})
UNTAGGED = replace(MERGED, tags={TAG_RELEASE: "api-prod"})
EDITED = replace(MERGED, tags={**MERGED.tags, TAG_COMMIT: "--help"})
BY_HAND = task_definition("api", 3, {"api": NEW}, {TAG_RELEASE: "other", TAG_COMMIT: SERVICE})
SPEC_RELEASE = release(containers={"api": OLD})
OPTIONS = Options(active_poll_seconds=5)

UNKNOWN = ServiceCommit(
    SERVICE,
    SPEC,
    known=False,
    unknown_since=NOW - timedelta(seconds=10),
    spec_committed=NOW - timedelta(hours=2),  # before either deployment below started
)
NEWER = replace(UNKNOWN, spec_committed=NOW - timedelta(seconds=30))
UNDATED = replace(UNKNOWN, spec_committed=None)
KNOWN = ServiceCommit(SERVICE, SPEC, known=True)
EXPIRED = replace(UNKNOWN, unknown_since=NOW - timedelta(seconds=301))

STEADY_MERGED = deployment(MERGED)
ROLLING_MERGED = deployment(MERGED, RolloutState.IN_PROGRESS, age=60, updated_ago=10, running=1)
FAILING_MERGED = replace(ROLLING_MERGED, failed_tasks=2)
DRAINING_PROVEN = deployment(PROVEN, status=DeploymentStatus.ACTIVE)


def observed(
    *deployments: Deployment, seen: ServiceCommit | None, extra: TaskDefinition = MERGED
) -> Observation:
    return Observation(
        service=service(*deployments, tags=memory_tags(last_good=PROVEN.arn)),
        task_definitions={td.arn: td for td in (PROVEN, extra)},
        service_commit=seen,
    )


@pytest.mark.parametrize(
    ("obs", "expected"),
    [
        pytest.param(
            observed(STEADY_MERGED, seen=UNKNOWN),
            (Wait, Phase.PROGRESSING, Reason.SPEC_BEHIND_SERVICE),
            id="unknown-commit-holds",
        ),
        pytest.param(
            observed(STEADY_MERGED, seen=UNDATED),
            (Wait, Phase.PROGRESSING, Reason.SPEC_BEHIND_SERVICE),
            id="unknown-commit-spec-date-unreadable-holds",
        ),
        pytest.param(
            observed(STEADY_MERGED, seen=KNOWN),
            (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
            id="known-non-ancestor-a-reset-deploys",
        ),
        pytest.param(
            observed(STEADY_MERGED, seen=NEWER),
            (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
            id="unknown-but-spec-newer-than-the-deployment-git-sync-pruned-it-deploys",
        ),
        pytest.param(
            observed(STEADY_MERGED, seen=EXPIRED),
            (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
            id="grace-expired-deploys",
        ),
        pytest.param(
            observed(STEADY_MERGED, seen=None),
            (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
            id="no-git-or-no-commit-tag-deploys",
        ),
        pytest.param(
            observed(deployment(BY_HAND), seen=UNKNOWN, extra=BY_HAND),
            (Wait, Phase.PROGRESSING, Reason.SPEC_BEHIND_SERVICE),
            id="self-heal-held-too",
        ),
        pytest.param(
            observed(ROLLING_MERGED, DRAINING_PROVEN, seen=UNKNOWN),
            (Wait, Phase.PROGRESSING, Reason.SPEC_BEHIND_SERVICE),
            id="revert-of-a-rollout-in-flight-held",
        ),
        pytest.param(
            observed(ROLLING_MERGED, DRAINING_PROVEN, seen=KNOWN),
            (Revert, Phase.ROLLING_BACK, Reason.REVERTING),
            id="revert-to-a-known-older-commit-goes",
        ),
        pytest.param(
            observed(FAILING_MERGED, DRAINING_PROVEN, seen=UNKNOWN),
            (Rollback, Phase.ROLLING_BACK, Reason.ROLLING_BACK),
            id="rollback-never-held",
        ),
    ],
)
def test_decision(obs: Observation, expected: tuple[type[Action], Phase, Reason]) -> None:
    action = decide(SPEC_RELEASE, obs, NOW, OPTIONS)
    assert (type(action), action.phase, action.reason) == expected, action.message


def test_the_hold_names_both_commits_and_how_long_it_may_wait() -> None:
    action = decide(SPEC_RELEASE, observed(STEADY_MERGED, seen=UNKNOWN), NOW, OPTIONS)
    assert isinstance(action, Wait) and action.reason in HELD
    assert SERVICE[:12] in action.message and SPEC[:12] in action.message
    assert "waiting for git-sync (at most 290s more)" in action.message
    assert action.requeue_after == 5
    late = replace(UNKNOWN, unknown_since=NOW - timedelta(seconds=298))
    action = decide(SPEC_RELEASE, observed(STEADY_MERGED, seen=late), NOW, OPTIONS)
    assert action.requeue_after == pytest.approx(2), "looks again when the grace runs out"


def test_a_deploy_after_the_grace_says_why() -> None:
    action = decide(SPEC_RELEASE, observed(STEADY_MERGED, seen=EXPIRED), NOW, OPTIONS)
    assert isinstance(action, Deploy)
    assert (
        f"still not in this replica's spec checkout after 300s: going ahead from {SPEC[:12]}"
        in (action.message)
    )
    quiet = decide(SPEC_RELEASE, observed(STEADY_MERGED, seen=KNOWN), NOW, OPTIONS)
    assert "going ahead" not in quiet.message


def test_a_grace_of_zero_never_holds() -> None:
    options = replace(OPTIONS, spec_behind_grace_seconds=0)
    action = decide(SPEC_RELEASE, observed(STEADY_MERGED, seen=UNKNOWN), NOW, options)
    assert isinstance(action, Deploy)


@pytest.mark.parametrize(
    ("rel", "obs", "spec_commit", "options", "asked"),
    [
        pytest.param(
            SPEC_RELEASE, observed(STEADY_MERGED, seen=None), SPEC, OPTIONS, SERVICE, id="deploy"
        ),
        pytest.param(
            SPEC_RELEASE,
            observed(ROLLING_MERGED, DRAINING_PROVEN, seen=None),
            SPEC,
            OPTIONS,
            SERVICE,
            id="revert",
        ),
        pytest.param(
            SPEC_RELEASE,
            observed(STEADY_MERGED, seen=None),
            SERVICE,
            OPTIONS,
            None,
            id="same-commit",
        ),
        pytest.param(
            SPEC_RELEASE, observed(STEADY_MERGED, seen=None), None, OPTIONS, None, id="no-git"
        ),
        pytest.param(
            SPEC_RELEASE,
            observed(deployment(PROVEN), seen=None),
            SPEC,
            OPTIONS,
            None,
            id="steady-release-no-fork",
        ),
        pytest.param(
            release(containers={"api": NEW}),
            observed(ROLLING_MERGED, DRAINING_PROVEN, seen=None),
            SPEC,
            OPTIONS,
            None,
            id="its-own-rollout-judged",
        ),
        pytest.param(
            SPEC_RELEASE,
            observed(deployment(BY_HAND), seen=None, extra=BY_HAND),
            SPEC,
            Options(self_heal=False),
            None,
            id="drift-reported-only",
        ),
        pytest.param(
            SPEC_RELEASE,
            observed(deployment(UNTAGGED), seen=None, extra=UNTAGGED),
            SPEC,
            OPTIONS,
            None,
            id="revision-without-commit",
        ),
        pytest.param(
            SPEC_RELEASE,
            observed(deployment(EDITED), seen=None, extra=EDITED),
            SPEC,
            OPTIONS,
            None,
            id="tag-not-a-commit-hash",
        ),
    ],
)
def test_what_a_pass_looks_up(
    rel: ServiceRelease,
    obs: Observation,
    spec_commit: str | None,
    options: Options,
    asked: str | None,
) -> None:
    view = classify(rel, obs, options)
    assert spec_behind.asks(rel, obs, view, options, spec_commit) == asked


class Repository:
    def __init__(self, has: set[str]) -> None:
        self.has = has
        self.asked: list[str] = []
        self.dated: list[str] = []

    def __call__(self, directory: Path, commit: str) -> bool:
        self.asked.append(commit)
        return commit in self.has

    def committed_at(self, directory: Path, commit: str) -> datetime | None:
        self.dated.append(commit)
        return UNKNOWN.spec_committed


def spec_commits(repository: Repository) -> SpecCommits:
    return SpecCommits(Path("."), has_commit=repository, committed_at=repository.committed_at)


def lookup(commits: SpecCommits, obs: Observation, now: datetime) -> ServiceCommit | None:
    loaded = LoadedRelease(SPEC_RELEASE, "api.yaml", 1, "us-east-1")
    view = classify(SPEC_RELEASE, obs, OPTIONS)
    return commits.read(loaded, obs, view, OPTIONS, SPEC, now).service_commit


def test_the_repository_is_asked_only_before_a_deploy_and_a_found_commit_once() -> None:
    repository = Repository({SERVICE})
    commits = spec_commits(repository)
    assert lookup(commits, observed(deployment(PROVEN), seen=None), NOW) is None
    assert repository.asked == []
    for _ in range(3):
        assert lookup(commits, observed(STEADY_MERGED, seen=None), NOW) == KNOWN
    assert repository.asked == [SERVICE]
    assert repository.dated == [], "the spec's date is read only for a missing commit"


def test_a_missing_commit_is_dated_from_the_first_pass_that_found_it() -> None:
    repository = Repository(set())
    commits = spec_commits(repository)
    first = lookup(commits, observed(STEADY_MERGED, seen=None), NOW)
    later = lookup(commits, observed(STEADY_MERGED, seen=None), NOW + timedelta(seconds=60))
    assert first == later == replace(UNKNOWN, unknown_since=NOW)
    assert len(repository.asked) == 2, "a missing commit is asked again: git-sync may fetch it"
    assert repository.dated == [SPEC], "the spec commit's date is read once"


def lookup_at(
    commits: SpecCommits, spec_commit: str, now: datetime, name: str = "api-prod"
) -> ServiceCommit | None:
    loaded = LoadedRelease(
        SPEC_RELEASE.model_copy(
            update={"metadata": SPEC_RELEASE.metadata.model_copy(update={"name": name})}
        ),
        "api.yaml",
        1,
        "us-east-1",
    )
    obs = observed(STEADY_MERGED, seen=None)
    view = classify(SPEC_RELEASE, obs, OPTIONS)
    return commits.read(loaded, obs, view, OPTIONS, spec_commit, now).service_commit


def test_a_commit_fetched_while_the_spec_read_before_it_is_still_used_stays_missing() -> None:
    """git-sync fetches, then switches the checkout, and the directory is read after that:
    a pass in between still carries the old spec, though git already has the commit."""
    repository = Repository(set())
    commits = spec_commits(repository)
    assert lookup_at(commits, SPEC, NOW) == replace(UNKNOWN, unknown_since=NOW)
    repository.has.add(SERVICE)  # fetched; the checkout and the spec read are still SPEC
    later = NOW + timedelta(seconds=5)
    assert lookup_at(commits, SPEC, later) == replace(UNKNOWN, unknown_since=NOW)
    other = lookup_at(commits, SPEC, later, name="worker-prod")  # its first look, now
    assert other == replace(UNKNOWN, unknown_since=later), "deployed from the same commit"
    moved = "d" * 40  # the checkout moved on (to a commit after SERVICE)
    assert lookup_at(commits, moved, later) == replace(KNOWN, spec=moved)


def test_the_grace_counts_from_the_first_look_whatever_the_checkout_moves_to_meanwhile() -> None:
    """A checkout that moves on yet still lacks the commit (git-sync stuck behind a slow
    host, a history rewritten) does not start the grace again."""
    commits = spec_commits(Repository(set()))
    assert lookup_at(commits, SPEC, NOW) == replace(UNKNOWN, unknown_since=NOW)
    moved = "e" * 40
    later = lookup_at(commits, moved, NOW + timedelta(seconds=200))
    assert later is not None and later.unknown_since == NOW


def test_a_branch_reset_finds_the_commit_it_leaves_at_once() -> None:
    commits = spec_commits(Repository({SERVICE}))
    assert lookup_at(commits, SPEC, NOW) == KNOWN


def test_the_real_repository_answers(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x")
    head = git("rev-parse", "HEAD")
    tree = git("rev-parse", "HEAD^{tree}")
    made = int(git("show", "-s", "--format=%ct", "HEAD"))
    assert committed_at(tmp_path, head) == datetime.fromtimestamp(made, tz=UTC)
    assert committed_at(tmp_path, "c" * 40) is None
    assert has_commit(tmp_path, head)
    assert not has_commit(tmp_path, "c" * 40)
    assert not has_commit(tmp_path, tree), "a tree is no commit"
    assert not has_commit(tmp_path, "HEAD"), "only full hashes are passed to git"
    plain = tmp_path.parent / f"{tmp_path.name}-plain"
    plain.mkdir()
    assert not has_commit(plain, head), "no git work tree"


def test_a_negative_grace_is_refused_naming_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ECSOP_SPEC_BEHIND_GRACE", raising=False)
    assert cli.main(["run", "--specs", str(tmp_path), "--spec-behind-grace", "-1"]) == 2
    assert "--spec-behind-grace (env ECSOP_SPEC_BEHIND_GRACE) cannot be negative" in (
        capsys.readouterr().err
    )
    monkeypatch.setenv("ECSOP_SPEC_BEHIND_GRACE", "five minutes")
    assert cli.main(["run", "--specs", str(tmp_path)]) == 2
    assert "ECSOP_SPEC_BEHIND_GRACE='five minutes' is not valid" in capsys.readouterr().err
