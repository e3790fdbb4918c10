"""How botocore turns AWS's timestamps into datetimes, for every session ecsop opens.

ECS answers timestamps as epoch numbers; botocore's default parser
(``botocore.utils.parse_timestamp``) converts each through dateutil's local
time zone, which rebuilds the zone on every call: at 10,000 releases it was
the hottest function of a resync. ecsop reads every time as UTC anyway
(``ecs_mapping.aws_time``), so ``parse`` builds UTC datetimes directly and
leaves botocore's parser the formats it does not know (RFC 822, odd strings).

It is installed through botocore's documented configuration, the session's
``response_parser_factory`` component and its ``set_parser_defaults
(timestamp_parser=...)`` (``botocore.parsers.ResponseParserFactory``), so
every client of that session parses with it; nothing private is patched.
Called by ``ecsop.aws.clients`` for each session it builds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import botocore.session
import botocore.utils


def parse(value: Any) -> datetime:
    """An aware datetime (UTC) for an epoch number or an ISO 8601 string; else botocore's."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (ValueError, OverflowError, OSError):
            pass
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    parsed: datetime = botocore.utils.parse_timestamp(value)
    return parsed


def session() -> botocore.session.Session:
    """A new botocore session whose clients parse timestamps with ``parse``."""
    core = botocore.session.get_session()
    install(core)
    return core


def install(core: botocore.session.Session) -> None:
    """Make every client ``core`` creates from now on parse timestamps with ``parse``."""
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse)
