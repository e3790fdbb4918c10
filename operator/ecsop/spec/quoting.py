"""Showing what a spec author wrote: bounded quotes of values, printable names.

``quote`` is used by every message that shows a spec value (``errors``,
``model``, ``yaml_reader``). A field may hold a megabyte string or, through
YAML aliases, a structure far larger than its file; ``repr`` of either would
take the daemon's memory and time, and a message must stay a line.

``printable`` makes a name safe to show anywhere (a terminal, a log line, a
Prometheus label): the loader passes every file name it displays through it,
and ``observability.metrics.label`` every label value.

``redacted`` is how a URL (an HTTP check's) is shown: never its credentials.
"""

from __future__ import annotations

import reprlib
import unicodedata
import urllib.parse
from typing import Any

MAX_QUOTED = 80
"""Characters of a spec value (or field name) a message quotes at most."""

_QUOTE = reprlib.Repr()  # keyword arguments only from Python 3.12
_QUOTE.maxlevel = 2
_QUOTE.maxtuple = _QUOTE.maxlist = _QUOTE.maxdict = _QUOTE.maxset = 4
_QUOTE.maxfrozenset = _QUOTE.maxdeque = _QUOTE.maxarray = 4
_QUOTE.maxstring = _QUOTE.maxother = MAX_QUOTED
_QUOTE.maxlong = 40


def quote(value: Any) -> str:
    """``repr(value)`` cut to about ``MAX_QUOTED`` characters, in bounded time."""
    return _QUOTE.repr(value)


def clip(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` unquoted, cut to ``limit`` characters with a visible ``...``."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Control and format characters, lone surrogates, line and paragraph separators."""


def printable(text: str) -> str:
    """``text`` as valid, single-line UTF-8, every unsafe character escaped visibly.

    A file name's undecodable bytes arrive as surrogate escapes (``os.fsdecode``:
    byte 0xff is U+DCFF); they become ``\\xff``. Other lone surrogates (a YAML
    ``"\\udcff"``), control and format characters become ``\\n``, ``\\x1b``,
    ``\\u202e``..., so a name can neither break UTF-8 encoders nor forge lines.
    """
    if text.isprintable():
        return text
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(char) in _ESCAPED_CATEGORIES:
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


REDACTED = "REDACTED"
_SECRET_WORDS = (
    "token",
    "key",
    "secret",
    "passw",
    "pwd",
    "sig",
    "auth",
    "credential",
    "session",
    "cookie",
)
"""A query parameter whose name contains one of these (any case) holds a secret:
``token``, ``access_token``, ``api_key``, ``apikey``, ``password``, ``passwd``,
``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token``, ``auth``..."""


def redacted(url: str) -> str:
    """``url`` as it may be shown: no userinfo, no value of a secret-looking parameter.

    ``https://bob:pw@host/x?token=abc&page=2`` -> ``https://REDACTED@host/x?token=REDACTED&page=2``.
    Every message, log line and status that shows a URL shows this instead; a
    URL that cannot be parsed is not shown at all.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = "&".join(_redacted_parameter(p) for p in parts.query.split("&")) if parts.query else ""
    fragment = REDACTED if parts.fragment and _secret_looking(parts.fragment) else parts.fragment
    return printable(urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, fragment)))


def _redacted_parameter(parameter: str) -> str:
    name, equals, _ = parameter.partition("=")
    return f"{name}={REDACTED}" if equals and _secret_looking(name) else parameter


def _secret_looking(text: str) -> bool:
    words = urllib.parse.unquote_plus(text).lower()
    return any(word in words for word in _SECRET_WORDS)
