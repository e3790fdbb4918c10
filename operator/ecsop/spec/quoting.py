"""Showing what a spec author wrote: bounded quotes of values, printable names.

``quote`` is used by every message that shows a spec value (``errors``,
``model``, ``yaml_reader``). A field may hold a megabyte string or, through
YAML aliases, a structure far larger than its file; ``repr`` of either would
take the daemon's memory and time, and a message must stay a line.

``printable`` makes a name safe to show anywhere (a terminal, a log line, a
Prometheus label): the loader passes every file name it displays through it,
and ``observability.metrics.label`` every label value.
"""

from __future__ import annotations

import reprlib
import unicodedata
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
