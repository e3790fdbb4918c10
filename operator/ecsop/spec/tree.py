"""The spec directory as last read, file by file, so a change re-reads only what changed.

``loader.load`` reads a whole directory; at 10,000 releases that is a second
of walking, reading and hashing for every change of one file. ``SpecTree``
remembers what each file yielded (its releases and errors) with the file's
signature (inode, size, modification and change times in nanoseconds):

- ``read_changed(paths)``: the watcher names the paths that changed
  (``ecsop.spec.watcher``); only those files are read again. A path that is
  not a plain spec file in a directory already walked (a new or removed
  directory, a symlink, the tree moved by git-sync) cannot be handled alone:
  the answer is None, and the caller reads everything.
- ``read_all()``: the full walk (at start, on every resync, after a swap),
  which reads again only the files whose signature changed. Whatever a
  missed event hid, a changed file has a new change time, so the resync's
  walk still finds it.

The directory-wide rules (one document per name, one release per service,
``loader.conflicts``) are kept in an index by name and by service, and only
the releases sharing a name or a service with what changed are judged again,
so a change in one file that clashes with another is caught as before, at
the cost of the change. The rules across releases (``dependsOn`` and
``promotion.from`` name existing releases without a cycle; one ReleasePolicy
per name) are applied to the whole set on every reading (``loader.assemble``:
a walk of the names, without reading a file). Each reading says which release names it may have
changed (``Reading.names``). Not thread-safe: ``ecsop.controller.specset``
holds its reload lock around it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from ecsop.spec import files as spec_files
from ecsop.spec import loader
from ecsop.spec.errors import SpecError
from ecsop.spec.loader import LoadedRelease, ParseCache, Place, SpecSet, place_of
from ecsop.spec.policy_file import LoadedPolicy
from ecsop.spec.quoting import printable

Signature = tuple[int, int, int, int]
"""(inode, size, mtime_ns, ctime_ns): a file whose signature did not change was not written."""


@dataclass(frozen=True)
class _File:
    display: str
    signature: Signature | None
    """None when it could not be stat'ed: such a file is read again every time."""
    releases: tuple[LoadedRelease, ...]
    errors: tuple[SpecError, ...]
    policies: tuple[LoadedPolicy, ...] = ()


_EMPTY = _File("", None, (), ())


@dataclass(frozen=True)
class Reading:
    specs: SpecSet
    names: frozenset[str]
    """Release names whose spec, errors or conflicts may differ from the previous reading."""
    files: frozenset[str]
    """Display names of the files read again (a release last valid in one of them may be
    affected by its new errors)."""


class _Rules:
    """The directory-wide rules, kept up to date as releases come and go."""

    def __init__(self) -> None:
        self.by_name: dict[str, list[LoadedRelease]] = {}
        self.by_place: dict[Place, list[LoadedRelease]] = {}
        self.releases: dict[str, LoadedRelease] = {}
        """The valid releases: no conflict."""
        self.conflicts: dict[int, tuple[LoadedRelease, list[SpecError]]] = {}
        """id(candidate) -> (the candidate, why it is refused)."""

    def update(
        self, removed: Iterable[LoadedRelease], added: Iterable[LoadedRelease], files: set[str]
    ) -> set[str]:
        """Apply a change; judge again every release sharing a name or a service with it.

        Returns the names judged; ``files`` gets their files (whose errors may have moved)."""
        names: set[str] = set()
        places: set[Place] = set()
        for gone in removed:
            names.add(gone.name)
            places.add(place_of(gone))
            _drop(self.by_name, gone.name, gone)
            _drop(self.by_place, place_of(gone), gone)
            self.conflicts.pop(id(gone), None)
            if self.releases.get(gone.name) is gone:
                del self.releases[gone.name]
        for new in added:
            names.add(new.name)
            places.add(place_of(new))
            self.by_name.setdefault(new.name, []).append(new)
            self.by_place.setdefault(place_of(new), []).append(new)
        judged = {id(m): m for name in names for m in self.by_name.get(name, ())}
        judged.update((id(m), m) for place in places for m in self.by_place.get(place, ()))
        for member in judged.values():
            found = loader.conflicts(
                member, self.by_name[member.name], self.by_place[place_of(member)]
            )
            if found:
                self.conflicts[id(member)] = (member, found)
                if self.releases.get(member.name) is member:
                    del self.releases[member.name]
            else:
                self.conflicts.pop(id(member), None)
                self.releases[member.name] = member
        files.update(m.file for m in judged.values())
        return names | {m.name for m in judged.values()}

    def errors(self) -> list[SpecError]:
        return [error for _, found in self.conflicts.values() for error in found]


_Key = TypeVar("_Key")


def _drop(index: dict[_Key, list[LoadedRelease]], key: _Key, gone: LoadedRelease) -> None:
    """Remove ``gone`` (itself, not an equal release) from ``index[key]``."""
    group = index.get(key)
    if group is None:
        return
    group[:] = [m for m in group if m is not gone]
    if not group:
        del index[key]


