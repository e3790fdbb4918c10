"""The spec set: the releases the daemon reconciles, kept across every way a file goes bad.

The directory is re-read on every file event (only the files the event
names, ``ecsop.spec.tree``) and every resync (a full walk); this module turns
each read into what a pass needs per release name (``Entry``):

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

from ecsop.spec.errors import SpecError
from ecsop.spec.loader import LoadedRelease, SpecSet
from ecsop.spec.tree import SpecTree


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
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._tree = SpecTree(
            path, default_region=default_region, allow_mutable_tags=allow_mutable_tags
        )
        self._specs = SpecSet(releases={}, errors=[], files=0, commit=None)
        self._last_valid: dict[str, LoadedRelease] = {}
        self._entries: dict[str, Entry] = {}
        self._removed: set[str] = set()
        """Names of the entries that are ``removed``."""
        self.default_account = ""
        """The daemon's own account (``ecsop.aws.identity``), set before the first read."""

    def reload(self, paths: frozenset[Path] | None = None) -> Changes:
        """Read the directory (only ``paths``, when they are known and that is enough);
        return the names whose entry changed."""
        with self._reload_lock:
            reading = None
            if paths is not None:
                reading = self._tree.read_changed(paths, self.default_account)
            full = reading is None
            if reading is None:
                reading = self._tree.read_all(self.default_account)
            fresh = reading.specs
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
                if full:
                    self._last_valid.update(fresh.releases)
                    entries = _entries(fresh, self._last_valid)
                    names: set[str] = set(entries) | set(self._entries)
                else:
                    entries, names = self._updated(fresh, reading.names, reading.files)
                changed = tuple(
                    sorted(name for name in names if entries.get(name) != self._entries.get(name))
                )
                self._entries = entries
                if full:
                    self._removed = {name for name, e in entries.items() if e.removed}
                else:
                    for name in names:
                        if name in entries and entries[name].removed:
                            self._removed.add(name)
                        else:
                            self._removed.discard(name)
            return Changes(changed, fresh, previous)

    def _updated(
        self, fresh: SpecSet, touched: frozenset[str], files: frozenset[str]
    ) -> tuple[dict[str, Entry], set[str]]:
        """The entries after a reading that read again only ``files`` and may have changed
        only ``touched``, the releases last valid in those files (whose problems are the
        files'), and the removed releases (whose ``claimed_elsewhere`` any change may move);
        under ``_lock``."""
        for name in touched:
            if name in fresh.releases:
                self._last_valid[name] = fresh.releases[name]
        names = set(touched) | self._removed
        if files:
            names.update(name for name, last in self._last_valid.items() if last.file in files)
        entries = dict(self._entries)
        context = _Context(fresh)
        for name in names:
            entry = _entry(name, context, self._last_valid)
            if entry is None:
                entries.pop(name, None)
            else:
                entries[name] = entry
        return entries, names

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
                self._removed.discard(name)

    @property
    def specs(self) -> SpecSet:
        with self._lock:
            return self._specs

    @property
    def commit(self) -> str | None:
        with self._lock:
            return self._specs.commit


class _Context:
    """What deciding a name's entry needs from a reading, each part computed when first asked."""

    def __init__(self, fresh: SpecSet) -> None:
        self.fresh = fresh
        self.invalid = fresh.invalid_releases
        self.broken_files = _errors_by_file(fresh.errors)
        self._claimed: set[object] | None = None

    def claimed(self, loaded: LoadedRelease) -> bool:
        """Whether a valid release of this reading manages ``loaded``'s service."""
        if self._claimed is None:
            self._claimed = {found.target for found in self.fresh.releases.values()}
        return loaded.target in self._claimed


def _entries(fresh: SpecSet, last_valid: dict[str, LoadedRelease]) -> dict[str, Entry]:
    context = _Context(fresh)
    entries: dict[str, Entry] = {}
    for name in [*fresh.releases, *context.invalid, *last_valid]:
        if name not in entries:
            entry = _entry(name, context, last_valid)
            if entry is not None:
                entries[name] = entry
    return entries


def _entry(name: str, context: _Context, last_valid: dict[str, LoadedRelease]) -> Entry | None:
    loaded = context.fresh.releases.get(name)
    if loaded is not None:
        return Entry(name, loaded)
    found = context.invalid.get(name)
    if found:
        return Entry(name, last_valid.get(name), tuple(found))
    loaded = last_valid.get(name)
    if loaded is None:
        return None
    problems = context.broken_files.get(loaded.file, ())
    if problems:  # the file no longer parses, or was emptied: still the same release
        return Entry(name, loaded, problems)
    return Entry(name, loaded, removed=True, claimed_elsewhere=context.claimed(loaded))


def _errors_by_file(errors: Sequence[SpecError]) -> dict[str, tuple[SpecError, ...]]:
    by_file: dict[str, list[SpecError]] = {}
    for error in errors:
        by_file.setdefault(error.file, []).append(error)
    return {file: tuple(found) for file, found in by_file.items()}





def _unreadable(fresh: SpecSet, path: Path) -> bool:
    """Whether the read could not see the directory itself (not one of its files)."""
    return any(error.file == str(path) for error in fresh.errors) and not fresh.releases
