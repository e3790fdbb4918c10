"""What ``ecsop run``'s ``--notifications FILE`` and ``--status-history N`` set.

The flags are declared with the others in ``ecsop.cli.run``. The file is read
and validated before the daemon starts: a broken file stops ``ecsop run`` with exit code 2 and
``file:line: field: message`` per problem, never a daemon that silently tells
no one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_STATUS_HISTORY = 3


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
