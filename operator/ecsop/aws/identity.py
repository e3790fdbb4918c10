"""Which AWS account the daemon's own credentials are in.

A release that names no account (no ``roleArn``, no ARN) manages a service in
the daemon's own account. Knowing it lets the spec set tell "the same
cluster and service names in two accounts" (two services) from "one service
spelled twice" (a conflict) when one spec gives an ARN or a role and the other
does not. STS GetCallerIdentity needs no IAM permission ("No permissions are
required to perform this operation", API_GetCallerIdentity).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from ecsop.aws import clients

log = structlog.get_logger("ecsop.aws.identity")


def caller_account(client_for: Callable[[str, str | None], Any], region: str) -> str:
    """The account id of the daemon's credentials; "" (unknown) if STS cannot say."""
    try:
        with clients.translated_errors("GetCallerIdentity"):
            identity = client_for("sts", region or None).get_caller_identity()
    except clients.AwsError as error:
        log.warning(
            "own account unknown: a spec naming no account conflicts with any",
            error=str(error),
        )
        return ""
    return str(identity.get("Account", ""))


def caller_arn(client_for: Callable[[str, str | None], Any], region: str) -> str:
    """Who the base credentials are (an IAM user or assumed-role session ARN): an approver.

    Raises ``AwsError``: an approval must say who gave it.
    """
    with clients.translated_errors("GetCallerIdentity"):
        identity = client_for("sts", region or None).get_caller_identity()
    return str(identity.get("Arn", ""))
