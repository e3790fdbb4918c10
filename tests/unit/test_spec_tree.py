"""Incremental spec reload: only the files an event names are read, with the same outcome.

Every scenario is checked against the ground truth: a twin ``SpecKeeper``
that saw the same states of the directory and read all of it each time. The
hostile cases are the ones a person makes
by hand (a file broken mid-way, two files claiming one name or one service,
renames, a new directory, a symlink) and git-sync's swap.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from builders import image
from ecsop.controller.specset import Entry, SpecKeeper


def doc(name: str, service: str | None = None, tag: str = "v1") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "ecsop.dev/v1",
            "kind": "ServiceRelease",
            "metadata": {"name": name},
            "spec": {
                "cluster": "prod",
                "service": service or name,
                "containers": {"app": image(tag)},
            },
        }
    )


def keeper(path: Path) -> SpecKeeper:
    kept = SpecKeeper(path, default_region="us-east-1", allow_mutable_tags=False)
    kept.default_account = "111122223333"
    return kept


class Twins:
    """A keeper reading what the watcher names, and one reading everything, always."""

    def __init__(self, path: Path) -> None:
        self.incremental = keeper(path)
        self.full = keeper(path)
        self.incremental.reload()
        self.full.reload()

    def reload(self, *paths: Path) -> tuple[str, ...]:
        changed = self.incremental.reload(frozenset(paths)).names
        truth = self.full.reload().names
        assert entries(self.incremental) == entries(self.full)
        assert changed == truth
        return changed


def entries(kept: SpecKeeper) -> dict[str, Entry]:
    return {name: entry for name in kept.names() if (entry := kept.entry(name))}


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    root = tmp_path / "specs"
    root.mkdir()
    for index in range(20):
        (root / f"r{index:02d}.yaml").write_text(doc(f"r{index:02d}"))
    (root / "team").mkdir()
    (root / "team" / "t0.yaml").write_text(doc("t0"))
    return root


def walks_forbidden(kept: SpecKeeper) -> None:
    """Make a full walk of ``kept``'s tree fail the test: the changed paths must be enough."""

    def refuse(account: str) -> object:
        raise AssertionError("a full walk where the changed paths were enough")

    kept._tree.read_all = refuse  # type: ignore[method-assign,assignment]


Edit = Callable[[Path], list[Path]]


def edit_image(root: Path) -> list[Path]:
    (root / "r03.yaml").write_text(doc("r03", tag="v2"))
    return [root / "r03.yaml"]


def break_midway(root: Path) -> list[Path]:
    (root / "r04.yaml").write_text(doc("r04")[:40])
    return [root / "r04.yaml"]


def make_invalid(root: Path) -> list[Path]:
    (root / "r05.yaml").write_text(doc("r05").replace("prod", "[prod"))
    return [root / "r05.yaml"]


def delete(root: Path) -> list[Path]:
    (root / "r06.yaml").unlink()
    return [root / "r06.yaml"]


def add(root: Path) -> list[Path]:
    (root / "new.yaml").write_text(doc("new"))
    return [root / "new.yaml"]


def add_in_subdirectory(root: Path) -> list[Path]:
    (root / "team" / "t1.yaml").write_text(doc("t1"))
    return [root / "team" / "t1.yaml"]


def same_name_twice(root: Path) -> list[Path]:
    (root / "copy.yaml").write_text(doc("r07"))
    return [root / "copy.yaml"]


def same_service_twice(root: Path) -> list[Path]:
    (root / "other.yaml").write_text(doc("other", service="r08"))
    return [root / "other.yaml"]


def rename(root: Path) -> list[Path]:
    os.replace(root / "r09.yaml", root / "r09-renamed.yaml")
    return [root / "r09.yaml", root / "r09-renamed.yaml"]


def editor_save(root: Path) -> list[Path]:
    """Write a temporary file, then rename it over the spec (vim, most editors)."""
    (root / ".r10.yaml.swp").write_text(doc("r10", tag="v3"))
    os.replace(root / ".r10.yaml.swp", root / "r10.yaml")
    return [root / ".r10.yaml.swp", root / "r10.yaml"]


def readme(root: Path) -> list[Path]:
    (root / "README.md").write_text("# specs\n")
    return [root / "README.md"]


