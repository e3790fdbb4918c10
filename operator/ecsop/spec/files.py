"""Which entries of a spec directory are spec files, and what to call them.

``ecsop.spec.loader`` asks ``under`` (``ecsop.spec.tree``: ``walk``) for the
(display name, real path) of every file to read; every entry that cannot be
followed (a symlink loop, a link leaving the directory, an unreadable
directory) becomes a ``SpecError`` instead of an exception. Display names are
made printable here, where they are created, so no file name can break a
terminal, a log line or a label.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

from ecsop.spec.errors import SpecError
from ecsop.spec.quoting import printable

SPEC_SUFFIXES = (".yaml", ".yml")


def resolved(path: Path, display: str, errors: list[SpecError]) -> Path | None:
    """``path`` with every symlink resolved, or None and an error (a loop, an unreadable link).

    Python raises ``RuntimeError`` for a symlink loop (3.11, 3.12) or ``OSError``
    (3.13); either is one spec error, never an exception out of ``load``.
    """
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:
        errors.append(SpecError(display, None, "", f"cannot resolve path: {_why(exc)}"))
        return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
        return "symlink loop"
    return getattr(exc, "strerror", None) or str(exc)


def under(given: Path, root: Path, errors: list[SpecError]) -> Iterator[tuple[str, Path]]:
    """Yield (display name, real path) of every spec file under ``given`` (resolved: ``root``).

    Hidden entries are skipped (``.git``, and the ``..data``/``..<timestamp>``
    directories of an atomic-writer volume), but a visible symlink is followed
    when it resolves inside the directory: that is how a ConfigMap volume
    (``api.yaml -> ..data/api.yaml``) and git-sync (``current -> .worktrees/x``)
    present their files. Only directories and spec files (``*.yaml``,
    ``*.yml``) are looked at; any other entry is ignored, whatever it is or
    points to. A spec file or directory whose symlink leaves the directory is
    refused, so a spec repo cannot make the daemon read arbitrary files.
    """
    for display, real in walk(given, root, errors, {}):
        yield display, Path(real)


def walk(
    given: Path, root: Path, errors: list[SpecError], directories: dict[str, str]
) -> Iterator[tuple[str, str]]:
    """``under``, with each real path as the string ``str(Path)`` would give.

    ``ecsop.spec.tree`` walks its 10,000 files again on every resync; on
    Python 3.11 building, hashing and printing a ``Path`` per file cost more
    than the ``stat`` calls themselves, so the walk joins strings and makes a
    ``Path`` only for a symlink (whose checks must stay ``Path``'s own).
    ``directories`` receives every directory walked (real path -> display
    path): ``ecsop.spec.tree`` re-reads one file of them alone.
    """
    try:
        exists, is_file = root.exists(), root.is_file()
    except OSError as exc:
        errors.append(SpecError(shown(given), None, "", f"cannot read: {_why(exc)}"))
        return
    if not exists:
        errors.append(SpecError(shown(given), None, "", "no such file or directory"))
        return
    if is_file:
        yield shown(given), str(root)
        return
    seen: set[str] = set()
    yield from _walk(root, str(root), str(Path(shown(given))), seen, errors, directories)


def named(display: str, name: str) -> str:
    """The display path of ``name`` in the directory shown as ``display``, as ``Path`` joins.

    ``display`` is already in ``Path``'s normal form, so only ``.`` (the
    directory given as ``.``) differs from a plain join: ``Path(".") / "a.yaml"``
    is ``a.yaml``.
    """
    return _prefix(display) + name


def _prefix(display: str) -> str:
    """What ``named`` puts before a name in ``display``; once per directory in a walk."""
    if display == ".":
        return ""
    return display if display.endswith("/") else display + "/"


def _walk(
    root: Path,
    directory: str,
    display: str,
    seen: set[str],
    errors: list[SpecError],
    walked: dict[str, str],
) -> Iterator[tuple[str, str]]:
    walked[directory] = display
    prefix = _prefix(display)
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        problem = f"cannot list directory: {_why(exc)}"
        errors.append(SpecError(printable(display), None, "", problem))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        spec_named = entry.name.lower().endswith(SPEC_SUFFIXES)
        if not spec_named and not _is_dir(entry):
            continue  # README.md, notes.txt -> /etc/passwd: not a spec, whatever it points to
        entry_name = prefix + printable(entry.name)
        if _is_symlink(entry):
            yield from _followed(root, entry, entry_name, seen, errors, walked)
            continue
        # ``directory`` is a real path, so ``entry.path`` is one too.
        real = entry.path
        if real in seen:
            continue
        if _is_dir(entry):
            seen.add(real)
            yield from _walk(root, real, entry_name, seen, errors, walked)
        elif _is_file(entry):
            seen.add(real)
            yield entry_name, real
        else:
            errors.append(SpecError(entry_name, None, "", "not a regular file; refused"))


def _followed(
    root: Path,
    entry: os.DirEntry[str],
    entry_name: str,
    seen: set[str],
    errors: list[SpecError],
    walked: dict[str, str],
) -> Iterator[tuple[str, str]]:
    """What the symlink ``entry`` leads to, judged on its resolved ``Path``."""
    target = resolved(Path(entry.path), entry_name, errors)
    if target is None:
        return
    if not target.is_relative_to(root):
        errors.append(
            SpecError(entry_name, None, "", "symlink points outside the spec directory; refused")
        )
        return
    real = str(target)
    if real in seen:
        return
    if target.is_dir():
        seen.add(real)
        yield from _walk(root, real, entry_name, seen, errors, walked)
    elif target.is_file():
        seen.add(real)
        yield entry_name, real
    elif not target.exists():
        errors.append(SpecError(entry_name, None, "", "broken symlink: no such file"))
    else:
        errors.append(SpecError(entry_name, None, "", "not a regular file; refused"))


def shown(path: Path) -> str:
    """How a path is named in errors, metrics and logs: undecodable bytes as ``\\xff``.

    A file name is bytes; ``os.fsdecode`` turns the ones that are not UTF-8 into
    lone surrogates, which every UTF-8 encoder (``/metrics``, a log line, a
    terminal) refuses. Display names are made safe here, where they are created.
    """
    return printable(str(path))


def _is_symlink(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return True  # cannot tell: resolve it, which reports what is wrong


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` is a directory or a symlink to one (false when it cannot be read)."""
    try:
        return entry.is_dir()
    except OSError:
        return False
