"""``ecsop retry``: try a failed release again without changing its spec.

It clears the release's failed record from its service's tags, which is all
the daemon needs to deploy that release again, makes its failed steps
runnable again (``controller.step_retry``), and wakes a running daemon so it
looks at once rather than at its next resync.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

from ecsop.aws.clients import AwsError, ClientFactory
from ecsop.aws.ecs import GatewayPool
from ecsop.aws.service_cache import ServiceCache
from ecsop.cli.release_lookup import unknown_release
from ecsop.controller import step_retry
from ecsop.decision.ecs_state import ServiceMissing
from ecsop.decision.memory import ServiceMemory
from ecsop.spec import loader as source


def main(specs: Path, name: str, *, url: str, default_region: str, allow_mutable_tags: bool) -> int:
    loaded = source.load(
        [specs], default_region=default_region, allow_mutable_tags=allow_mutable_tags
    )
    release = loaded.releases.get(name)
    if release is None:
        print(f"ecsop retry: {unknown_release(loaded, specs, name)}", file=sys.stderr)
        return 1
    spec = release.release.spec
    gateways = GatewayPool(ClientFactory())
    gateway = gateways.ecs(release.region, spec.role_arn)
    retried_steps = False
    try:
        state = ServiceCache(gateways.ecs, max_age_seconds=0).observe(release)
        if isinstance(state, ServiceMissing):
            print(f"ecsop retry: service {spec.cluster}/{spec.service} not found", file=sys.stderr)
            return 1
        cleared_steps = step_retry.clear_failed_steps(gateway, state, release.release)
        if isinstance(cleared_steps, step_retry.StillStopping):
            print(f"ecsop retry: {name}: nothing retried: {cleared_steps}", file=sys.stderr)
            return 1
        for step in cleared_steps:
            print(f"{name}: cleared failed {step}")
            retried_steps = True
        memory = ServiceMemory.read(state.tags)
        if memory.failed is None:
            if retried_steps:
                _wake(url, name)
                return 0
            print(f"{name}: no failed release recorded; nothing to retry")
            return 0
        cleared = memory.retried()
        gateway.tag_service(state.arn, cleared.tags())
        stale = cleared.stale_keys(state.tags)
        if stale:
            gateway.untag_service(state.arn, stale)
    except AwsError as exc:
        print(f"ecsop retry: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    print(
        f"{name}: cleared failed record for {memory.failed.fingerprint}; "
        "the daemon will deploy it again"
    )
    _wake(url, name)
    return 0


def _wake(url: str, name: str) -> None:
    """Ask a running daemon to reconcile ``name`` now."""
    try:
        request = urllib.request.Request(f"{url.rstrip('/')}/requeue/{name}", method="POST")
        urllib.request.urlopen(request, timeout=3).close()
    except (urllib.error.URLError, OSError):
        print(f"(daemon at {url} not reachable; it will notice on its next resync)")