def emptied(root: Path) -> list[Path]:
    (root / "r11.yaml").write_text("")
    return [root / "r11.yaml"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(edit_image, id="image-changed"),
        pytest.param(break_midway, id="broken-mid-way"),
        pytest.param(make_invalid, id="invalid"),
        pytest.param(emptied, id="emptied"),
        pytest.param(delete, id="deleted"),
        pytest.param(add, id="added"),
        pytest.param(add_in_subdirectory, id="added-in-a-subdirectory"),
        pytest.param(same_name_twice, id="name-claimed-twice"),
        pytest.param(same_service_twice, id="service-claimed-twice"),
        pytest.param(rename, id="renamed"),
        pytest.param(editor_save, id="editor-save"),
        pytest.param(readme, id="not-a-spec"),
    ],
)
def test_reading_only_the_changed_files_agrees_with_reading_everything(
    specs: Path, change: Edit
) -> None:
    twins = Twins(specs)
    walks_forbidden(twins.incremental)
    twins.reload(*change(specs))


def test_a_conflict_resolved_in_one_file_frees_the_release_in_the_other(specs: Path) -> None:
    twins = Twins(specs)
    (specs / "copy.yaml").write_text(doc("r07"))
    twins.reload(specs / "copy.yaml")
    assert (entry := twins.incremental.entry("r07")) is not None and entry.problems
    (specs / "copy.yaml").unlink()
    assert twins.reload(specs / "copy.yaml") == ("r07",)
    assert (entry := twins.incremental.entry("r07")) is not None and not entry.problems
    assert entry.loaded is not None and entry.loaded.file.endswith("r07.yaml")


def test_a_deleted_release_is_claimed_elsewhere_when_another_file_takes_its_service(
    specs: Path,
) -> None:
    twins = Twins(specs)
    walks_forbidden(twins.incremental)
    (specs / "r12.yaml").unlink()
    twins.reload(specs / "r12.yaml")
    assert (entry := twins.incremental.entry("r12")) is not None and entry.removed
    assert not entry.claimed_elsewhere
    (specs / "heir.yaml").write_text(doc("heir", service="r12"))
    assert "r12" in twins.reload(specs / "heir.yaml")
    assert (entry := twins.incremental.entry("r12")) is not None and entry.claimed_elsewhere


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda root: [root / "team"], id="a-directory-event"),
        pytest.param(lambda root: [root / "fresh" / "x.yaml"], id="a-new-directory"),
        pytest.param(lambda root: [root.parent / "elsewhere.yaml"], id="outside-the-tree"),
    ],
)
def test_a_change_the_files_alone_cannot_explain_falls_back_to_a_full_walk(
    specs: Path, change: Edit
) -> None:
    twins = Twins(specs)
    (specs / "fresh").mkdir()
    (specs / "fresh" / "x.yaml").write_text(doc("x"))
    twins.reload(*change(specs))


def test_a_symlinked_spec_is_judged_by_the_walk(specs: Path) -> None:
    twins = Twins(specs)
    (specs / "link.yaml").symlink_to(specs / "r13.yaml")
    twins.reload(specs / "link.yaml")


def test_a_git_sync_swap_is_read_as_a_new_tree(tmp_path: Path) -> None:
    for sha, tag in (("aaa", "v1"), ("bbb", "v2")):
        tree = tmp_path / ".worktrees" / sha
        tree.mkdir(parents=True)
        (tree / "api.yaml").write_text(doc("api", tag=tag))
    link = tmp_path / "current"
    link.symlink_to(tmp_path / ".worktrees" / "aaa")
    twins = Twins(link)
    temporary = tmp_path / "tmp-link"
    temporary.symlink_to(tmp_path / ".worktrees" / "bbb")
    os.replace(temporary, link)
    # The event names the old tree's file (or nothing useful): the keeper must not trust it.
    twins.reload(tmp_path / ".worktrees" / "aaa" / "api.yaml")
    entry = twins.incremental.entry("api")
    assert entry is not None and entry.loaded is not None
    assert entry.loaded.release.spec.containers["app"] == image("v2")


def test_a_resync_finds_a_change_whose_event_was_missed(specs: Path) -> None:
    kept = keeper(specs)
    kept.reload()
    (specs / "r14.yaml").write_text(doc("r14", tag="v9"))
    assert kept.reload().names == ("r14",)