class SpecTree:
    def __init__(self, path: Path, *, default_region: str, allow_mutable_tags: bool) -> None:
        self._path = path
        self._default_region = default_region
        self._allow_mutable_tags = allow_mutable_tags
        self._cache = ParseCache()
        self._account = ""
        self._root: Path | None = None
        self._files: dict[str, _File] = {}
        """Real path (``str(Path)``: a resync looks up every file, and a ``Path`` key costs
        far more to hash) -> what it held."""
        self._broken: dict[str, tuple[SpecError, ...]] = {}
        """The files with errors (of ``_files``), and their errors."""
        self._directories: dict[str, str] = {}
        """Real directory -> its display path, for every directory walked."""
        self._walk_errors: list[SpecError] = []
        """Problems of the walk itself (a broken symlink, an unreadable directory)."""
        self._rules = _Rules()
        self._refused: frozenset[str] = frozenset()
        """Releases the cross-release rules (``dependsOn``, ``promotion.from``) refused."""

    def read_all(self, account: str) -> Reading:
        """Walk the whole directory, re-reading only files whose signature changed."""
        if account != self._account:
            self._account = account  # every release carries it: read them all again
            self._forget()
        errors: list[SpecError] = []
        shown = spec_files.shown(self._path)
        root = spec_files.resolved(self._path, shown, errors)
        directories: dict[str, str] = {}
        found: dict[str, _File] = {}
        if root is not None:
            known = self._files
            for display, real in spec_files.walk(self._path, root, errors, directories):
                found[real] = self._read(real, display, known.get(real))
        self._cache.sweep()
        self._root, self._directories, self._walk_errors = root, directories, errors
        names: set[str] = set()
        files: set[str] = set()
        for path, new in found.items():
            if new is not self._files.get(path):  # an unchanged file is its old ``_File``
                names |= self._replace(path, new, files)
        # Every path found is in ``_files`` now: any other one is gone.
        if len(self._files) > len(found):
            for path in self._files.keys() - found.keys():
                names |= self._replace(path, None, files)
        return self._reading(names, files)

    def read_changed(self, paths: Iterable[Path], account: str) -> Reading | None:
        """Re-read only ``paths`` (real paths the watcher saw change); None: read everything."""
        if self._root is None or account != self._account:
            return None
        if spec_files.resolved(self._path, "", []) != self._root:
            return None  # the path now leads elsewhere (git-sync published a commit)
        names: set[str] = set()
        files: set[str] = set()
        for path in paths:
            changed = self._reread(Path(path), files)
            if changed is None:
                return None
            names |= changed
        return self._reading(names, files)

    def _reread(self, path: Path, files: set[str]) -> set[str] | None:
        """Bring one changed path up to date: the names it touched; None when only a walk can."""
        root = self._root
        assert root is not None
        key = str(path)
        if path == root or key in self._directories:
            return None  # a directory itself was created, removed or moved
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            return None
        if any(part.startswith(".") for part in parts):
            return set()  # hidden, as the walk skips it (.git, an editor's swap file)
        try:
            mode: int | None = os.lstat(path).st_mode
        except OSError:
            mode = None
        if mode is not None and stat.S_ISDIR(mode):
            return None  # a new directory: its files are the walk's business
        if not path.name.lower().endswith(spec_files.SPEC_SUFFIXES):
            return set()  # README.md: never a spec
        if mode is not None and not stat.S_ISREG(mode):
            return None  # a symlink or a special file: the walk judges it
        if mode is None:
            return self._replace(key, None, files)
        known = self._files.get(key)
        if known is not None:
            display = known.display
        else:
            parent = self._directories.get(str(path.parent))
            if parent is None:
                return None
            display = spec_files.named(parent, printable(path.name))
        return self._replace(key, self._read(key, display, known), files)

    def _replace(self, path: str, new: _File | None, files: set[str]) -> set[str]:
        """Put ``new`` (None: nothing) where ``path``'s file was; the names it touched.
        ``files`` gets the display names of the file before and after."""
        old = self._files.get(path, _EMPTY)
        if new is old:
            return set()
        files.update(file.display for file in (old, new) if file is not None and file.display)
        if new is None:
            self._files.pop(path, None)
            self._broken.pop(path, None)
        else:
            self._files[path] = new
            if new.errors:
                self._broken[path] = new.errors
            else:
                self._broken.pop(path, None)
        added = new.releases if new is not None else ()
        names = self._rules.update(old.releases, added, files)
        for file in (old, new or _EMPTY):
            names.update(error.release for error in file.errors if error.release)
        return names

    def _read(self, real: str, display: str, known: _File | None) -> _File:
        signature = _signature(real)
        if (
            known is not None
            and signature is not None
            and known.signature == signature
            and known.display == display
        ):
            return known
        found, problems, policies = loader.load_file(
            Path(real),
            display,
            default_region=self._default_region,
            allow_mutable_tags=self._allow_mutable_tags,
            cache=self._cache,
        )
        releases = tuple(replace(r, account=self._account) for r in found)
        return _File(display, signature, releases, tuple(problems), tuple(policies))

    def _reading(self, names: set[str], files: set[str]) -> Reading:
        errors = [
            *self._walk_errors,
            *(error for found in self._broken.values() for error in found),
            *self._rules.errors(),
        ]
        specs = loader.assemble(
            self._rules.releases,
            set(self._rules.by_name),
            errors,
            len(self._files),
            self._root,
            [policy for found in self._files.values() for policy in found.policies],
        )
        # References span releases: a change may refuse or free one it does not touch.
        refused = frozenset(self._rules.releases) - frozenset(specs.releases)
        names |= refused | self._refused
        self._refused = refused
        return Reading(specs, frozenset(names), frozenset(files))

    def _forget(self) -> None:
        self._files, self._broken, self._rules = {}, {}, _Rules()


def _signature(path: str) -> Signature | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)
