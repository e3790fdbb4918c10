"""Flags and their environment variables, shared by every verb.

Each flag a daemon operator may set is declared with ``add``: its help names
the variable and the default, and its value is taken from the environment only
after parsing, for the command actually run (``resolve``), so a typo in a
variable of ``run`` never breaks ``ecsop validate``, and a value that cannot be
read is refused naming the variable instead of silently becoming a default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:9100"
"""Where ``status`` and ``retry`` find a daemon: its default --metrics-port, locally."""

REGION_VARIABLES = ("ECSOP_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class UsageError(Exception):
    """A flag or environment variable that cannot be used; ``main`` prints it, exit 2."""


def boolean(raw: str) -> bool:
    """1/0, true/false, yes/no, on/off (any case); anything else is refused.

    ``ECSOP_NO_SELF_HEAL=ture`` must not quietly mean "heal": a switch that
    changes what the daemon does to production is read exactly or not at all.
    """
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("not a boolean: use 1/0, true/false, yes/no or on/off")


@dataclass(frozen=True)
class _FromEnv:
    names: tuple[str, ...]
    kind: Callable[[str], Any]
    fallback: Any
    choices: Sequence[str] | None = None

    def read(self) -> Any:
        for name in self.names:
            raw = os.environ.get(name, "")
            if raw.strip() == "":
                continue
            try:
                value = self.kind(raw.strip())
            except ValueError as exc:
                problem = f"environment variable {name}={raw!r} is not valid: {exc}"
                raise UsageError(problem) from None
            if self.choices is not None and value not in self.choices:
                allowed = ", ".join(self.choices)
                raise UsageError(f"environment variable {name}={raw!r}: use one of {allowed}")
            return value
        return self.fallback


def add(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    *,
    env: str | tuple[str, ...],
    help: str,
    default: Any = None,
    kind: Callable[[str], Any] = str,
    metavar: str | None = None,
    choices: Sequence[str] | None = None,
    flag_only: bool = False,
    show_default: str | None = None,
) -> None:
    """``parser.add_argument(flag)`` whose value, when not given, comes from ``env``.

    ``flag_only``: a switch (``--no-self-heal``); its variable is a boolean.
    ``show_default``: how the default reads in the help, when not ``str(default)``.
    """
    names = (env,) if isinstance(env, str) else env
    shown = show_default if show_default is not None else (None if default is None else default)
    text = f"{help} (env {' / '.join(names)}" + (f"; default {shown}" if shown else "") + ")"
    if flag_only:
        action = parser.add_argument(flag, action="store_true", default=None, help=text)
        spec = _FromEnv(names, boolean, False)
    else:
        action = parser.add_argument(
            flag, metavar=metavar, type=kind, choices=choices, default=None, help=text
        )
        spec = _FromEnv(names, kind, default, choices)
    _registry(parser)[action.dest] = spec


def _registry(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> dict[str, _FromEnv]:
    """The {dest: variable} map of one command, kept as a default of its namespace."""
    # An argument group shares its parser's defaults; both reach the same map.
    owner: Any = getattr(parser, "_ecsop_parser", parser)
    existing: dict[str, _FromEnv] | None = owner.get_default("_from_env")
    if existing is None:
        existing = {}
        owner.set_defaults(_from_env=existing)
    return existing


def group(parser: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
    """A titled group of flags in ``parser``'s help, usable with ``add``."""
    section = parser.add_argument_group(title)
    section._ecsop_parser = parser  # type: ignore[attr-defined]
    return section


def resolve(args: argparse.Namespace) -> None:
    """Fill every flag left unset from its environment variable (or its default)."""
    for dest, spec in getattr(args, "_from_env", {}).items():
        if getattr(args, dest) is None:
            setattr(args, dest, spec.read())


def spec_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The flags of every command that reads specs the way the daemon does."""
    add(
        parser,
        "--allow-mutable-tags",
        env="ECSOP_ALLOW_MUTABLE_TAGS",
        flag_only=True,
        help="accept images pinned by tag only; by default every image must carry "
        "@sha256:<digest>",
    )
    add(
        parser,
        "--region",
        env=REGION_VARIABLES,
        default="",
        metavar="REGION",
        help="region of releases whose spec has no spec.region",
    )


TOKEN_VARIABLE = "ECSOP_API_TOKEN"


def api_token_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--api-token-file``: the daemon requires the token; ``retry`` sends it."""
    add(
        parser,
        "--api-token-file",
        env="ECSOP_API_TOKEN_FILE",
        metavar="FILE",
        show_default=f"the token in ${TOKEN_VARIABLE}, if set",
        help="file holding the API token POST /requeue requires (ecsop retry sends it); "
        "without a token the daemon accepts requeues from loopback only",
    )


def api_token(token_file: str | None) -> str | None:
    """The API token: the file's content (stripped) if given, else ``$ECSOP_API_TOKEN``."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise UsageError(f"cannot read the API token file {token_file}: {why}") from None
        if not token:
            raise UsageError(f"the API token file {token_file} is empty")
        return token
    return os.environ.get(TOKEN_VARIABLE, "").strip() or None
