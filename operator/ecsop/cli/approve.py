"""``ecsop approve NAME``: record the approval of a release's exact fingerprint, in AWS.

A release with ``rollout.approval: manual`` waits (``AwaitingApproval``) until
this command tags its service ``ecsop:approval`` with the fingerprint and a
hash of the rest of the spec as the approver's checkout has it, who approved (the caller identity of
the approver's own credentials, from STS GetCallerIdentity) and when (AWS's
time, the Date of the DescribeServices answer). A later spec change has
another fingerprint and needs another approval. Then it asks a running daemon
to reconcile the release at once, as ``ecsop retry`` does.

Who may approve is who may tag the service with ``ecsop:approval``
(``helm-free-deploy/iam/ecsop-approver-policy.json``); CloudTrail keeps the
TagResource call as well.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from ecsop.cli import options
from ecsop.cli.release_lookup import unknown_release

DEFAULT_URL = "http://127.0.0.1:9100"


def register(sub: Any, spec_options: Callable[[argparse.ArgumentParser], None]) -> None:
    approve = sub.add_parser(
        "approve",
        help="approve a release's current spec (rollout.approval: manual) so it deploys",
        description="Record, on the release's ECS service (tag ecsop:approval), that the "
        "fingerprint its spec now pins is approved, by whom (your AWS identity) and when; "
        "then ask a running daemon to reconcile it. A later spec change needs a new approval.",
    )
    approve.add_argument("name", help="release name (metadata.name)")
    approve.add_argument(
        "--specs",
        metavar="DIR",
        default=os.environ.get("ECSOP_SPECS") or "specs",
        help="spec directory (env ECSOP_SPECS; default specs)",
    )
    approve.add_argument(
        "--url",
        metavar="URL",
        default=os.environ.get("ECSOP_URL") or DEFAULT_URL,
        help=f"a running daemon to wake (env ECSOP_URL; default {DEFAULT_URL}); "
        "unreachable is fine, it will notice on its next resync",
    )
    options.api_token_option(approve)
    spec_options(approve)
    approve.set_defaults(
        handler=lambda args: main(
            Path(args.specs),
            args.name,
            url=args.url,
            default_region=args.region,
            allow_mutable_tags=args.allow_mutable_tags,
            token=options.api_token(args.api_token_file),
        )
    )


def main(
    specs: Path,
    name: str,
    *,
    url: str,
    default_region: str,
    allow_mutable_tags: bool,
    token: str | None = None,
) -> int:
    from ecsop.aws.clients import AwsError, ClientFactory
    from ecsop.aws.ecs import GatewayPool
    from ecsop.aws.identity import caller_arn
    from ecsop.aws.service_cache import ServiceCache
    from ecsop.decision.ecs_state import Fingerprint, ServiceMissing
    from ecsop.decision.memory import (
        MAX_TAGS,
        SERVICE_KEYS,
        TAG_APPROVAL,
        ApprovalRecord,
        user_tag_count,
    )
    from ecsop.decision.release_flow import approval
    from ecsop.spec import loader

    loaded = loader.load(
        [specs], default_region=default_region, allow_mutable_tags=allow_mutable_tags
    )
    release = loaded.releases.get(name)
    if release is None:
        print(f"ecsop approve: {unknown_release(loaded, specs, name)}", file=sys.stderr)
        return 1
    spec = release.release.spec
    if spec.rollout.approval != "manual":
        print(
            f"ecsop approve: {name} does not wait for approval (spec.rollout.approval is "
            f"{spec.rollout.approval!r}); nothing recorded",
            file=sys.stderr,
        )
        return 1
    clients = ClientFactory()
    gateways = GatewayPool(clients)
    fingerprint = Fingerprint(release.release.fingerprint())
    try:
        state = ServiceCache(gateways.ecs, max_age_seconds=0).observe(release)
        if isinstance(state, ServiceMissing):
            print(
                f"ecsop approve: service {spec.cluster}/{spec.service} not found", file=sys.stderr
            )
            return 1
        needed = user_tag_count(state.tags) + len(SERVICE_KEYS) + 1
        if TAG_APPROVAL not in state.tags and needed > MAX_TAGS:
            print(
                f"ecsop approve: the service has {user_tag_count(state.tags)} tags of ECS's "
                f"{MAX_TAGS}; an approval needs one more beside ecsop's {len(SERVICE_KEYS)}: "
                f"remove {needed - MAX_TAGS}",
                file=sys.stderr,
            )
            return 1
        who = caller_arn(clients.client, release.region)
        when = (state.observed_at or _now()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        record = ApprovalRecord(fingerprint, who, when, approval.content(release.release))
        gateways.ecs(release.region, spec.role_arn).tag_service(state.arn, record.tags())
    except AwsError as exc:
        print(f"ecsop approve: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    images = ", ".join(f"{c}={i}" for c, i in sorted(spec.containers.items()))
    print(f"{name}: approved {fingerprint} ({images}) as {who} at {when}")
    try:
        request = urllib.request.Request(f"{url.rstrip('/')}/requeue/{name}", method="POST")
        if token is not None:  # as ``ecsop retry`` sends it; a daemon with one requires it
            request.add_unredirected_header("Authorization", f"Bearer {token}")
        urllib.request.urlopen(request, timeout=3).close()
    except urllib.error.HTTPError as exc:
        print(
            f"(daemon at {url} refused to reconcile now: HTTP {exc.code}; give its API token "
            "with --api-token-file or ECSOP_API_TOKEN; it will notice on its next resync)"
        )
    except (urllib.error.URLError, OSError):
        print(f"(daemon at {url} not reachable; it will notice on its next resync)")
    return 0


def _now() -> Any:
    from datetime import datetime

    return datetime.now(UTC)
