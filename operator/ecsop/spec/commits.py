"""What the spec directory's git repository holds: whether a commit object is there.

A replica whose git-sync lags has not fetched the commit another replica
deployed from; ``ecsop.controller.spec_commits`` asks this before such a
deploy (``ecsop.decision.spec_behind``). One ``git cat-file -e``: a fork, so it
is asked only for a deploy that is about to happen, never for a steady release.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
"""A full commit hash (SHA-1, or SHA-256 repositories): the only thing passed to git."""


def has_commit(directory: Path, commit: str) -> bool:
    """Whether the git repository of ``directory`` holds the commit ``commit``.

    ``git cat-file -e HASH^{commit}`` exits 0 only when the object exists and
    is a commit (https://git-scm.com/docs/git-cat-file: ``-e``); any other
    outcome (missing, not a work tree, git not runnable, a timeout) is "not
    held". ``safe.directory`` is widened as for ``loader.git_commit``.
    """
    if COMMIT.fullmatch(commit) is None:
        return False
    try:
        path = directory.resolve()
        if not path.is_dir():
            path = path.parent
        object_name = commit + "^{commit}"
        result = subprocess.run(
            ["git", "-c", "safe.directory=*", "-C", str(path), "cat-file", "-e", object_name],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, RuntimeError, subprocess.SubprocessError):  # RuntimeError: symlink loop
        return False
    return result.returncode == 0
