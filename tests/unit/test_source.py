"""Reading a spec directory: every bad input yields a precise error, never a crash."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecsop.spec import loader as source

DIGEST = "a" * 64
IMAGE = f"repo/api@sha256:{DIGEST}"


def doc(name: str = "api", cluster: str = "prod", service: str = "api", extra: str = "") -> str:
    return f"""\
apiVersion: ecsop.dev/v1
kind: ServiceRelease
metadata:
  name: {name}
spec:
  cluster: {cluster}
  service: {service}
  containers:
    api: {IMAGE}
{extra}"""


GOOD = doc(name="good", service="good")


def load_with(tmp_path: Path, content: str | bytes, name: str = "bad.yaml") -> source.SpecSet:
    (tmp_path / "good.yaml").write_text(GOOD)
    target = tmp_path / name
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    return source.load([tmp_path], default_region="us-east-1")


@pytest.mark.parametrize(
    ("content", "line", "field", "message"),
    [
        pytest.param("a: [1, 2\nb: 3\n", 2, "", "YAML syntax error", id="yaml-syntax"),
        pytest.param("", None, "", "holds no ServiceRelease", id="empty-file"),
        pytest.param("---\n---\n", None, "", "holds no ServiceRelease", id="empty-documents"),
        pytest.param("- 1\n- 2\n", 1, "", "not a list", id="not-a-mapping"),
        pytest.param(
            doc().replace("ecsop.dev/v1", "ecsop.dev/v2"),
            1,
            "apiVersion",
            "must be 'ecsop.dev/v1' (got 'ecsop.dev/v2')",
            id="wrong-api-version",
        ),
        pytest.param(
            doc().replace("kind: ServiceRelease", "kind: Deployment"),
            2,
            "kind",
            "must be 'ServiceRelease'",
            id="wrong-kind",
        ),
        pytest.param(
            doc().replace("  cluster: prod\n", ""),
            5,
            "spec.cluster",
            "required field is missing",
            id="missing-field",
        ),
        pytest.param(
            doc(extra="  rollout:\n    timeoutSecs: 60\n"),
            11,
            "spec.rollout.timeoutSecs",
            "unknown field 'timeoutSecs'; allowed here: timeoutSeconds, bakeSeconds",
            id="unknown-field",
        ),
        pytest.param(
            doc(extra="  rollout:\n    bakeSeconds: soon\n"),
            11,
            "spec.rollout.bakeSeconds",
            "must be an integer (got str 'soon')",
            id="wrong-type",
        ),
        pytest.param(
            doc(extra="  suspend: 'yes'\n"),
            10,
            "spec.suspend",
            "must be true or false",
            id="string-for-bool",
        ),
        pytest.param(
            doc().replace(IMAGE, "repo/api:latest"),
            9,
            "spec.containers.api",
            "not pinned by digest",
            id="mutable-tag",
        ),
        pytest.param(
            doc().replace(IMAGE, IMAGE[:-3]),
            9,
            "spec.containers.api",
            "64 lowercase hex",
            id="bad-digest",
        ),
        pytest.param(
            doc(name="API_Prod"),
            4,
            "metadata.name",
            "lowercase letters, digits and '-'",
            id="bad-name",
        ),
        pytest.param(
            doc(extra="  roleArn: deployer\n"),
            10,
            "spec.roleArn",
            "IAM role ARN",
            id="bad-role-arn",
        ),
        pytest.param(
            doc(extra="  cluster: staging\n"),
            10,
            "spec.cluster",
            "duplicate key 'cluster'",
            id="duplicate-key",
        ),
        pytest.param(b"apiVersion: \xff\xfe\n", 1, "", "not UTF-8", id="not-utf8"),
        pytest.param(
            "a: 1\nwhen: 2020-13-45\n", 2, "", "month must be in 1..12", id="impossible-date"
        ),
        pytest.param("a: !!int zz\n", 1, "", "cannot read value", id="bad-explicit-int"),
        pytest.param(
            "a: !!python/object/apply:os.system ['true']\n",
            1,
            "",
            "YAML syntax error",
            id="unsafe-tag",
        ),
    ],
)
def test_bad_file_is_reported_and_others_still_load(
    tmp_path: Path, content: str | bytes, line: int | None, field: str, message: str
) -> None:
    result = load_with(tmp_path, content)
    assert list(result.releases) == ["good"]
    assert result.errors, "expected an error"
    error = result.errors[0]
    assert (error.file, error.line, error.field) == (str(tmp_path / "bad.yaml"), line, field)
    assert message in error.message
    assert str(error).startswith(f"{tmp_path / 'bad.yaml'}:{line}:" if line else str(error.file))


def alias_bomb(levels: int = 9) -> str:
    """A 'billion laughs' document: each anchor repeats the previous one nine times."""
    names = "abcdefghijklmnop"[:levels]
    lines = ['  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"  {n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in itertools.pairwise(names)]
    return "x:\n" + "\n".join(lines) + f"\napiVersion: *{names[-1]}\nkind: ServiceRelease\n"


@pytest.mark.timeout(20)
def test_alias_bomb_is_refused_at_the_alias_with_its_line(tmp_path: Path) -> None:
    bomb = alias_bomb()
    assert len(bomb) < 700  # 9**9 strings once expanded
    result = load_with(tmp_path, bomb)
    assert list(result.releases) == ["good"]
    (error,) = result.errors
    assert (error.file, error.line) == (str(tmp_path / "bad.yaml"), 7)
    assert "alias *e takes the document past 100000 YAML nodes" in error.message
    assert len(str(error)) < 400


def test_aliases_that_do_not_multiply_still_load(tmp_path: Path) -> None:
    content = doc(extra="  rollout:\n    alarms: &alarms [a-5xx, a-latency]\n").replace(
        "metadata:\n", "x-shared: &labels {team: shop}\nmetadata:\n  labels: *labels\n"
    )
    result = load_with(tmp_path, content.replace("x-shared", "kind2"))
    (error,) = result.errors  # the anchor's own key is an unknown field, nothing else
    assert error.field == "kind2" and "unknown field" in error.message


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    result = load_with(tmp_path, doc(extra="  rollout: &r {alarms: [*r]}\n"))
    (error,) = result.errors
    assert error.line == 10 and "alias *r is used inside its own anchor &r" in error.message


HUGE = "x" * 500_000


@pytest.mark.parametrize(
    ("content", "field"),
    [
        pytest.param(doc().replace("ecsop.dev/v1", HUGE), "apiVersion", id="literal"),
        pytest.param(doc(name=HUGE), "metadata.name", id="pattern"),
        pytest.param(doc(extra=f"  suspend: {HUGE}\n"), "spec.suspend", id="type"),
        pytest.param(doc().replace(IMAGE, HUGE), "spec.containers.api", id="image"),
        pytest.param(doc(extra=f"  ? {HUGE}\n  : 1\n"), "spec.xxxxx", id="unknown-field"),
        pytest.param(
            doc(extra=f"  ? {HUGE}\n  : 1\n  ? {HUGE}\n  : 2\n"), "spec.xxxxx", id="duplicate-key"
        ),
        pytest.param(f"apiVersion: *{HUGE}\n", "", id="yaml-undefined-alias"),
    ],
)
def test_a_huge_value_is_quoted_truncated(tmp_path: Path, content: str, field: str) -> None:
    result = load_with(tmp_path, content)
    assert result.errors
    for error in result.errors:
        assert error.field.startswith(field)
        assert len(str(error)) < len(str(tmp_path)) + 500, str(error)[:1000]
    assert any("xxx..." in e.message or "..." in e.field for e in result.errors)


def test_error_line_points_into_the_right_document(tmp_path: Path) -> None:
    content = (
        doc(name="first", service="first")
        + "---\n"
        + doc(name="second").replace(IMAGE, "repo/api:v2")
    )
    result = load_with(tmp_path, content)
    assert sorted(result.releases) == ["first", "good"]
    (error,) = result.errors
    assert (error.line, error.field, error.release) == (19, "spec.containers.api", "second")


def test_file_over_one_mebibyte_is_refused(tmp_path: Path) -> None:
    result = load_with(tmp_path, GOOD.replace("good", "big") + "#" * (1024 * 1024))
    (error,) = result.errors
    assert "limit is 1 MiB" in error.message
    assert list(result.releases) == ["good"]


def test_duplicate_names_are_both_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(doc(name="api", service="one"))
    (tmp_path / "b.yaml").write_text(doc(name="api", service="two"))
    result = source.load([tmp_path])
    assert result.releases == {}
    assert [(Path(e.file).name, e.field) for e in result.errors] == [
        ("a.yaml", "metadata.name"),
        ("b.yaml", "metadata.name"),
    ]
    assert f"also defined at {tmp_path / 'b.yaml'}:1" in result.errors[0].message


def test_two_releases_on_one_service_are_both_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(doc(name="one"))
    (tmp_path / "b.yaml").write_text(doc(name="two", extra="  region: us-east-1\n"))
    (tmp_path / "c.yaml").write_text(doc(name="three", extra="  region: eu-west-1\n"))
    result = source.load([tmp_path], default_region="us-east-1")
    assert list(result.releases) == ["three"]
    messages = {e.release: e.message for e in result.errors}
    assert set(messages) == {"one", "two"}
    assert "us-east-1/prod/api is also managed by two" in messages["one"]


def test_hidden_entries_are_skipped_and_subdirectories_read(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("broken: [")
    (tmp_path / ".hidden.yaml").write_text("broken: [")
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "api.yml").write_text(GOOD)
    (tmp_path / "README.md").write_text("not a spec")
    result = source.load([tmp_path])
    assert (list(result.releases), result.errors, result.files) == (["good"], [], 1)


def test_symlink_outside_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text(GOOD)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "link.yaml").symlink_to(outside / "secret.yaml")
    (specs / "dir").symlink_to(outside)
    result = source.load([specs])
    assert result.releases == {}
    assert sorted(Path(e.file).name for e in result.errors) == ["dir", "link.yaml"]
    assert all("outside the spec directory" in e.message for e in result.errors)


def test_files_that_are_not_specs_are_ignored_whatever_they_point_to(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "good.yaml").write_text(GOOD)
    (specs / "notes.txt").symlink_to("/etc/passwd")
    (specs / "LICENSE").symlink_to(outside / "LICENSE")  # dangling, and outside
    (specs / "loop").symlink_to("loop")
    os.mkfifo(specs / "pipe")
    result = source.load([specs])
    assert (list(result.releases), result.errors, result.files) == (["good"], [], 1)


def test_a_spec_file_that_cannot_be_read_is_reported(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "gone.yaml").symlink_to("deleted.yaml")
    os.mkfifo(tmp_path / "pipe.yaml")  # reading it would block the daemon forever
    result = source.load([tmp_path])
    assert list(result.releases) == ["good"]
    assert [(Path(e.file).name, e.message) for e in result.errors] == [
        ("gone.yaml", "broken symlink: no such file"),
        ("pipe.yaml", "not a regular file; refused"),
    ]


def test_a_symlink_loop_is_an_error_of_that_file_only(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "ping.yaml").symlink_to("pong.yaml")
    (tmp_path / "team" / "pong.yaml").symlink_to("ping.yaml")
    result = source.load([tmp_path])
    assert list(result.releases) == ["good"]
    assert [(Path(e.file).name, e.message) for e in result.errors] == [
        ("loop.yaml", "cannot resolve path: symlink loop"),
        ("ping.yaml", "cannot resolve path: symlink loop"),
        ("pong.yaml", "cannot resolve path: symlink loop"),
    ]


def test_a_spec_path_that_is_a_symlink_loop_is_an_error_not_an_exception(tmp_path: Path) -> None:
    (tmp_path / "specs").symlink_to("specs")
    result = source.load([tmp_path / "specs"])
    assert (result.releases, result.commit) == ({}, None)
    assert [str(e) for e in result.errors] == [
        f"{tmp_path / 'specs'}: cannot resolve path: symlink loop"
    ]


def test_a_file_name_that_is_not_utf8_is_shown_with_the_byte_escaped(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    with open(os.fsencode(tmp_path) + b"/bad\xff\n.yaml", "wb") as broken:
        broken.write(b"kind: [\n")
    result = source.load([tmp_path])
    assert list(result.releases) == ["good"]
    (error,) = result.errors
    assert error.file == f"{tmp_path}/bad\\xff\\n.yaml"
    str(error).encode("utf-8")  # printable anywhere; no surrogate, no line break


def test_configmap_layout_follows_data_links_once(tmp_path: Path) -> None:
    """A mounted ConfigMap: api.yaml -> ..data/api.yaml, ..data -> ..2026_11_23/."""
    stamp = tmp_path / "..2026_11_23_10_00_00.123"
    stamp.mkdir()
    (stamp / "api.yaml").write_text(GOOD)
    (tmp_path / "..data").symlink_to(stamp.name)
    (tmp_path / "api.yaml").symlink_to("..data/api.yaml")
    result = source.load([tmp_path])
    assert (list(result.releases), result.errors) == (["good"], [])


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
    }
    out = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)
    return out.stdout.decode().strip()


def test_git_commit_is_reported(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "api.yaml").write_text(GOOD)
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "add api")
    assert source.load([tmp_path]).commit == git(tmp_path, "rev-parse", "HEAD")
    assert source.load([tmp_path / "api.yaml"]).commit == git(tmp_path, "rev-parse", "HEAD")


def test_no_commit_outside_git(tmp_path: Path) -> None:
    (tmp_path / "api.yaml").write_text(GOOD)
    assert source.load([tmp_path]).commit is None


def test_git_sync_layout_reads_through_the_swapped_link(tmp_path: Path) -> None:
    """git-sync: root/current -> .worktrees/<sha>, replaced atomically by rename."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "api.yaml").write_text(GOOD)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    first = git(repo, "rev-parse", "HEAD")
    root = tmp_path / "git"
    (root / ".worktrees").mkdir(parents=True)
    git(repo, "worktree", "add", "-q", str(root / ".worktrees" / first), first)
    (root / "current").symlink_to(f".worktrees/{first}")
    assert source.load([root / "current"]).commit == first

    (repo / "api.yaml").write_text(GOOD.replace("name: good", "name: renamed"))
    git(repo, "commit", "-qam", "two")
    second = git(repo, "rev-parse", "HEAD")
    git(repo, "worktree", "add", "-q", str(root / ".worktrees" / second), second)
    (root / "tmp-link").symlink_to(f".worktrees/{second}")
    os.replace(root / "tmp-link", root / "current")
    result = source.load([root / "current"])
    assert (result.commit, list(result.releases)) == (second, ["renamed"])


