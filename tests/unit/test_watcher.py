"""The spec watcher: real files, real watchfiles, git-sync's symlink swap.

Every test waits on an event with a deadline rather than sleeping a fixed time,
except where it must show that *nothing* happens.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ecsop.spec.watcher import Changed, SpecWatcher, WatchLayout, layout_of

pytestmark = pytest.mark.timeout(10)

SPEC = "apiVersion: ecsop.dev/v1\nkind: ServiceRelease\n"


class Calls:
    """Counts ``on_change`` calls and lets a test wait for the n-th."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.changed: list[Changed] = []
        self._cond = threading.Condition()

    def __call__(self, changed: Changed = None) -> None:
        with self._cond:
            self.times.append(time.monotonic())
            self.changed.append(changed)
            self._cond.notify_all()

    @property
    def count(self) -> int:
        with self._cond:
            return len(self.times)

    def wait_for(self, n: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.times) >= n, timeout)


def _settled(calls: Calls, quiet: float = 0.5) -> int:
    """The count once no call came for ``quiet`` seconds (a loaded machine delivers late)."""
    while True:
        seen = calls.count
        time.sleep(quiet)
        if calls.count == seen:
            return seen


@pytest.fixture
def watch() -> Iterator[Callable[[Path], tuple[SpecWatcher, Calls]]]:
    started: list[SpecWatcher] = []

    def start(path: Path) -> tuple[SpecWatcher, Calls]:
        calls = Calls()
        # No safety-net recheck during a test: only the watches themselves may see changes.
        watcher = SpecWatcher(path, on_change=calls, recheck_seconds=60.0)
        watcher.start()
        started.append(watcher)
        return watcher, calls

    yield start
    for watcher in started:
        watcher.stop()


def git_sync_checkout(root: Path, sha: str, content: str = SPEC) -> Path:
    """Write a whole tree the way git-sync does: into a new worktree, not yet published."""
    worktree = root / ".worktrees" / sha
    (worktree / "specs").mkdir(parents=True)
    (worktree / "specs" / "api.yaml").write_text(content)
    (worktree / ".git").write_text(f"gitdir: {root}/.git/worktrees/{sha}\n")
    return worktree


def git_sync_publish(root: Path, sha: str, link: str = "current") -> None:
    """Atomically point ``root/link`` at the worktree: new symlink, renamed over the old."""
    temporary = root / f"tmp-link-{sha}"
    temporary.symlink_to(Path(".worktrees") / sha)
    os.replace(temporary, root / link)


def test_editing_a_spec_triggers_on_change_promptly(
    tmp_path: Path, watch: Callable[[Path], tuple[SpecWatcher, Calls]]
) -> None:
    spec = tmp_path / "api.yaml"
    spec.write_text(SPEC)
    _, calls = watch(tmp_path)
    changed = time.monotonic()
    spec.write_text(SPEC + "# edited\n")
    assert calls.wait_for(1)
    # About 0.2 s when idle; the bound leaves room for a loaded machine and still
    # rules out the 60 s safety-net recheck.
    assert calls.times[0] - changed < 3.0
    assert calls.changed[0] == frozenset({spec.resolve()}), "the call names what changed"


def test_a_burst_of_writes_is_debounced_into_few_calls(tmp_path: Path) -> None:
    calls = Calls()
    # A debounce far above the 5 ms between writes: a loaded machine that pauses this
    # thread for a moment does not split the burst.
    with SpecWatcher(tmp_path, on_change=calls, recheck_seconds=60.0, debounce_seconds=0.5):
        for n in range(20):
            (tmp_path / f"r{n % 5}.yaml").write_text(f"{SPEC}# {n}\n")
            time.sleep(0.005)
        assert calls.wait_for(1)
        time.sleep(1.0)  # anything still pending would have fired by now
        assert 1 <= calls.count <= 2


