"""Which entries of a spec directory are spec files, and what to call them.

``ecsop.spec.loader`` asks ``under`` for the (display name, real path)
of every file to read; every entry that cannot be followed (a symlink loop, a
link leaving the directory, an unreadable directory) becomes a ``SpecError``
instead of an exception. Display names are made printable here, where they
are created, so no file name can break a terminal, a log line or a label.
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


def under(
    given: Path,
    root: Path,
    errors: list[SpecError],
    directories: dict[Path, Path] | None = None,
) -> Iterator[tuple[str, Path]]:
    """Yield (display name, real path) of every spec file under ``given`` (resolved: ``root``).

    Hidden entries are skipped (``.git``, and the ``..data``/``..<timestamp>``
    directories of an atomic-writer volume), but a visible symlink is followed
    when it resolves inside the directory: that is how a ConfigMap volume
    (``api.yaml -> ..data/api.yaml``) and git-sync (``current -> .worktrees/x``)
    present their files. Only directories and spec files (``*.yaml``,
    ``*.yml``) are looked at; any other entry is ignored, whatever it is or
    points to. A spec file or directory whose symlink leaves the directory is
    refused, so a spec repo cannot make the daemon read arbitrary files.
    ``directories``, when given, receives every directory walked (real path ->
    display path): ``ecsop.spec.tree`` re-reads one file of them alone.
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
        yield shown(given), root
        return
    seen: set[Path] = set()
    walked: dict[Path, Path] = {} if directories is None else directories
    yield from _walk(root, root, Path(shown(given)), seen, errors, walked)


def _walk(
    root: Path,
    directory: Path,
    display: Path,
    seen: set[Path],
    errors: list[SpecError],
    walked: dict[Path, Path],
) -> Iterator[tuple[str, Path]]:
    walked[directory] = display
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        errors.append(SpecError(shown(display), None, "", f"cannot list directory: {_why(exc)}"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        spec_named = entry.name.lower().endswith(SPEC_SUFFIXES)
        if not spec_named and not _is_dir(entry):
            continue  # README.md, notes.txt -> /etc/passwd: not a spec, whatever it points to
        entry_name = display / printable(entry.name)
        link = _is_symlink(entry)
        # ``directory`` is a real path, so only a symlink needs resolving.
        real = (
            resolved(Path(entry.path), str(entry_name), errors) if link else directory / entry.name
        )
        if real is None:
            continue
        if link and not real.is_relative_to(root):
            errors.append(
                SpecError(
                    str(entry_name), None, "", "symlink points outside the spec directory; refused"
                )
            )
            continue
        if real in seen:
            continue
        is_dir = real.is_dir() if link else _is_dir(entry)
        if is_dir:
            seen.add(real)
            yield from _walk(root, real, entry_name, seen, errors, walked)
        elif real.is_file() if link else _is_file(entry):
            seen.add(real)
            yield str(entry_name), real
        elif link and not real.exists():
            errors.append(SpecError(str(entry_name), None, "", "broken symlink: no such file"))
        else:
            errors.append(SpecError(str(entry_name), None, "", "not a regular file; refused"))


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
