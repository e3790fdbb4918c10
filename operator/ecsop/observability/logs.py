"""structlog set-up: JSON lines for machines, a console renderer for people.

Called once by ``ecsop run`` (and ``ecsop sandbox``). Everything else just
does ``structlog.get_logger()`` and binds context (release, cluster, ...), so
tests can capture events with ``structlog.testing.capture_logs()``.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

from ecsop.spec.quoting import printable

LogFormat = Literal["auto", "json", "console"]

_REDACTED_KEYS = frozenset({"secrets", "secret", "password", "token", "aws_secret_access_key"})


def _redact(_: object, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """Never let a secret value reach a log line, even if someone binds one by mistake."""
    for key in list(event):
        if key.lower() in _REDACTED_KEYS:
            event[key] = "[redacted]"
    return event


def _encodable(
    _: object, __: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """A value UTF-8 cannot encode (a file name's undecodable byte) must not lose the line."""
    for key, value in event.items():
        if isinstance(value, str) and not _utf8(value):
            event[key] = printable(value)
        elif isinstance(value, list | tuple) and not all(
            _utf8(v) for v in value if isinstance(v, str)
        ):
            event[key] = [printable(v) if isinstance(v, str) else v for v in value]
    return event


def _utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def configure(log_format: LogFormat = "auto", level: str = "info") -> None:
    """JSON by default; console rendering when stdout is a terminal or asked for."""
    console = log_format == "console" or (log_format == "auto" and sys.stdout.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
        if console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            _encodable,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
    # Libraries (botocore, werkzeug) log through the standard library; keep them quiet.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