def test_git_sync_symlink_swap_is_followed_to_the_new_checkout(
    tmp_path: Path, watch: Callable[[Path], tuple[SpecWatcher, Calls]]
) -> None:
    old = git_sync_checkout(tmp_path, "aaa")
    git_sync_publish(tmp_path, "aaa")
    watcher, calls = watch(tmp_path / "current")
    assert watcher.target == old

    new = git_sync_checkout(tmp_path, "bbb", SPEC + "# v2\n")
    git_sync_publish(tmp_path, "bbb")
    assert calls.wait_for(1), "the swap itself is a change"
    assert watcher.target == new
    assert calls.changed[0] is None, "a swap cannot be named file by file: read everything"

    shutil.rmtree(old)  # git-sync removes the previous worktree after the swap
    settled = calls.count
    (new / "specs" / "api.yaml").write_text(SPEC + "# v3\n")
    assert calls.wait_for(settled + 1), "edits in the new checkout are watched"


def test_old_checkout_is_no_longer_watched_after_a_swap(
    tmp_path: Path, watch: Callable[[Path], tuple[SpecWatcher, Calls]]
) -> None:
    old = git_sync_checkout(tmp_path, "aaa")
    git_sync_publish(tmp_path, "aaa")
    _, calls = watch(tmp_path / "current")
    git_sync_checkout(tmp_path, "bbb")
    git_sync_publish(tmp_path, "bbb")
    assert calls.wait_for(1)
    settled = _settled(calls)
    (old / "specs" / "api.yaml").write_text("stale")
    time.sleep(0.4)
    assert calls.count == settled


def test_a_spec_path_under_the_link_follows_the_swap(
    tmp_path: Path, watch: Callable[[Path], tuple[SpecWatcher, Calls]]
) -> None:
    git_sync_checkout(tmp_path, "aaa")
    git_sync_publish(tmp_path, "aaa")
    watcher, calls = watch(tmp_path / "current" / "specs")
    new = git_sync_checkout(tmp_path, "bbb")
    git_sync_publish(tmp_path, "bbb")
    assert calls.wait_for(1)
    assert watcher.target == new / "specs"
    settled = calls.count
    (new / "specs" / "web.yaml").write_text(SPEC)
    assert calls.wait_for(settled + 1)


def test_a_path_that_appears_later_is_picked_up(
    tmp_path: Path, watch: Callable[[Path], tuple[SpecWatcher, Calls]]
) -> None:
    """git-sync's first sync: the link does not exist when the daemon starts."""
    watcher, calls = watch(tmp_path / "current")
    assert watcher.target is None
    first = git_sync_checkout(tmp_path, "aaa")
    git_sync_publish(tmp_path, "aaa")
    assert calls.wait_for(1)
    assert watcher.target == first
    settled = calls.count
    (first / "specs" / "api.yaml").write_text(SPEC + "# edited\n")
    assert calls.wait_for(settled + 1)


def test_a_directory_replaced_under_the_same_name_is_watched_anew(
    tmp_path: Path, watch: Callable[[Path], tuple[SpecWatcher, Calls]]
) -> None:
    """``rm -rf specs && git checkout specs``: same path, new directory, faster than a debounce."""
    specs = tmp_path / "specs"
    specs.mkdir()
    _, calls = watch(specs)
    shutil.rmtree(specs)
    specs.mkdir()
    (specs / "api.yaml").write_text(SPEC)
    assert calls.wait_for(1)
    time.sleep(0.2)
    settled = calls.count
    (specs / "api.yaml").write_text(SPEC + "# edited\n")
    assert calls.wait_for(settled + 1), "the new directory is watched"


def test_changes_under_dot_git_are_ignored(
    tmp_path: Path, watch: Callable[[Path], tuple[SpecWatcher, Calls]]
) -> None:
    (tmp_path / ".git" / "refs").mkdir(parents=True)
    _, calls = watch(tmp_path)
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / ".git" / "refs" / "main").write_text("0" * 40)
    time.sleep(0.4)
    assert calls.count == 0
    (tmp_path / "api.yaml").write_text(SPEC)
    assert calls.wait_for(1)


def test_a_failing_callback_does_not_stop_the_watcher(tmp_path: Path) -> None:
    calls = Calls()

    def explode(changed: Changed) -> None:
        calls()
        raise RuntimeError("reload failed")

    with SpecWatcher(tmp_path, on_change=explode) as watcher:
        (tmp_path / "a.yaml").write_text(SPEC)
        assert calls.wait_for(1)
        (tmp_path / "b.yaml").write_text(SPEC)
        assert calls.wait_for(2)
        assert watcher.running


