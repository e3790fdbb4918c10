"""Where a notification links to: the commit (from the config or the spec repo's remote), ECS.

The repository is named in the configuration (``repository.github``) or read
from the spec directory's git remote ``origin`` (git-sync sets it), once, at
start. Credentials embedded in a remote URL (``https://user:token@host/...``)
are dropped, never kept or logged.
"""

from __future__ import annotations

import re
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ecsop.notify.config import Repository

_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


@dataclass(frozen=True)
class Links:
    repository: str | None = None
    """owner/repo of the spec commits, when known."""
    commit_template: str | None = None
    """A commit link with ``{commit}``, when known."""

    def commit(self, sha: str) -> str | None:
        if not sha or not self.commit_template:
            return None
        return self.commit_template.replace("{commit}", sha)


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
    host, name = "github.com", repository.github
    if name is None and specs is not None:
        remote = git_remote(specs)
        parsed = parse_remote(remote) if remote else None
        if parsed is not None:
            host, name = parsed
    template = repository.commit_url
    if template is None and name is not None:
        template = f"https://{host}/{name}/commit/{{commit}}"
    return Links(repository=name, commit_template=template)
