"""Where a notification links to: the commit (from the config or the spec repo's remote), ECS.

The repository is named in the configuration (``repository.github``) or read
from the spec directory's git remote ``origin`` (git-sync sets it), as soon as
there is one. Credentials embedded in a remote URL (``https://user:token@host/...``)
are dropped, never kept or logged.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from ecsop.notify.config import Repository

_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


class Links:
    """The spec repository (owner/repo) and a commit link template, when known.

    Named in the configuration, or read from the spec directory's git remote
    ``origin``: looked up again at most every ``retry_seconds`` until found,
    because git-sync may not have cloned yet when the daemon starts. Only the
    notifier's workers ask, never a reconcile.
    """

    def __init__(
        self,
        repository: str | None = None,
        commit_template: str | None = None,
        *,
        specs: Path | None = None,
        retry_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._repository = repository
        self._template = commit_template
        self._specs = specs if repository is None else None
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._next_lookup = 0.0
        self._lock = threading.Lock()

    def repository(self) -> str | None:
        """owner/repo of the spec commits, when known."""
        with self._lock:
            if self._repository is None and self._specs is not None:
                now = self._clock()
                if now >= self._next_lookup:
                    self._next_lookup = now + self._retry_seconds
                    remote = git_remote(self._specs)
                    parsed = parse_remote(remote) if remote else None
                    if parsed is not None:
                        host, self._repository = parsed
                        if self._template is None:
                            self._template = f"https://{host}/{self._repository}/commit/{{commit}}"
            return self._repository

    def commit(self, sha: str) -> str | None:
        """A link to commit ``sha``, when the repository (or a template) is known."""
        self.repository()
        if not sha or not self._template:
            return None
        return self._template.replace("{commit}", sha)


def console(region: str, cluster: str, service: str) -> str:
    """The ECS console's page of the service's deployments."""
    quote = urllib.parse.quote
    return (
        f"https://{region}.console.aws.amazon.com/ecs/v2/clusters/{quote(cluster, safe='')}"
        f"/services/{quote(service, safe='')}/deployments?region={region}"
    )


def parse_remote(url: str) -> tuple[str, str] | None:
    """(host, owner/repo) of a git remote URL (https, ssh or scp-like), or None."""
    url = url.strip()
    if "://" in url:
        parts = urllib.parse.urlsplit(url)
        host, path = parts.hostname or "", parts.path
    else:
        match = _SCP_LIKE.match(url)
        if match is None:
            return None
        host, path = match["host"], match["path"]
    path = path.strip("/").removesuffix(".git")
    segments = path.split("/")
    if not host or len(segments) < 2 or not all(segments):
        return None
    return host, "/".join(segments[-2:])


def git_remote(directory: Path) -> str | None:
    """``remote.origin.url`` of the git work tree at ``directory``, if any."""
    try:
        result = subprocess.run(
            [
                "git",
                "-c",
                "safe.directory=*",
                "-C",
                str(directory.resolve()),
                "config",
                "--get",
                "remote.origin.url",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def resolve(repository: Repository, specs: Path | None) -> Links:
    """The links of this configuration: its repository, else the spec directory's remote."""
    template = repository.commit_url
    if repository.github is not None and template is None:
        template = f"https://github.com/{repository.github}/commit/{{commit}}"
    return Links(repository.github, template, specs=specs)