def test_changes_during_a_callback_bring_exactly_one_more_call(tmp_path: Path) -> None:
    calls = Calls()
    release = threading.Event()

    def slow(changed: Changed) -> None:
        calls()
        release.wait(8)

    with SpecWatcher(tmp_path, on_change=slow, debounce_seconds=0.05):
        (tmp_path / "a.yaml").write_text(SPEC)
        assert calls.wait_for(1)
        for n in range(5):
            (tmp_path / f"b{n}.yaml").write_text(SPEC)
        time.sleep(0.3)
        assert calls.count == 1, "one call at a time"
        release.set()
        assert calls.wait_for(2)
        time.sleep(0.3)
        assert calls.count == 2


def test_stop_ends_the_threads_promptly_and_silences_callbacks(tmp_path: Path) -> None:
    calls = Calls()
    before = {thread.ident for thread in threading.enumerate()}
    watcher = SpecWatcher(tmp_path, on_change=calls)
    watcher.start()
    started = time.monotonic()
    watcher.stop()
    assert time.monotonic() - started < 1.5, "within stop's 2 s timeout: the threads ended"
    assert not watcher.running
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert leftover == []
    (tmp_path / "a.yaml").write_text(SPEC)
    time.sleep(0.3)
    assert calls.count == 0


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        SpecWatcher(".", on_change=lambda changed: None, debounce_seconds=2, max_delay_seconds=1)


# --- what gets watched -----------------------------------------------------------


def _plain(root: Path) -> tuple[Path, WatchLayout]:
    (root / "specs").mkdir()
    return root / "specs", WatchLayout(target=root / "specs")


def _git_sync(root: Path) -> tuple[Path, WatchLayout]:
    tree = git_sync_checkout(root, "aaa")
    git_sync_publish(root, "aaa")
    return root / "current", WatchLayout(target=tree, anchors=((root, frozenset({"current"})),))


def _under_link(root: Path) -> tuple[Path, WatchLayout]:
    tree = git_sync_checkout(root, "aaa")
    git_sync_publish(root, "aaa")
    return root / "current" / "specs", WatchLayout(
        target=tree / "specs",
        anchors=((root, frozenset({"current"})),),
    )


def _missing(root: Path) -> tuple[Path, WatchLayout]:
    return root / "current" / "specs", WatchLayout(
        target=None, anchors=((root, frozenset({"current"})),)
    )


def _single_file(root: Path) -> tuple[Path, WatchLayout]:
    (root / "api.yaml").write_text(SPEC)
    return root / "api.yaml", WatchLayout(target=None, anchors=((root, frozenset({"api.yaml"})),))


def _configmap_file(root: Path) -> tuple[Path, WatchLayout]:
    """A Kubernetes ConfigMap volume: ``api.yaml -> ..data/api.yaml``, ``..data -> ..<ts>``."""
    (root / "..2024_01").mkdir()
    (root / "..2024_01" / "api.yaml").write_text(SPEC)
    (root / "..data").symlink_to("..2024_01")
    (root / "api.yaml").symlink_to(Path("..data") / "api.yaml")
    return root / "api.yaml", WatchLayout(
        target=None,
        anchors=(
            (root, frozenset({"api.yaml", "..data"})),
            (root / "..2024_01", frozenset({"api.yaml"})),
        ),
    )


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(_plain, id="plain-directory"),
        pytest.param(_git_sync, id="git-sync-link"),
        pytest.param(_under_link, id="directory-under-a-link"),
        pytest.param(_missing, id="not-there-yet"),
        pytest.param(_single_file, id="single-file"),
        pytest.param(_configmap_file, id="configmap-link-chain"),
    ],
)
def test_layout(tmp_path: Path, build: Callable[[Path], tuple[Path, WatchLayout]]) -> None:
    root = Path(os.path.realpath(tmp_path))
    path, expected = build(root)
    assert layout_of(path) == expected
