"""Quoting spec values in messages: a bounded ``repr``, whatever the value.

Used by every message that shows what a spec author wrote (``errors``,
``model``, ``yaml_reader``). A field may hold a megabyte string or, through
YAML aliases, a structure far larger than its file; ``repr`` of either would
take the daemon's memory and time, and a message must stay a line.
"""

from __future__ import annotations

import reprlib
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
