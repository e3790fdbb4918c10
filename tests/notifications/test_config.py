"""The ``--notifications`` file: validation with file:line errors, secrets, routing, links."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ecsop.notify import config as notify_config
from ecsop.notify.config import ConfigInvalid, Selector
from ecsop.notify.events import EventType
from ecsop.notify.links import Links, parse_remote, resolve
from ecsop.notify.routing import Router

from .conftest import config, event

GOOD = """\
apiVersion: ecsop.dev/v1
kind: NotificationConfig
repository:
  github: acme/specs
providers:
  - name: ops-slack
    type: slack
    url: {env: SLACK_URL}
  - name: audit
    type: webhook
    url: https://audit.example.com/ecsop
    secret: {file: hmac.key}
  - name: github
    type: github
    token: {env: GITHUB_TOKEN}
routes:
  - providers: [ops-slack]
    events: [deploy.rolled_back, deploy.failed]
    selector: {matchLabels: {team: payments}}
  - providers: [github, audit]
"""
ENV = {"SLACK_URL": "https://hooks.slack.com/services/T/B/secret", "GITHUB_TOKEN": "ghp_x"}


def write(tmp_path: Path, text: str, name: str = "notifications.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    (tmp_path / "hmac.key").write_text("k3y\n")
    return path


def problems(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigInvalid) as caught:
        notify_config.load(path, environ=ENV, **kwargs)  # type: ignore[arg-type]
    return [str(error) for error in caught.value.errors]


def test_a_valid_file_resolves_its_secrets(tmp_path: Path) -> None:
    loaded = notify_config.load(write(tmp_path, GOOD), environ=ENV)
    slack, audit, github = loaded.providers
    assert slack.url.get_secret_value() == ENV["SLACK_URL"]  # type: ignore[union-attr]
    assert audit.secret.get_secret_value() == "k3y"  # type: ignore[union-attr]
    assert github.token.get_secret_value() == "ghp_x"  # type: ignore[union-attr]
    assert "k3y" not in repr(loaded) and "ghp_x" not in repr(loaded)
    assert "hooks.slack.com" not in repr(loaded)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            GOOD.replace("url: {env: SLACK_URL}", "url: https://hooks.slack.com/services/T/B/x"),
            "notifications.yaml:8: providers[0].url: must be {env: VARIABLE} or {file: PATH} "
            "(secrets are never written here)",
            id="slack-url-written-plainly",
        ),
        pytest.param(
            GOOD.replace("GITHUB_TOKEN", "MISSING_TOKEN"),
            "notifications.yaml:15: providers[2].token: environment variable MISSING_TOKEN is "
            "not set (or empty)",
            id="missing-env",
        ),
        pytest.param(
            GOOD.replace("hmac.key", "nope.key"),
            "notifications.yaml:12: providers[1].secret: cannot read secret file nope.key: "
            "No such file or directory",
            id="missing-secret-file",
        ),
        pytest.param(
            GOOD.replace("type: webhook", "type: teams"),
            "notifications.yaml:10: providers[1].type: must be slack, webhook or github",
            id="unknown-provider-type",
        ),
        pytest.param(
            GOOD.replace("    secret: {file: hmac.key}", "    secrets: {file: hmac.key}"),
            "notifications.yaml:12: providers[1].secrets: unknown field 'secrets'",
            id="typo",
        ),
        pytest.param(
            GOOD.replace("deploy.failed]", "deploy.exploded]"),
            "notifications.yaml:18: routes[0].events: unknown event type 'deploy.exploded'; "
            "known: " + ", ".join(e.value for e in EventType),
            id="unknown-event",
        ),
        pytest.param(
            GOOD.replace("[github, audit]", "[github, pager]"),
            "notifications.yaml:20: routes[1].providers[1]: no provider named 'pager' "
            "(ops-slack, audit, github)",
            id="unknown-provider-in-route",
        ),
        pytest.param(
            GOOD.replace("name: audit", "name: github").replace("[github, audit]", "[github]"),
            "notifications.yaml:13: providers[2].name: 'github' is also providers[1]",
            id="duplicate-provider-name",
        ),
        pytest.param(
            GOOD.replace("url: https://audit", "url: ftp://audit"),
            "notifications.yaml:11: providers[1].url: must be an absolute http:// or https:// URL",
            id="not-http",
        ),
        pytest.param(
            GOOD.replace("github: acme/specs", "github: acme"),
            "notifications.yaml:4: repository.github: 'acme' is not owner/repo",
            id="repository-not-owner-repo",
        ),
        pytest.param(
            GOOD + "providers: []\n",
            "notifications.yaml:21: providers: duplicate key 'providers' (first at line 5)",
            id="duplicate-key",
        ),
    ],
)
def test_problems_are_reported_by_file_line_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    found = problems(write(tmp_path, text))
    assert [p.removeprefix(f"{tmp_path}/") for p in found] == [expected]


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    text = GOOD.replace("url: {env: SLACK_URL}", "url: https://hooks.slack.com/services/T/B/s3cr3t")
    assert not any("s3cr3t" in p for p in problems(write(tmp_path, text)))


def test_nothing_secret_lives_in_the_spec_directory(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    inside = write(specs, GOOD)
    assert problems(inside, specs=specs) == [
        f"{inside}: must not be inside the spec directory {specs}"
    ]
    outside = tmp_path / "conf"
    outside.mkdir()
    path = write(outside, GOOD.replace("hmac.key", "../specs/hmac.key"))
    (specs / "hmac.key").write_text("k")
    assert problems(path, specs=specs) == [
        f"{path}:12: providers[1].secret: secret file ../specs/hmac.key is inside the spec "
        f"directory {specs}; move it out"
    ]


# --- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        pytest.param({}, {}, True, id="empty-selects-all"),
        pytest.param({"matchLabels": {"team": "pay"}}, {"team": "pay"}, True, id="label"),
        pytest.param({"matchLabels": {"team": "pay"}}, {"team": "web"}, False, id="other-value"),
        pytest.param({"matchLabels": {"team": "pay"}}, {}, False, id="missing"),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dr"]}]},
            {"env": "dr"},
            True,
            id="in",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]},
            {},
            True,
            id="notin-absent",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {}, False, id="exists"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]},
            {"env": "x"},
            False,
            id="does-not-exist",
        ),
    ],
)
def test_selector(selector: dict[str, object], labels: dict[str, str], matches: bool) -> None:
    assert Selector.model_validate(selector).matches(labels) is matches


def test_routes_by_event_type_and_labels() -> None:
    routes = config(
        providers=[
            {"name": "a", "type": "github", "token": {"env": "TOKEN"}},
            {"name": "b", "type": "webhook", "url": "http://x"},
            {"name": "c", "type": "webhook", "url": "http://y"},
        ],
        routes=[
            {"providers": ["a"], "events": ["deploy.started"]},
            {"providers": ["b", "a"], "selector": {"matchLabels": {"team": "shop"}}},
        ],
    ).routes
    router = Router(routes, ["a", "b", "c"])
    assert router.providers_for(event(EventType.DEPLOY_STARTED, labels={})) == ["a"]
    assert router.providers_for(event(labels={"team": "shop"})) == ["a", "b"]
    assert router.providers_for(event(labels={"team": "web"})) == []
    assert Router([], ["a", "c"]).providers_for(event()) == ["a", "c"]


# --- links --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remote", "parsed"),
    [
        ("https://github.com/acme/specs.git", ("github.com", "acme/specs")),
        ("https://x-access-token:ghs_abc@github.com/acme/specs", ("github.com", "acme/specs")),
        ("git@github.com:acme/specs.git", ("github.com", "acme/specs")),
        ("ssh://git@ghe.example.com:22/acme/specs.git", ("ghe.example.com", "acme/specs")),
        ("/srv/git/specs", None),
        ("https://github.com/acme", None),
    ],
)
def test_parse_remote(remote: str, parsed: tuple[str, str] | None) -> None:
    assert parse_remote(remote) == parsed


def test_links_from_the_spec_directory_remote_once_there_is_one(tmp_path: Path) -> None:
    import subprocess

    now = [0.0]
    links = Links(specs=tmp_path, retry_seconds=60, clock=lambda: now[0])
    assert links.repository() is None, "git-sync has not cloned yet"
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "remote", "add", "origin", "git@github.com:acme/specs.git"],
        check=True,
    )
    assert links.repository() is None, "looked up again only after retry_seconds"
    now[0] = 61
    assert links.repository() == "acme/specs"
    assert links.commit("abc") == "https://github.com/acme/specs/commit/abc"


def test_links_from_the_configuration() -> None:
    links = resolve(notify_config.Repository(github="acme/specs"), None)
    assert links.commit("abc") == "https://github.com/acme/specs/commit/abc"
    custom = notify_config.Repository(commit_url="https://git.example/x/-/commit/{commit}")
    assert resolve(custom, None).commit("abc") == "https://git.example/x/-/commit/abc"
    assert resolve(notify_config.Repository(), None).commit("abc") is None


def test_ecsop_run_stops_on_a_broken_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from ecsop.cli import notifications as flags

    path = write(tmp_path, GOOD.replace("type: webhook", "type: teams"))
    args = argparse.Namespace(notifications=str(path), status_history=3)
    with pytest.raises(SystemExit) as stopped:
        flags.settings(args, tmp_path / "specs")
    assert stopped.value.code == 2
    assert "providers[1].type: must be slack, webhook or github" in capsys.readouterr().err
    args = argparse.Namespace(notifications=None, status_history=0)
    assert flags.settings(args, tmp_path / "specs")["history"].entries == 0
