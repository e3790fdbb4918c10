"""The spec set: the releases the daemon reconciles, kept across every way a file goes bad.

The directory is re-read on every file event and every resync; this module
turns each read into what a pass needs per release name (``Entry``):

- **valid**: its spec as loaded;
- **invalid**: the file no longer validates, *or no longer parses, or was
  emptied*: the last valid spec keeps being watched (a rollout in flight is
  still judged and rolled back), with the file's problems, and nothing new is
  deployed;
- **removed**: the file (or the document) is gone: the last valid spec is kept
  until the release's rollout in flight has finished, like a finalizer
  (``Situation.IN_FLIGHT``), then the pass lets go and calls ``let_go``;
- **never valid**: invalid from the start, with nothing to watch.

A read that could not see the directory at all (missing mid-swap, unlistable)
changes nothing: a transient error must never look like every release removed.

Reading files and running git happen outside ``_lock``, which passes take
only to read an entry; ``_reload_lock`` keeps one read at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ecsop.spec import loader
from ecsop.spec.errors import SpecError
from ecsop.spec.loader import LoadedRelease, SpecSet


@dataclass(frozen=True)
class Entry:
    """One release name as the spec set stands."""

    name: str
    loaded: LoadedRelease | None
    """The current spec, or the last valid one; None if it never was valid."""
    problems: tuple[SpecError, ...] = ()
    removed: bool = False
    claimed_elsewhere: bool = False
    """Removed, and another valid release now manages the same service."""


@dataclass(frozen=True)
class Changes:
    """What one reload changed."""

    names: tuple[str, ...]
    """Releases whose entry changed: to reconcile now."""
    specs: SpecSet
    previous: SpecSet


class SpecKeeper:
    def __init__(self, path: Path, *, default_region: str, allow_mutable_tags: bool) -> None:
        self._path = path
        self._default_region = default_region
        self._allow_mutable_tags = allow_mutable_tags
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._parse_cache = loader.ParseCache()
        self._specs = SpecSet(releases={}, errors=[], files=0, commit=None)
        self._last_valid: dict[str, LoadedRelease] = {}
        self._entries: dict[str, Entry] = {}
        self.default_account = ""
        """The daemon's own account (``ecsop.aws.identity``), set before the first read."""

    def reload(self) -> Changes:
        """Read the directory once; return the names whose entry changed."""
        with self._reload_lock:
            fresh = loader.load(
                [self._path],
                default_region=self._default_region,
                allow_mutable_tags=self._allow_mutable_tags,
                cache=self._parse_cache,
                default_account=self.default_account,
            )
            with self._lock:
                previous = self._specs
                if _unreadable(fresh, self._path):
                    # Keep every entry as it was; report the problem.
                    self._specs = SpecSet(
                        previous.releases,
                        fresh.errors,
                        previous.files,
                        previous.commit,
                        previous.policies,
                    )
                    return Changes((), self._specs, previous)
                self._specs = fresh
                self._last_valid.update(fresh.releases)
                entries = _entries(fresh, self._last_valid)
                changed = tuple(
                    sorted(
                        name
                        for name in set(entries) | set(self._entries)
                        if entries.get(name) != self._entries.get(name)
                    )
                )
                self._entries = entries
            return Changes(changed, fresh, previous)

    def entry(self, name: str) -> Entry | None:
        with self._lock:
            return self._entries.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    def watched(self) -> list[LoadedRelease]:
        """Every spec a pass may reconcile (current or last valid): what a resync observes."""
        with self._lock:
            return [e.loaded for e in self._entries.values() if e.loaded is not None]

    def let_go(self, name: str) -> None:
        """A removed release's pass has let go of its service: forget it."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and entry.removed:
                del self._entries[name]
                self._last_valid.pop(name, None)

    @property
    def specs(self) -> SpecSet:
        with self._lock:
            return self._specs

    @property
    def commit(self) -> str | None:
        with self._lock:
            return self._specs.commit


def _entries(fresh: SpecSet, last_valid: dict[str, LoadedRelease]) -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    invalid = fresh.invalid_releases
    broken_files = _errors_by_file(fresh.errors)
    claimed = {loaded.target for loaded in fresh.releases.values()}
    for name, loaded in fresh.releases.items():
        entries[name] = Entry(name, loaded)
    for name, found in invalid.items():
        if name not in entries:
            entries[name] = Entry(name, last_valid.get(name), tuple(found))
    for name, loaded in last_valid.items():
        if name in entries:
            continue
        problems = broken_files.get(loaded.file, ())
        if problems:  # the file no longer parses, or was emptied: still the same release
            entries[name] = Entry(name, loaded, problems)
        else:
            entries[name] = Entry(
                name, loaded, removed=True, claimed_elsewhere=loaded.target in claimed
            )
    return entries


def _errors_by_file(errors: Sequence[SpecError]) -> dict[str, tuple[SpecError, ...]]:
    by_file: dict[str, list[SpecError]] = {}
    for error in errors:
        by_file.setdefault(error.file, []).append(error)
    return {file: tuple(found) for file, found in by_file.items()}





def _unreadable(fresh: SpecSet, path: Path) -> bool:
    """Whether the read could not see the directory itself (not one of its files)."""
    return any(error.file == str(path) for error in fresh.errors) and not fresh.releases
