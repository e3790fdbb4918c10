"""``ecsop plan`` and ``ecsop retry``: one-shot commands that share the daemon's view.

``plan`` observes each release exactly as a reconcile pass would and prints
the decision, without executing it: the dry run CI can gate on. ``retry``
removes a release's failed record from its service, which is all the daemon
needs to try that release again.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from ecsop.aws.clients import AwsError, ClientFactory
from ecsop.aws.ecs import GatewayPool
from ecsop.aws.service_cache import ServiceObserver, observation_of
from ecsop.decision.actions import Wait
from ecsop.decision.decide import decide
from ecsop.decision.ecs_state import (
    TAG_DEPLOYING,
    TAG_FAILED_FINGERPRINT,
    TAG_FAILED_REASON,
    ServiceMissing,
)
from ecsop.decision.observation import Options
from ecsop.spec import loader as source

PLAN_OBSERVATION_SECONDS = 300.0
"""How long plan's batched observations stay usable: one run, however many releases."""


def main(specs: Path, *, default_region: str, allow_mutable_tags: bool, self_heal: bool) -> int:
    loaded = source.load(
        [specs], default_region=default_region, allow_mutable_tags=allow_mutable_tags
    )
    for error in loaded.errors:
        print(f"invalid: {error}")
    gateways = GatewayPool(ClientFactory())
    observer = ServiceObserver(gateways.ecs, max_age_seconds=PLAN_OBSERVATION_SECONDS)
    observer.refresh(loaded.releases.values())  # batched; a failed batch is retried per release
    options = Options(self_heal=self_heal)
    would_change = False
    failed = bool(loaded.errors)
    for name, release in sorted(loaded.releases.items()):
        spec = release.release.spec
        try:
            state = observer.observe(release)
            if isinstance(state, ServiceMissing):
                print(f"{name}: service {spec.cluster}/{spec.service} not found ({state.reason})")
                failed = True
                continue
            gateway = gateways.ecs(release.region, spec.role_arn)
            action = decide(
                release.release,
                observation_of(gateway, state),
                state.observed_at or datetime.now(UTC),
                options,
            )
        except AwsError as exc:
            print(f"{name}: cannot observe: {exc.code}: {exc.message}")
            failed = True
            continue
        verb = "no change" if isinstance(action, Wait) else f"would {type(action).__name__}"
        would_change |= not isinstance(action, Wait)
        print(f"{name}: {action.phase.value}: {verb}: {action.message}")
    if failed:
        return 1
    return 2 if would_change else 0


def retry(
    specs: Path, name: str, *, url: str, default_region: str, allow_mutable_tags: bool
) -> int:
    loaded = source.load(
        [specs], default_region=default_region, allow_mutable_tags=allow_mutable_tags
    )
    release = loaded.releases.get(name)
    if release is None:
        known = ", ".join(sorted(loaded.releases)) or "none"
        print(
            f"ecsop retry: no valid release named {name!r} in {specs} (releases: {known})",
            file=sys.stderr,
        )
        return 1
    spec = release.release.spec
    gateways = GatewayPool(ClientFactory())
    gateway = gateways.ecs(release.region, spec.role_arn)
    try:
        state = ServiceObserver(gateways.ecs, max_age_seconds=0).observe(release)
        if isinstance(state, ServiceMissing):
            print(f"ecsop retry: service {spec.cluster}/{spec.service} not found", file=sys.stderr)
            return 1
        failed = state.tags.get(TAG_FAILED_FINGERPRINT)
        if not failed:
            print(f"{name}: no failed release recorded; nothing to retry")
            return 0
        gateway.untag_service(state.arn, [TAG_FAILED_FINGERPRINT, TAG_FAILED_REASON, TAG_DEPLOYING])
    except AwsError as exc:
        print(f"ecsop retry: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    print(f"{name}: cleared failed record for {failed}; the daemon will deploy it again")
    try:
        request = urllib.request.Request(f"{url.rstrip('/')}/requeue/{name}", method="POST")
        urllib.request.urlopen(request, timeout=3).close()
    except (urllib.error.URLError, OSError):
        print(f"(daemon at {url} not reachable; it will notice on its next resync)")
    return 0
