"""Watching the spec directory: one ``on_change(paths)`` per burst of changes, git-sync aware.

The controller hands ``SpecWatcher`` the spec path and a callback (reload the
specs, queue the releases that changed). The watcher turns filesystem events
into calls of that callback and nothing else: it never reads a spec. Each call
names the paths the burst changed (real paths under the watched target), so
the reload can read just those files (``ecsop.spec.tree``); it passes None
when it cannot say (a symlink swapped, a watched root deleted, the path
re-resolved elsewhere), and the reload then reads everything.

How the path is watched, and why:

- **The resolved target, recursively.** That is where spec files change.
  Events under ``.git/`` are ignored: fetches and index updates are not spec
  changes.
- **The directory holding each symlink on the path, non-recursively.** git-sync
  publishes a commit by checking it out into a new directory
  (``/git/.worktrees/<sha>``) and then renaming a fresh symlink over the old one
  (``/git/current``). Nothing changes inside the old target, so a watch on the
  target alone would never notice. A swap is seen as an event on the link's
  name in its parent directory; on every burst the path is resolved again and,
  if the target moved, the target watch is re-armed on the new directory.
- **A deleted root is re-armed.** ``rm -rf specs && git checkout specs`` leaves
  a new directory (often with the same inode number) that the old OS watch
  does not cover; the deletion of a watched root ends that watch and the
  dispatcher arms a fresh one.
- **A slow recheck** (``recheck_seconds``) re-resolves the path even without
  events and re-arms a watch that died (the path did not exist yet, an inotify
  limit), so a missed event costs a second, not a stale daemon.

Never acting on a half-written tree: git-sync (and a Kubernetes ConfigMap
volume, whose ``..data`` link is swapped the same way inside the directory)
writes the whole new tree *before* the one atomic ``rename`` that publishes
it, so any reader resolving the path sees either the old tree or the new one.
``ecsop.source.load`` resolves the path once per load, so one load never mixes
the two. A plain directory edited in place has no such
guarantee; there, debouncing (``debounce_seconds`` of quiet, at most
``max_delay_seconds`` after the first event) makes one reload follow a burst
instead of racing it. A file still caught mid-write almost always fails to
parse or validate, which makes its release a spec error that deploys nothing
(``docs/design.md``: the last valid spec is still watched), and the write's
final event brings another pass.
Whoever needs the guarantee publishes by rename, as git-sync and ConfigMaps do.

Callers: ``ecsop.controller`` (starts it with the daemon, stops it on shutdown).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog
import watchfiles

__all__ = ["Changed", "SpecWatcher", "WatchLayout", "layout_of"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class WatchLayout:
    """What must be watched for one configured path, as the filesystem stands now."""

    target: Path | None
    """The resolved directory to watch recursively; ``None`` if the path is not a directory."""
    anchors: tuple[tuple[Path, frozenset[str]], ...] = field(default=())
    """(real directory, entry names) watched non-recursively: the links on the path that
    can be swapped, the file itself when the path is a file, or the first missing
    component when the path does not exist (yet)."""


def layout_of(path: Path) -> WatchLayout:
    """Resolve ``path`` and work out which directories to watch for it.

    Walks the path component by component *without* resolving first, so every
    symlink on the way (``/git/current`` in ``/git/current/specs``) is found,
    and follows each link's own target the same way, so a chain (a ConfigMap's
    ``api.yaml -> ..data/api.yaml``, where ``..data`` is what gets swapped) is
    anchored at every link that can change.
    """
    anchors: dict[Path, set[str]] = {}
    _anchor_links(path, anchors, depth=0)
    target: Path | None = None
    if path.is_dir():
        target = path.resolve()
    elif path.exists():  # a single spec file: editors replace it, so watch its directory
        real = path.resolve()
        anchors.setdefault(real.parent, set()).add(real.name)
    return WatchLayout(
        target=target,
        anchors=tuple(sorted((real, frozenset(names)) for real, names in anchors.items())),
    )


_MAX_LINK_DEPTH = 40
"""Like the kernel's limit on nested symlinks: a loop ends here instead of recursing forever."""


def _anchor_links(path: Path, anchors: dict[Path, set[str]], depth: int) -> None:
    probe = Path(path.anchor)
    for part in path.parts[1:]:
        parent, probe = probe, probe / part
        if probe.is_symlink():
            real_parent = _real(parent)
            anchors.setdefault(real_parent, set()).add(part)
            if depth < _MAX_LINK_DEPTH:
                try:
                    link = os.readlink(probe)
                except OSError:
                    continue
                # Relative links are relative to the link's (real) directory; ``..`` is then
                # safe to normalise lexically because that directory has no symlinks.
                _anchor_links(Path(os.path.normpath(real_parent / link)), anchors, depth + 1)
        elif not probe.exists():  # not there yet: watch for its first missing component
            anchors.setdefault(_real(parent), set()).add(part)
            return


