"""``ecsop history NAME``: a release's deployments, newest first, read from AWS.

Nothing is kept by the daemon: the history is ECS's service deployments
(ListServiceDeployments, DescribeServiceDeployments, DescribeServiceRevisions)
with ecsop's tags on the revisions it registered (commit, fingerprint) and
the failed record on the service (``ecsop.aws.history``). So it survives
restarts, replicas and a lost pod, and costs nothing until someone asks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecsop.cli.release_lookup import unknown_release
from ecsop.notify.events import short_digest

if TYPE_CHECKING:
    from ecsop.aws.history import HistoryEntry

MAX_LIMIT = 100


def add_parser(sub: Any, spec_options: Callable[[argparse.ArgumentParser], None]) -> None:
    history = sub.add_parser(
        "history",
        help="a release's deployments, newest first: outcome, commit, images, duration",
        description="Read a release's deployments from AWS (ECS's service deployments and "
        "the tags ecsop writes) and print them newest first: when, outcome (succeeded, "
        "rolled back and why, by ecsop or ECS, failed), duration, strategy, commit, "
        "fingerprint and images. Needs no running daemon.",
    )
    history.add_argument("name", help="release name (metadata.name)")
    history.add_argument(
        "--limit",
        metavar="N",
        type=int,
        default=10,
        help=f"deployments to show, 1 to {MAX_LIMIT} (default %(default)s)",
    )
    history.add_argument("--json", action="store_true", help="print JSON, for scripts")
    history.add_argument(
        "--specs",
        metavar="DIR",
        default=os.environ.get("ECSOP_SPECS") or "specs",
        help="spec directory, to find the release's service (env ECSOP_SPECS)",
    )
    spec_options(history)
    history.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    return main(
        Path(args.specs),
        args.name,
        limit=args.limit,
        as_json=args.json,
        default_region=args.region,
        allow_mutable_tags=args.allow_mutable_tags,
    )


def main(
    specs: Path,
    name: str,
    *,
    limit: int,
    as_json: bool,
    default_region: str,
    allow_mutable_tags: bool,
) -> int:
    from ecsop.aws.clients import AwsError, ClientFactory
    from ecsop.aws.ecs import GatewayPool
    from ecsop.decision.ecs_state import ServiceMissing
    from ecsop.decision.memory import ServiceMemory
    from ecsop.spec import loader

    if not 1 <= limit <= MAX_LIMIT:
        print(f"ecsop history: --limit must be 1 to {MAX_LIMIT}", file=sys.stderr)
        return 2
    loaded = loader.load(
        [specs], default_region=default_region, allow_mutable_tags=allow_mutable_tags
    )
    release = loaded.releases.get(name)
    if release is None:
        print(f"ecsop history: {unknown_release(loaded, specs, name)}", file=sys.stderr)
        return 1
    spec = release.release.spec
    gateway = GatewayPool(ClientFactory()).ecs(release.region, spec.role_arn)
    try:
        state = gateway.describe_services(spec.cluster, [spec.service])[spec.service]
        if isinstance(state, ServiceMissing):
            print(
                f"ecsop history: service {spec.cluster}/{spec.service} not found: {state.reason}",
                file=sys.stderr,
            )
            return 1
        failed = ServiceMemory.read(state.tags).failed
        entries = gateway.release_history(state.cluster, state.name, release.release, failed, limit)
    except AwsError as exc:
        print(f"ecsop history: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    if as_json:
        document = {
            "release": name,
            "region": release.region,
            "cluster": spec.cluster,
            "service": spec.service,
            "deployments": [entry.to_json() for entry in entries],
        }
        print(json.dumps(document, indent=2))
        return 0
    where = f"{spec.cluster}/{spec.service} ({release.region})"
    print(render(name, where, entries))
    return 0


def render(name: str, where: str, entries: Sequence[HistoryEntry]) -> str:
    """Two or three lines per deployment, newest first."""
    if not entries:
        return f"{name} on {where}: no deployments in ECS's history"
    lines = [f"{name} on {where}: {len(entries)} deployment(s), newest first"]
    for entry in entries:
        when = entry.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{when}  {_outcome(entry):<34} {_duration(entry.duration_seconds):>7}  "
            f"{entry.strategy}"
        )
        revision = entry.task_definition.rsplit("/", 1)[-1] or "?"
        commit = f"commit {entry.commit[:12]}" if entry.commit else "no commit"
        fingerprint = entry.fingerprint or "-"
        lines.append(f"    {revision}  fingerprint {fingerprint}  {commit}")
        images = "  ".join(f"{c}={short_digest(i)}" for c, i in sorted(entry.images.items()))
        if images:
            lines.append(f"    {images}")
        if entry.reason:
            lines.append(f"    why: {' '.join(entry.reason.split())}")
        if entry.rollback_of:
            lines.append("    (puts back what ran before the deployment below)")
    return "\n".join(lines)


def _outcome(entry: HistoryEntry) -> str:
    words = entry.outcome.value.replace("_", " ")
    if entry.rolled_back_by:
        words += f" by {'ECS' if entry.rolled_back_by == 'ecs' else 'ecsop'}"
    return words


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