def test_example_specs_are_valid() -> None:
    examples = Path(__file__).resolve().parents[2] / "specs"
    result = source.load([examples], default_region="us-east-1")
    assert result.errors == []
    assert len(result.releases) >= 4


yaml_text = st.text(
    alphabet=st.sampled_from(list("abc:-[]{}'\"!&*#|>%@`,? \n\t0123456789")), max_size=200
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.one_of(yaml_text, st.binary(max_size=200), st.just(GOOD.replace("good", "other")))
)
def test_loader_never_raises_and_keeps_other_files(tmp_path: Path, content: str | bytes) -> None:
    result = load_with(tmp_path, content)
    assert "good" in result.releases
    for error in result.errors:
        assert error.file.endswith("bad.yaml") or error.field in {"metadata.name", "spec.service"}
        assert error.message


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mutation=st.dictionaries(
        st.sampled_from(["cluster", "service", "containers", "rollout", "suspend", "bogus"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers())),
        max_size=3,
    )
)
def test_arbitrary_field_values_give_field_errors(
    tmp_path: Path, mutation: dict[str, object]
) -> None:
    import yaml

    document = yaml.safe_load(doc(name="mutant", service="mutant"))
    document["spec"].update(mutation)
    result = load_with(tmp_path, yaml.safe_dump(document))
    assert "good" in result.releases
    if "mutant" not in result.releases:
        assert all(e.field.startswith("spec") for e in result.errors)
        assert all(e.line for e in result.errors)


def test_parse_cache_reparses_only_changed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.yaml").write_text(doc(name="a", service="a"))
    (tmp_path / "b.yaml").write_text(doc(name="b", service="b"))
    parsed: list[str] = []
    real_parse = source._parse

    def counting(text: str, display: str, *args: object) -> object:
        parsed.append(Path(display).name)
        return real_parse(text, display, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(source, "_parse", counting)
    cache = source.ParseCache()
    first = source.load([tmp_path], cache=cache)
    assert sorted(parsed) == ["a.yaml", "b.yaml"]
    (tmp_path / "b.yaml").write_text(doc(name="b", service="b2"))
    second = source.load([tmp_path], cache=cache)
    assert sorted(parsed) == ["a.yaml", "b.yaml", "b.yaml"]
    assert first.releases["a"] == second.releases["a"]
    assert second.releases["b"].release.spec.service == "b2"