_ArmKey = tuple[tuple[Path, ...], bool]
"""(paths, recursive): one watch thread per distinct key."""


def _real(directory: Path) -> Path:
    return Path(os.path.realpath(directory))


Changed = frozenset[Path] | None
"""The paths a burst changed, or None: anything may have (read everything)."""


class SpecWatcher:
    """Calls ``on_change(paths)`` once per debounced burst of changes under ``path``.

    ``on_change`` runs on the watcher's own thread, one call at a time; events
    that arrive while it runs produce one more call afterwards (naming them). An
    exception from it is logged and the watcher carries on. ``force_polling`` is
    for file systems without inotify events (some network and container bind
    mounts).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_change: Callable[[Changed], object],
        *,
        debounce_seconds: float = 0.1,
        max_delay_seconds: float = 1.0,
        recheck_seconds: float = 1.0,
        force_polling: bool | None = None,
    ) -> None:
        if debounce_seconds < 0 or max_delay_seconds < debounce_seconds:
            raise ValueError("need 0 <= debounce_seconds <= max_delay_seconds")
        self._path = Path(os.path.abspath(path))
        self._on_change = on_change
        self._debounce = debounce_seconds
        self._max_delay = max_delay_seconds
        self._recheck = recheck_seconds
        self._force_polling = force_polling
        # watchfiles' own grouping: short, so our debounce decides the latency.
        self._step_ms = max(10, min(50, int(debounce_seconds * 500)))
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._first_event: float | None = None
        self._last_event = 0.0
        self._changed: set[Path] | None = set()
        """Paths changed since the last call; None once one cannot be named."""
        self._layout = WatchLayout(target=None)
        self._arms: dict[_ArmKey, _Arm] = {}
        self._arms_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def target(self) -> Path | None:
        """The directory currently watched (the path resolved through its symlinks)."""
        return self._layout.target

    def start(self) -> None:
        """Arm the watches and start the dispatcher thread.

        Returns once the watches are in place (or failed to arm, logged), so
        a change made after ``start()`` returns is never missed.
        """
        if self._thread is not None:
            raise RuntimeError("SpecWatcher already started")
        self._layout = layout_of(self._path)
        self._sync_arms()
        self._thread = threading.Thread(target=self._run, name="ecsop-spec-watcher", daemon=True)
        self._thread.start()
        log.info("watching specs", path=str(self._path), target=str(self._layout.target))

    def stop(self, timeout: float = 2.0) -> None:
        """Stop watching; returns once the threads have ended (or ``timeout`` passed).

        A call of ``on_change`` already running is not interrupted; it is
        waited for, within ``timeout``.
        """
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        with self._arms_lock:
            arms = list(self._arms.values())
        for arm in arms:
            arm.stop_event.set()
        for arm in arms:
            arm.thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def running(self) -> bool:
        """True while the dispatcher thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> SpecWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- dispatcher ------------------------------------------------------------------

    def _poke(self, paths: Iterable[str] | None) -> None:
        """Called from the watch threads on every filtered batch of events (None: unnamed)."""
        with self._cond:
            now = time.monotonic()
            if self._first_event is None:
                self._first_event = now
            self._last_event = now
            if paths is None or self._changed is None:
                self._changed = None
            else:
                self._changed.update(Path(p) for p in paths)
            self._cond.notify_all()

    def _take_changed(self) -> Changed:
        with self._cond:
            changed, self._changed = self._changed, set()
        return None if changed is None else frozenset(changed)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._wait_for_burst():
                if not self._stop.is_set() and self._relayout():
                    self._take_changed()
                    self._fire("target changed (recheck)", None)
                continue
            moved = self._relayout()
            changed = self._take_changed()
            self._fire("files changed", None if moved else changed)

    def _wait_for_burst(self) -> bool:
        """Block until a burst of events has gone quiet; False on recheck timeout or stop."""
        with self._cond:
            if self._first_event is None:
                self._cond.wait(self._recheck)
            while self._first_event is not None and not self._stop.is_set():
                now = time.monotonic()
                fire_at = min(
                    self._last_event + self._debounce, self._first_event + self._max_delay
                )
                if now >= fire_at:
                    self._first_event = None
                    return True
                self._cond.wait(fire_at - now)
            return False

    def _relayout(self) -> bool:
        """Resolve the path again and re-arm what changed; True if the layout moved."""
        layout = layout_of(self._path)
        changed = layout != self._layout
        if changed:
            log.info(
                "spec path re-resolved",
                path=str(self._path),
                old=str(self._layout.target),
                new=str(layout.target),
            )
            self._layout = layout
        self._sync_arms()
        return changed

    def _fire(self, why: str, changed: Changed) -> None:
        if self._stop.is_set():
            return
        log.debug("spec change", path=str(self._path), reason=why)
        try:
            self._on_change(changed)
        except Exception:
            log.exception("on_change failed; still watching", path=str(self._path))

    # --- watch threads -----------------------------------------------------------------

    def _sync_arms(self) -> None:
        """Run exactly the watches the current layout needs; restart any that died.

        Waits until new watches are armed, so the ``on_change`` that follows a
        re-arm cannot read the new tree before edits to it would be seen.
        """
        wanted: dict[_ArmKey, Callable[[watchfiles.Change, str], bool]] = {}
        layout = self._layout
        if layout.target is not None:
            wanted[((layout.target,), True)] = _ignore_git(layout.target)
        if layout.anchors:
            directories = tuple(directory for directory, _ in layout.anchors)
            wanted[(directories, False)] = _only_names(dict(layout.anchors))
        started: list[_Arm] = []
        with self._arms_lock:
            for key, arm in list(self._arms.items()):
                if key not in wanted or arm.stop_event.lost or not arm.thread.is_alive():
                    arm.stop_event.set()
                    del self._arms[key]
            for key, accept in wanted.items():
                if key not in self._arms and not self._stop.is_set():
                    paths, recursive = key
                    self._arms[key] = arm = _Arm.start(self, paths, recursive, accept)
                    started.append(arm)
        for arm in started:
            arm.stop_event.armed.wait(1.0)

    def _watch(
        self,
        paths: tuple[Path, ...],
        recursive: bool,
        accept: Callable[[watchfiles.Change, str], bool],
        stop_event: _ArmStop,
    ) -> None:
        roots = {str(path) for path in paths}
        try:
            for changes in watchfiles.watch(
                *paths,
                watch_filter=accept,
                recursive=recursive,
                stop_event=stop_event,
                debounce=int(self._max_delay * 1000),
                step=self._step_ms,
                raise_interrupt=False,
                force_polling=self._force_polling,
                ignore_permission_denied=True,
            ):
                # A watched root deleted (``rm -rf specs && git checkout specs``) takes its OS
                # watch with it, even if a new directory appears under the same name (and
                # inode number): end this watch so the dispatcher arms a fresh one.
                lost = any(
                    change == watchfiles.Change.deleted and changed in roots
                    for change, changed in changes
                )
                stop_event.lost = stop_event.lost or lost
                # Only the recursive watch of the target names spec files; an anchor's
                # event is a swapped link, and a lost root may hide anything.
                self._poke(None if lost or not recursive else (p for _, p in changes))
                if lost:
                    return
        except Exception as exc:  # a vanished directory, an inotify limit: recheck re-arms
            if not stop_event.is_set():
                log.warning("watch failed; will re-arm", paths=[str(p) for p in paths], error=exc)
        finally:
            stop_event.armed.set()  # never leave ``_sync_arms`` waiting on a watch that failed


