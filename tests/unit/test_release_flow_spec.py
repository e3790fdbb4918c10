"""The release flow in the spec directory: validation with file:line, the policy file, rewriting.

``ecsop validate`` reports every problem as ``file:line: field: message``;
``ecsop promote`` edits image values in place and nothing else.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ecsop.controller.specset import SpecKeeper
from ecsop.spec import loader
from ecsop.spec.release_flow import windows_for
from ecsop.spec.rewrite import RewriteError, replace_images

DIGEST = "repo/app@sha256:" + "0" * 64
NEWER = "repo/app@sha256:" + "1" * 64


def release(name: str, *extra: str, labels: str = "{}") -> str:
    lines = [
        "apiVersion: ecsop.dev/v1",
        "kind: ServiceRelease",
        f"metadata: {{name: {name}, labels: {labels}}}",
        "spec:",
        "  cluster: prod",
        f"  service: {name}",
        f"  containers: {{app: '{DIGEST}'}}",
        *extra,
    ]
    return "\n".join(lines) + "\n"


POLICY = textwrap.dedent(
    """\
    apiVersion: ecsop.dev/v1
    kind: ReleasePolicy
    metadata: {name: prod-windows}
    spec:
      selector: {matchLabels: {env: prod}}
      deployWindows:
        - {kind: allow, schedule: "0 9 * * MON-THU", durationMinutes: 480, timeZone: Europe/Berlin}
    """
)


def errors_of(tmp_path: Path, files: dict[str, str]) -> list[str]:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return [str(e).replace(f"{tmp_path}/", "") for e in loader.load([tmp_path]).errors]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {
                "a.yaml": release("a", "  dependsOn:", "    - b", "    - nosuch"),
                "b.yaml": release("b"),
            },
            [
                "a.yaml:10: spec.dependsOn[1]: no release named 'nosuch' in the spec directory "
                "(releases: a, b)"
            ],
            id="unknown-dependency",
        ),
        pytest.param(
            {
                "a.yaml": release("a", "  dependsOn: [b]"),
                "b.yaml": release("b", "  dependsOn: [c]"),
                "c.yaml": release("c", "  dependsOn: [a]"),
            },
            [
                "a.yaml:8: spec.dependsOn[0]: dependsOn cycle: a -> b -> c -> a",
                "b.yaml:8: spec.dependsOn[0]: dependsOn cycle: a -> b -> c -> a",
                "c.yaml:8: spec.dependsOn[0]: dependsOn cycle: a -> b -> c -> a",
            ],
            id="cycle",
        ),
        pytest.param(
            {
                "a.yaml": release("a", "  promotion: {from: [b]}"),
                "b.yaml": release("b", "  promotion: {from: [a]}"),
            },
            [
                "a.yaml:8: spec.promotion.from[0]: promotion cycle: a -> b -> a",
                "b.yaml:8: spec.promotion.from[0]: promotion cycle: a -> b -> a",
            ],
            id="promotion-cycle",
        ),
        pytest.param(
            {
                # a waits for b Synced, b waits for a to prove its images: once both
                # specs move, each holds the other forever (WaitingForDependency,
                # PromotionBlocked), though neither kind of edge alone has a cycle.
                "a.yaml": release("a", "  dependsOn: [c]"),
                "b.yaml": release("b", "  promotion: {from: [a]}"),
                "c.yaml": release("c", "  dependsOn: [b]"),
            },
            [
                "a.yaml:8: spec.dependsOn[0]: dependsOn and promotion cycle: a -> c -> b -> a",
                "b.yaml:8: spec.promotion.from[0]: dependsOn and promotion cycle: a -> c -> b -> a",
                "c.yaml:8: spec.dependsOn[0]: dependsOn and promotion cycle: a -> c -> b -> a",
            ],
            id="cycle-through-dependsOn-and-promotion",
        ),
        pytest.param(
            {"a.yaml": release("a", "  promotion:", "    from: [a]")},
            ["a.yaml:9: spec.promotion.from[0]: 'a' is this release itself"],
            id="promoted-from-itself",
        ),
        pytest.param(
            {"a.yaml": release("a", "  dependsOn: [b, a]"), "b.yaml": release("b")},
            ["a.yaml:8: spec.dependsOn[1]: 'a' is this release itself"],
            id="depends-on-itself",
        ),
        pytest.param(
            {"a.yaml": release("a", "  promotion: {from: [staging]}")},
            [
                "a.yaml:8: spec.promotion.from[0]: no release named 'staging' in the spec "
                "directory (releases: a)"
            ],
            id="unknown-upstream",
        ),
        pytest.param(
            {
                "a.yaml": release("a", "  dependsOn: [b]"),
                "b.yaml": release("b", "  suspend: 3"),
            },
            ["b.yaml:8: spec.suspend: must be true or false (got int 3)"],
            id="an-invalid-release-is-still-a-known-name",
        ),
        pytest.param(
            {
                "a.yaml": release(
                    "a",
                    "  deployWindows:",
                    "    - {kind: deny, schedule: '0 9 * *', durationMinutes: 60}",
                    "    - {kind: allow, schedule: '0 9 * * *', durationMinutes: 0,"
                    " timeZone: Mars/Base}",
                )
            },
            [
                "a.yaml:9: spec.deployWindows[0].schedule: '0 9 * *' is not a five-field cron "
                "expression (minute hour day-of-month month day-of-week) or an @daily-style macro",
                "a.yaml:10: spec.deployWindows[1].durationMinutes: must be greater than "
                "or equal to 1 (got int 0)",
                "a.yaml:10: spec.deployWindows[1].timeZone: 'Mars/Base' is not an IANA time zone "
                "(e.g. UTC, Europe/Berlin)",
            ],
            id="bad-windows",
        ),
        pytest.param(
            {
                "a.yaml": release(
                    "a",
                    "  deployWindows:",
                    "    - {kind: allow, schedule: '0 9 31 4,6 *', durationMinutes: 60}",
                    "    - {kind: deny, schedule: '0 0 29 2 *', durationMinutes: 60,"
                    " timeZone: localtime}",
                )
            },
            [
                # Valid cron fields naming no date: croniter finds no run, and every pass
                # of a pending deploy raised (retried forever) instead of saying why.
                "a.yaml:9: spec.deployWindows[0].schedule: '0 9 31 4,6 *' never fires: no "
                "date matches its day-of-month and month",
                # The daemon host's zone, not a place: the window would move with the host.
                "a.yaml:10: spec.deployWindows[1].timeZone: 'localtime' is not an IANA time "
                "zone (e.g. UTC, Europe/Berlin)",
            ],
            id="windows-that-never-fire-or-follow-the-host",
        ),
        pytest.param(
            {"a.yaml": release("a", "  rollout: {approval: always}")},
            ["a.yaml:8: spec.rollout.approval: must be 'none' or 'manual' (got 'always')"],
            id="bad-approval",
        ),
        pytest.param(
            {"a.yaml": release("a") + "---\n" + POLICY},
            [
                "a.yaml:9: kind: ReleasePolicy documents belong in the directory-level policy "
                "file (ecsop-policy.yaml or ecsop-policy.yml)"
            ],
            id="policy-outside-the-policy-file",
        ),
        pytest.param(
            {"ecsop-policy.yaml": POLICY.replace("0 9 * * MON-THU", "99 9 * * *")},
            [
                "ecsop-policy.yaml:7: spec.deployWindows[0].schedule: '99 9 * * *' is not a "
                "valid cron expression"
            ],
            id="bad-policy",
        ),
        pytest.param(
            {"ecsop-policy.yaml": POLICY + "---\n" + POLICY},
            [
                "ecsop-policy.yaml:1: metadata.name: policy name 'prod-windows' is also "
                "defined at ecsop-policy.yaml:9",
                "ecsop-policy.yaml:9: metadata.name: policy name 'prod-windows' is also "
                "defined at ecsop-policy.yaml:1",
            ],
            id="policy-twice",
        ),
        pytest.param(
            {"ecsop-policy.yaml": ""},
            ["ecsop-policy.yaml: file holds no ReleasePolicy document"],
            id="emptied-policy-file",
        ),
    ],
)
def test_validation_errors_name_file_and_line(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    assert errors_of(tmp_path, files) == expected


def test_an_unknown_name_in_a_large_directory_lists_the_closest_releases(tmp_path: Path) -> None:
    """At thousands of releases, listing all of them would make one error line of every name."""
    files = {f"shop-{n}.yaml": release(f"shop-{n}") for n in range(30)}
    files["a.yaml"] = release("a", "  dependsOn: [shop-7x, zzzzzz]")
    assert errors_of(tmp_path, files) == [
        "a.yaml:8: spec.dependsOn[0]: no release named 'shop-7x' in the spec directory "
        "(closest of its 31 releases: shop-7, shop-17, shop-27, shop-0, shop-1)",
        "a.yaml:8: spec.dependsOn[1]: no release named 'zzzzzz' in the spec directory "
        "(none of its 31 releases has a close name)",
    ]


def test_a_release_with_a_broken_reference_is_not_managed(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(release("a", "  dependsOn: [nosuch]"))
    (tmp_path / "b.yaml").write_text(release("b", "  dependsOn: [a]"))
    specs = loader.load([tmp_path])
    assert set(specs.releases) == {"b"}
    assert specs.invalid_releases["a"][0].field == "spec.dependsOn[0]"


def test_policies_give_windows_by_label(tmp_path: Path) -> None:
    (tmp_path / "ecsop-policy.yaml").write_text(POLICY)
    (tmp_path / "prod.yaml").write_text(release("prod", labels="{env: prod}"))
    (tmp_path / "staging.yaml").write_text(release("staging", labels="{env: staging}"))
    specs = loader.load([tmp_path])
    assert not specs.errors
    policies = tuple(p.policy for p in specs.policies)
    prod = windows_for(specs.releases["prod"].release.metadata.labels, policies)
    assert [w.schedule for w in prod] == ["0 9 * * MON-THU"]
    assert windows_for(specs.releases["staging"].release.metadata.labels, policies) == ()


def test_a_broken_policy_file_is_a_policy_problem_and_unreadable_keeps_the_last(
    tmp_path: Path,
) -> None:
    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    (specs_dir / "ecsop-policy.yaml").write_text(POLICY)
    (specs_dir / "prod.yaml").write_text(release("prod", labels="{env: prod}"))
    keeper = SpecKeeper(specs_dir, default_region="us-east-1", allow_mutable_tags=False)
    keeper.reload()
    assert len(keeper.specs.policies) == 1 and not keeper.specs.policy_errors
    (specs_dir / "ecsop-policy.yaml").write_text("spec: [unclosed\n")
    keeper.reload()
    assert [e.file for e in keeper.specs.policy_errors] == [str(specs_dir / "ecsop-policy.yaml")]
    (specs_dir / "ecsop-policy.yaml").write_text(POLICY)
    keeper.reload()
    renamed = tmp_path / "elsewhere"
    specs_dir.rename(renamed)  # git-sync mid-swap: the directory is gone for a moment
    keeper.reload()
    assert len(keeper.specs.policies) == 1, "an unreadable directory never drops a deny window"


# --- rewriting a spec in place -------------------------------------------------------------

SPEC_FILE = textwrap.dedent(
    f"""\
    # Production. Promote from staging with `ecsop promote`.
    apiVersion: ecsop.dev/v1
    kind: ServiceRelease
    metadata:
      name: api-prod   # the API
    spec:
      cluster: prod
      service: api
      containers:
        app: {DIGEST}    # v1.4.0
        proxy: "repo/nginx:1.25@sha256:{"2" * 64}"
        log: 'repo/log@sha256:{"3" * 64}'
    ---
    apiVersion: ecsop.dev/v1
    kind: ServiceRelease
    metadata: {{name: api-staging}}
    spec: {{cluster: staging, service: api, containers: {{app: {DIGEST}}}}}
    """
)


def test_rewrite_changes_only_the_image_values() -> None:
    proxy = "repo/nginx:1.27@sha256:" + "4" * 64
    log = "repo/log@sha256:" + "5" * 64
    after = replace_images(SPEC_FILE, "api-prod", {"app": NEWER, "proxy": proxy, "log": log})
    before_lines, after_lines = SPEC_FILE.splitlines(), after.splitlines()
    changed = [(b, a) for b, a in zip(before_lines, after_lines, strict=True) if b != a]
    assert changed == [
        (f"    app: {DIGEST}    # v1.4.0", f"    app: {NEWER}    # v1.4.0"),
        (f'    proxy: "repo/nginx:1.25@sha256:{"2" * 64}"', f'    proxy: "{proxy}"'),
        (f"    log: 'repo/log@sha256:{'3' * 64}'", f"    log: '{log}'"),
    ]
    staging = replace_images(SPEC_FILE, "api-staging", {"app": NEWER})
    assert staging.splitlines()[-1] == (
        f"spec: {{cluster: staging, service: api, containers: {{app: {NEWER}}}}}"
    )


@pytest.mark.parametrize(
    ("release_name", "images", "problem"),
    [
        pytest.param("nosuch", {"app": NEWER}, "no ServiceRelease named 'nosuch'", id="release"),
        pytest.param("api-prod", {"db": NEWER}, "spec.containers has no db", id="container"),
    ],
)
def test_rewrite_refuses(release_name: str, images: dict[str, str], problem: str) -> None:
    with pytest.raises(RewriteError, match=problem):
        replace_images(SPEC_FILE, release_name, images)


def test_an_unknown_name_among_thousands_of_releases_keeps_its_error_one_short_line() -> None:
    """Hostile: 2,000 releases, 300 of them naming the same missing release (renamed)."""
    from dataclasses import dataclass, field

    from ecsop.spec import references

    @dataclass
    class Release:
        name: str
        depends_on: list[str] = field(default_factory=list)
        promoted_from: list[str] = field(default_factory=list)

    releases = {f"svc-{n:04d}": Release(f"svc-{n:04d}") for n in range(2000)}
    for n in range(300):
        releases[f"svc-{n:04d}"].depends_on.append("payments-db")
    problems = references.check(releases, releases.keys())
    assert len(problems) == 300
    messages = {message for _, _, message in problems}
    assert len(messages) == 1, "one answer for the one missing name"
    (message,) = messages
    assert message.startswith("no release named 'payments-db' in the spec directory (")
    assert len(message) < 200, message
