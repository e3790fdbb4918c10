"""``ecsop promote FROM TO``: rewrite TO's spec file to the images FROM proved.

The runbook's "promote the same image": FROM's last-good revision, if FROM
proved it (ran it to last-good after its bake: the ``ecsop:proven:FROM`` tag,
``ecsop.aws.proofs``), gives each container's digest; TO's spec file is edited
in place, only those image values (``ecsop.spec.rewrite``: comments and layout
kept), and the diff is printed: the pull request a human reviews. TO keeps its
own repositories (a replica in its account holds the same digests) and takes
FROM's tag label. What FROM has not proven is refused: an adopted revision
(first sight) ran before ecsop judged it.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecsop.cli.release_lookup import unknown_release


def register(sub: Any, spec_options: Callable[[argparse.ArgumentParser], None]) -> None:
    promote = sub.add_parser(
        "promote",
        help="rewrite TO's spec to the images FROM proved, and print the diff",
        description="Read FROM's last-good revision from AWS; if FROM proved it (ran it to "
        "last-good after its bake), set each of TO's containers that FROM's revision also "
        "has to FROM's digest, editing TO's spec file in place (comments and layout kept), "
        "and print the diff to review and commit. Refuses what FROM has not proven.",
    )
    promote.add_argument("source", metavar="FROM", help="release whose proven images to take")
    promote.add_argument("target", metavar="TO", help="release whose spec file to rewrite")
    promote.add_argument(
        "--specs",
        metavar="DIR",
        default=os.environ.get("ECSOP_SPECS") or "specs",
        help="spec directory (env ECSOP_SPECS; default specs)",
    )
    promote.add_argument(
        "--dry-run", action="store_true", help="print the diff, do not write the file"
    )
    spec_options(promote)
    promote.set_defaults(
        handler=lambda args: main(
            Path(args.specs),
            args.source,
            args.target,
            dry_run=args.dry_run,
            default_region=args.region,
            allow_mutable_tags=args.allow_mutable_tags,
        )
    )


def main(
    specs: Path,
    source: str,
    target: str,
    *,
    dry_run: bool,
    default_region: str,
    allow_mutable_tags: bool,
) -> int:
    from ecsop.aws.clients import AwsError, ClientFactory
    from ecsop.aws.ecs import GatewayPool
    from ecsop.aws.proofs import ProofReader
    from ecsop.aws.service_cache import ServiceCache
    from ecsop.decision.ecs_state import ServiceMissing, short_name
    from ecsop.decision.memory import ServiceMemory
    from ecsop.spec import images as image_refs
    from ecsop.spec import loader
    from ecsop.spec.rewrite import RewriteError, replace_images

    loaded = loader.load(
        [specs], default_region=default_region, allow_mutable_tags=allow_mutable_tags
    )
    upstream, downstream = loaded.releases.get(source), loaded.releases.get(target)
    for name, found in ((source, upstream), (target, downstream)):
        if found is None:
            return _refuse(unknown_release(loaded, specs, name))
    assert upstream is not None and downstream is not None
    spec = upstream.release.spec
    gateway = GatewayPool(ClientFactory()).ecs(upstream.region, spec.role_arn)
    try:
        state = ServiceCache(lambda r, a: gateway, max_age_seconds=0).observe(upstream)
        if isinstance(state, ServiceMissing):
            return _refuse(f"{source}'s service {spec.cluster}/{spec.service} not found")
        memory = ServiceMemory.read(state.tags)
        last_good = memory.last_good
        if last_good is None or not memory.vouches_for_last_good(state.arn, source):
            return _refuse(f"{source} has no last-good revision ecsop recorded: nothing proven")
        revision = gateway.task_definition(last_good)
        digests = {d for d in map(image_refs.digest_of, revision.images.values()) if d}
        proven = ProofReader().proven(gateway, state, source, digests, upstream.release)
    except AwsError as exc:
        return _refuse(f"{exc.code}: {exc.message}")
    if not digests or proven != frozenset(digests):
        return _refuse(
            f"{source}'s last-good {short_name(last_good)} was not proven by {source} "
            "(adopted at first sight, or proven before ecsop kept proofs): deploy it to "
            f"{source} through ecsop first"
        )
    images: dict[str, str] = {}
    for container, current in downstream.release.spec.containers.items():
        proven_image = revision.images.get(container)
        digest = image_refs.digest_of(proven_image) if proven_image else None
        if proven_image is None or digest is None:
            print(f"{target}: container {container} is not in {source}'s revision; left as is")
            continue
        wanted = image_refs.with_digest(current, digest, image_refs.tag_of(proven_image))
        if wanted != current:
            images[container] = wanted
    if not images:
        print(f"{target} already pins the images {source} proved ({short_name(last_good)})")
        return 0
    path = _real_path(specs, downstream.file)
    before = path.read_text()
    try:
        after = replace_images(before, target, images)
    except RewriteError as exc:
        return _refuse(f"cannot edit {downstream.file}: {exc}")
    problems = _problems(after, path.name, target, default_region, allow_mutable_tags)
    if problems:
        return _refuse(f"the rewritten file would not be valid: {problems[0]}")
    sys.stdout.writelines(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"a/{downstream.file}",
            f"b/{downstream.file}",
        )
    )
    if dry_run:
        print(f"(dry run: {downstream.file} not written)")
        return 0
    _replace(path, after)
    print(
        f"{target}: {downstream.file} now pins the images {source} proved ({short_name(last_good)})"
    )
    return 0


def _replace(path: Path, text: str) -> None:
    """Write ``text`` over ``path`` atomically: a daemon watching the directory, or a
    kill mid-write, never sees half a file (the hidden temporary file is never read)."""
    temporary = path.with_name(f".{path.name}.ecsop-promote")
    temporary.write_text(text)
    os.replace(temporary, path)


def _real_path(specs: Path, display: str) -> Path:
    path = Path(display)
    return path if path.is_absolute() or path.exists() else specs / display


def _problems(
    text: str, name: str, release: str, default_region: str, allow_mutable_tags: bool
) -> list[str]:
    from ecsop.spec import loader

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / name
        path.write_text(text)
        found, errors, _ = loader.load_file(
            path, name, default_region=default_region, allow_mutable_tags=allow_mutable_tags
        )
    mine = [str(e) for e in errors if e.release in (release, None)]
    if not any(r.name == release for r in found) and not mine:
        mine = [f"{release} is no longer in the file"]
    return mine


def _refuse(message: str) -> int:
    print(f"ecsop promote: {message}", file=sys.stderr)
    return 1