@dataclass
class _Arm:
    """One running ``watchfiles.watch`` and the event that ends it."""

    thread: threading.Thread
    stop_event: _ArmStop

    @classmethod
    def start(
        cls,
        watcher: SpecWatcher,
        paths: tuple[Path, ...],
        recursive: bool,
        accept: Callable[[watchfiles.Change, str], bool],
    ) -> _Arm:
        stop_event = _ArmStop()
        thread = threading.Thread(
            target=watcher._watch,
            args=(paths, recursive, accept, stop_event),
            name=f"ecsop-watch-{paths[0].name or '/'}",
            daemon=True,
        )
        thread.start()
        return cls(thread=thread, stop_event=stop_event)


class _ArmStop(threading.Event):
    """The stop event handed to ``watchfiles.watch``, which also tells when it is armed.

    ``watchfiles.watch`` sets up its OS watches first and only then starts
    polling ``stop_event.is_set()`` (every ``step`` ms), so the first poll
    means changes from now on are seen. Only watchfiles calls ``is_set``
    before the thread ends.
    """

    def __init__(self) -> None:
        super().__init__()
        self.armed = threading.Event()
        self.lost = False
        """Set by the watch thread when a watched root was deleted: re-arm, do not reuse."""

    def is_set(self) -> bool:
        self.armed.set()
        return super().is_set()


def _ignore_git(root: Path) -> Callable[[watchfiles.Change, str], bool]:
    """Accept every event under ``root`` except those inside a ``.git`` directory."""

    def accept(_: watchfiles.Change, changed: str) -> bool:
        try:
            parts = Path(changed).relative_to(root).parts
        except ValueError:
            return True
        return ".git" not in parts

    return accept


def _only_names(anchors: dict[Path, frozenset[str]]) -> Callable[[watchfiles.Change, str], bool]:
    """Accept only events on the named entries of the anchor directories."""

    def accept(_: watchfiles.Change, changed: str) -> bool:
        path = Path(changed)
        return path.name in anchors.get(path.parent, frozenset())

    return accept
