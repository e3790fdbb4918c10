"""The flags of ``ecsop plan`` and ``ecsop retry``, wired to ``ecsop.cli.plan`` and ``.retry``.

The commands themselves (observe and decide without acting; clear a failed
record) live in ``plan`` and ``retry``; this module only declares them and hands over.
"""

from __future__ import annotations

import argparse
import urllib.request
from pathlib import Path
from typing import Any

from ecsop.cli import options


def add_plan(sub: Any) -> None:
    plan = sub.add_parser(
        "plan",
        help="print what the daemon would do now, changing nothing; exit 2 if it would act",
        description="Observe every release's service and print the decision the daemon would "
        "take now (in sync, deploy from X to Y, degraded because ...), without changing "
        "anything. Exit 0 when nothing would change, 2 when something would, 1 on errors.",
    )
    options.add(
        plan, "--specs", env="ECSOP_SPECS", default="specs", metavar="DIR", help="spec directory"
    )
    options.add(
        plan,
        "--no-self-heal",
        env="ECSOP_NO_SELF_HEAL",
        flag_only=True,
        help="plan as a daemon started with --no-self-heal would",
    )
    options.spec_options(plan)
    plan.set_defaults(handler=handle_plan)


def add_retry(sub: Any) -> None:
    retry = sub.add_parser(
        "retry",
        help="clear a release's failed record so the daemon deploys it again",
        description="A release that failed and was rolled back is not deployed again until "
        "its spec changes. `retry` removes that record (the ecsop:failed-* tags on the "
        "service) and asks a running daemon to reconcile the release at once.",
    )
    retry.add_argument("name", help="release name (metadata.name)")
    options.add(
        retry, "--specs", env="ECSOP_SPECS", default="specs", metavar="DIR", help="spec directory"
    )
    options.add(
        retry,
        "--url",
        env="ECSOP_URL",
        default=options.DEFAULT_URL,
        metavar="URL",
        help="a running daemon to wake; unreachable is fine, it will notice on its next resync",
    )
    options.api_token_option(retry)
    options.spec_options(retry)
    retry.set_defaults(handler=handle_retry)


def handle_plan(args: argparse.Namespace) -> int:
    from ecsop.cli import plan

    return plan.main(
        Path(args.specs),
        default_region=args.region,
        allow_mutable_tags=args.allow_mutable_tags,
        self_heal=not args.no_self_heal,
    )


def handle_retry(args: argparse.Namespace) -> int:
    from ecsop.cli import retry

    token = options.api_token(args.api_token_file)
    if token is not None:
        _send_token(args.url, token)
    return retry.main(
        Path(args.specs),
        args.name,
        url=args.url,
        default_region=args.region,
        allow_mutable_tags=args.allow_mutable_tags,
    )


class _BearerToken(urllib.request.BaseHandler):
    """Adds ``Authorization: Bearer`` to requests for the daemon's URL, and to no other."""

    def __init__(self, url: str, token: str) -> None:
        self._prefix = url.rstrip("/") + "/"
        self._token = token

    def http_request(self, request: urllib.request.Request) -> urllib.request.Request:
        if request.full_url.startswith(self._prefix):
            request.add_unredirected_header("Authorization", f"Bearer {self._token}")
        return request

    https_request = http_request


def _send_token(url: str, token: str) -> None:
    """Make ``retry.main``'s request to the daemon carry the API token.

    ``retry.main`` wakes the daemon with ``urllib.request.urlopen``; installing
    an opener is how the token reaches that request without changing it.
    """
    urllib.request.install_opener(urllib.request.build_opener(_BearerToken(url, token)))