def test_random_edits_read_incrementally_always_agree_with_a_full_read(specs: Path) -> None:
    rng = random.Random(7)
    twins = Twins(specs)
    walks_forbidden(twins.incremental)
    for step in range(80):
        target = specs / f"f{rng.randrange(12):02d}.yaml"
        other = specs / f"f{rng.randrange(12):02d}.yaml"
        kind = rng.choice(["write", "conflict", "service", "break", "delete", "two", "rename"])
        changed = [target]
        if kind == "delete":
            if target.exists():
                target.unlink()
        elif kind == "break":
            target.write_text("metadata: [")
        elif kind == "conflict":
            target.write_text(doc(f"r{rng.randrange(20):02d}"))
        elif kind == "service":
            target.write_text(doc(f"s{step}", service=f"r{rng.randrange(20):02d}"))
        elif kind == "two":
            target.write_text(doc(f"m{rng.randrange(5)}") + "---\n" + doc(other.stem, tag="w"))
        elif kind == "rename":
            if target.exists() and other != target:
                os.replace(target, other)
                changed.append(other)
        else:
            target.write_text(doc(other.stem, tag=f"v{step}"))
        twins.reload(*changed)


# --- rules across releases (dependsOn, promotion.from, policies): applied to every reading ---


def depending(name: str, on: str) -> str:
    found = yaml.safe_load(doc(name))
    found["spec"]["dependsOn"] = [on]
    return yaml.safe_dump(found)


def test_removing_a_release_another_depends_on_refuses_the_other_though_its_file_is_unread(
    specs: Path,
) -> None:
    (specs / "web.yaml").write_text(depending("web", "r15"))
    twins = Twins(specs)
    walks_forbidden(twins.incremental)
    (specs / "r15.yaml").unlink()
    assert "web" in twins.reload(specs / "r15.yaml")
    assert "web" not in twins.incremental.specs.releases  # its last valid spec is kept
    entry = twins.incremental.entry("web")
    assert entry is not None
    assert any(p.field == "spec.dependsOn[0]" and "r15" in p.message for p in entry.problems)
    (specs / "r15.yaml").write_text(doc("r15"))
    assert "web" in twins.reload(specs / "r15.yaml")
    assert (entry := twins.incremental.entry("web")) is not None and not entry.problems


def test_a_cycle_made_by_one_file_is_refused_on_both_sides(specs: Path) -> None:
    (specs / "a.yaml").write_text(depending("a", "b"))
    (specs / "b.yaml").write_text(doc("b"))
    twins = Twins(specs)
    walks_forbidden(twins.incremental)
    (specs / "b.yaml").write_text(depending("b", "a"))
    assert {"a", "b"} <= set(twins.reload(specs / "b.yaml"))
    for name in ("a", "b"):
        entry = twins.incremental.entry(name)
        assert entry is not None and any("cycle" in p.message for p in entry.problems)


def test_a_policy_file_read_again_alone_gives_its_policies_and_their_clashes(
    specs: Path,
) -> None:
    policy = """\
apiVersion: ecsop.dev/v1
kind: ReleasePolicy
metadata: {name: prod-windows}
spec:
  selector: {matchLabels: {env: prod}}
  deployWindows:
    - {kind: allow, schedule: "0 9 * * MON-THU", durationMinutes: 480}
"""
    twins = Twins(specs)
    walks_forbidden(twins.incremental)
    (specs / "ecsop-policy.yaml").write_text(policy)
    twins.reload(specs / "ecsop-policy.yaml")
    assert [p.policy.name for p in twins.incremental.specs.policies] == ["prod-windows"]
    assert twins.incremental.specs.policies == twins.full.specs.policies
    (specs / "ecsop-policy.yaml").write_text(policy + "---\n" + policy)
    twins.reload(specs / "ecsop-policy.yaml")
    assert twins.incremental.specs.policies == ()
    assert twins.incremental.specs.policy_errors == twins.full.specs.policy_errors != []


@pytest.mark.parametrize(
    ("cwd", "given", "shown"),
    [
        pytest.param("specs", ".", "team/t1.yaml", id="dot"),
        pytest.param(".", "specs/", "specs/team/t1.yaml", id="trailing-slash"),
        pytest.param(".", "./specs", "specs/team/t1.yaml", id="dot-slash"),
        pytest.param("specs", "./team/..", "team/../team/t1.yaml", id="dot-dot"),
    ],
)
def test_a_file_is_named_from_the_spec_path_as_given_whether_read_alone_or_in_a_walk(
    specs: Path, monkeypatch: pytest.MonkeyPatch, cwd: str, given: str, shown: str
) -> None:
    monkeypatch.chdir(specs.parent / cwd)
    twins = Twins(Path(given))
    walks_forbidden(twins.incremental)
    (specs / "team" / "t1.yaml").write_text(doc("t1"))
    twins.reload(specs / "team" / "t1.yaml")
    entry = twins.incremental.entry("t1")
    assert entry is not None and entry.loaded is not None and entry.loaded.file == shown
