"""What the spec directory's git repository holds: whether a commit is there, and when
a commit was made.

A replica whose git-sync lags has not fetched the commit another replica
deployed from; ``ecsop.controller.spec_commits`` asks this before such a
deploy (``ecsop.decision.spec_behind``). Each answer is a fork of git, so it
is asked only for a deploy that is about to happen, never for a steady release.
Only full commit hashes are passed to git; ``safe.directory`` is widened as for
``loader.git_commit`` (git-sync's checkout is usually another user's).
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
"""A full commit hash (SHA-1, or SHA-256 repositories): the only thing passed to git."""


def has_commit(directory: Path, commit: str) -> bool:
    """Whether the git repository of ``directory`` holds the commit ``commit``.

    ``git cat-file -e HASH^{commit}`` exits 0 only when the object exists and
    is a commit (https://git-scm.com/docs/git-cat-file: ``-e``); any other
    outcome (missing, not a work tree, git not runnable, a timeout) is "not held".
    """
    result = _git(directory, commit, "cat-file", "-e", commit + "^{commit}")
    return result is not None and result.returncode == 0


def committed_at(directory: Path, commit: str) -> datetime | None:
    """The committer date of ``commit``, when the repository of ``directory`` has it.

    ``git show -s --format=%ct``: seconds since the epoch, as the committer's
    clock said when the commit was made (for a merge on a git host, the host's).
    """
    result = _git(directory, commit, "show", "-s", "--format=%ct", commit)
    seconds = result.stdout.strip() if result is not None else ""
    if result is None or result.returncode != 0 or not seconds.isdigit():
        return None
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def _git(directory: Path, commit: str, *args: str) -> subprocess.CompletedProcess[str] | None:
    if COMMIT.fullmatch(commit) is None:
        return None
    try:
        path = directory.resolve()
        if not path.is_dir():
            path = path.parent
        return subprocess.run(
            ["git", "-c", "safe.directory=*", "-C", str(path), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, RuntimeError, subprocess.SubprocessError):  # RuntimeError: symlink loop
        return None
