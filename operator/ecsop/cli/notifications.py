"""``ecsop run``'s flags for telling people: ``--notifications FILE`` and ``--status-history N``.

Kept out of ``app`` so the run command's declaration stays one place to read
and this concept one place to change. The file is read and validated before
the daemon starts: a broken file stops ``ecsop run`` with exit code 2 and
``file:line: field: message`` per problem, never a daemon that silently tells
no one.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_STATUS_HISTORY = 3


def add_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--notifications",
        metavar="FILE",
        default=os.environ.get("ECSOP_NOTIFICATIONS") or None,
        help="notification providers and routes (Slack, GitHub commit statuses, webhooks); "
        "secrets come from the environment or files it names, never the file itself "
        "(env ECSOP_NOTIFICATIONS; default: no notifications)",
    )
    run.add_argument(
        "--status-history",
        metavar="N",
        type=int,
        default=_int_env("ECSOP_STATUS_HISTORY", DEFAULT_STATUS_HISTORY),
        help="recent deployments /status shows per release, read from AWS when /status is "
        "asked and cached until it changes; 0 turns it off (env ECSOP_STATUS_HISTORY; "
        "default %(default)s)",
    )


def settings(args: argparse.Namespace, specs: Path) -> dict[str, Any]:
    """The ``DaemonSettings`` fields these flags set; exits 2 on a broken file."""
    from ecsop.controller.history import HistorySettings
    from ecsop.notify import config

    if not 0 <= args.status_history <= 10:
        raise SystemExit("ecsop run: --status-history must be 0 to 10")
    fields: dict[str, Any] = {"history": HistorySettings(entries=args.status_history)}
    if args.notifications:
        try:
            fields["notifications"] = config.load(Path(args.notifications), specs=specs)
        except config.ConfigInvalid as invalid:
            for error in invalid.errors:
                print(error, file=sys.stderr)
            raise SystemExit(2) from None
    return fields


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"ecsop: environment variable {name}={raw!r} is not valid") from None
