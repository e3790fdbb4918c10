"""The one-shot commands as a newcomer meets them: in-process, no AWS, no daemon."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
import structlog
from prometheus_client import CollectorRegistry
from test_source import GOOD, alias_bomb, doc

from ecsop.cli import app as cli
from ecsop.cli import options
from ecsop.decision.actions import Phase
from ecsop.observability import logs
from ecsop.observability.server import Endpoint
from ecsop.observability.status import ReleaseStatus, StatusStore


@pytest.mark.timeout(20)
def test_validate_refuses_an_alias_bomb_quickly_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert cli.main(["validate", str(bomb)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"{bomb}:7: alias *e takes the document past 100000 YAML nodes")
    assert len(out) < 400
    assert "1 error(s)" in err


def test_validate_reports_a_symlink_loop_as_a_spec_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")
    assert cli.main(["validate", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{tmp_path / 'loop.yaml'}: cannot resolve path: symlink loop\n"
    assert "Traceback" not in err and "1 error(s)" in err


COMMANDS = ["run", "plan", "status", "retry", "validate", "schema", "sandbox"]


def test_help_lists_every_command_and_how_to_learn_more(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(f"    {command}" in out for command in COMMANDS)
    assert "ecsop COMMAND --help" in out.replace("\n", " ")


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert out.startswith(f"usage: ecsop {command}")
    assert max(len(line) for line in out.splitlines()) <= 80


def test_run_help_names_every_variable_the_readme_documents(
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("### `ecsop run` flags", 1)[1].split("\n\n", 2)[1]
    documented = {
        variable
        for row in table.splitlines()[2:]
        for variable in re.findall(r"`(ECSOP_[A-Z_]+)`", row.split("|")[2])
    }
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    shown = set(re.findall(r"ECSOP_[A-Z_]+", capsys.readouterr().out.replace("\n ", "")))
    assert documented and documented <= shown


def test_a_bad_variable_of_one_command_does_not_break_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ECSOP_METRICS_PORT", "nine-thousand")
    (tmp_path / "api.yaml").write_text(GOOD)
    assert cli.main(["validate", str(tmp_path)]) == 0
    assert "1 valid release(s)" in capsys.readouterr().out


def test_a_flag_wins_over_its_variable_and_the_variable_over_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = cli.build_parser()
    monkeypatch.setenv("ECSOP_WORKERS", "7")
    monkeypatch.delenv("ECSOP_METRICS_PORT", raising=False)
    args = parser.parse_args(["run", "--workers", "2"])
    options.resolve(args)
    assert (args.workers, args.metrics_port) == (2, 9100)
    args = parser.parse_args(["run"])
    options.resolve(args)
    assert args.workers == 7


@pytest.mark.parametrize("value", ["ture", "2", "enabled"])
def test_a_mistyped_boolean_variable_is_refused_naming_it(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ECSOP_ALLOW_MUTABLE_TAGS", value)
    assert cli.main(["validate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        f"ecsop validate: environment variable ECSOP_ALLOW_MUTABLE_TAGS={value!r} is not valid"
        in err
    )
    assert "1/0, true/false, yes/no or on/off" in err


def test_the_daemon_refuses_a_mistyped_no_self_heal_before_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ECSOP_NO_SELF_HEAL", "ture")
    args = cli.build_parser().parse_args(["run", "--specs", "specs"])
    with pytest.raises(options.UsageError, match="ECSOP_NO_SELF_HEAL='ture' is not valid"):
        options.resolve(args)  # what main does before any handler runs


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("TRUE", True), ("yes", True), ("On", True), ("0", False), ("off", False)],
)
def test_boolean_variables_accept_the_usual_words(
    value: str, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECSOP_NO_SELF_HEAL", value)
    args = cli.build_parser().parse_args(["plan"])
    options.resolve(args)
    assert args.no_self_heal is expected


@pytest.fixture
def quiet_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ecsop run` sets up logging; that would bind module loggers to this test's stdout."""
    monkeypatch.setattr(logs, "configure", lambda *args: None)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_run_on_a_busy_port_says_which_and_how_to_change_it(
    tmp_path: Path,
    busy_port: int,
    capsys: pytest.CaptureFixture[str],
    quiet_logs: None,
) -> None:
    try:
        code = cli.main(
            [
                "run",
                "--specs",
                str(tmp_path),
                "--region",
                "us-east-1",
                "--metrics-host",
                "127.0.0.1",
                "--metrics-port",
                str(busy_port),
            ]
        )
    finally:
        structlog.reset_defaults()
    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"ecsop run: cannot listen on 127.0.0.1:{busy_port}: ")
    assert line.endswith("choose another port with --metrics-port PORT (env ECSOP_METRICS_PORT)")


def test_status_into_a_pipe_closed_early_exits_quietly(tmp_path: Path) -> None:
    statuses = StatusStore()
    now = datetime.now(UTC)
    for number in range(3000):  # far more than a pipe holds, so the write meets the closed end
        statuses.put(
            ReleaseStatus(
                f"r{number}",
                "us-east-1",
                "prod",
                f"s{number}",
                "f.yaml",
                None,
                Phase.SYNCED,
                "InSync",
                "running the desired images",
            ),
            now,
        )
    endpoint = Endpoint(
        "127.0.0.1", 0, CollectorRegistry(), statuses, lambda: (True, ""), lambda _: False
    )
    endpoint.start()
    try:
        result = subprocess.run(
            f"{shlex.quote(sys.executable)} -m ecsop status --url http://127.0.0.1:{endpoint.port}"
            " | head -n 1",
            shell=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        endpoint.stop()
    assert result.stdout.startswith("RELEASE")
    assert result.stderr == ""


@pytest.fixture
def failed_release(aws_env: str, tmp_path: Path) -> Path:
    """A service in moto whose release failed (ecsop:failed-* tags), and its spec directory."""
    ecs = boto3.client("ecs", region_name="us-east-1")
    ecs.create_cluster(clusterName="prod")
    family = ecs.register_task_definition(
        family="api", containerDefinitions=[{"name": "api", "image": "repo/api:1", "memory": 64}]
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster="prod",
        serviceName="api",
        taskDefinition=family,
        desiredCount=0,
        tags=[{"key": "ecsop:failed-fingerprint", "value": "0123456789abcdef"}],
    )
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "api.yaml").write_text(doc(name="api", service="api"))
    return specs


@pytest.fixture
def daemon_endpoint() -> Iterator[tuple[Endpoint, list[str]]]:
    calls: list[str] = []
    endpoint = Endpoint(
        "127.0.0.1",
        0,
        CollectorRegistry(),
        StatusStore(),
        ready=lambda: (True, ""),
        requeue=lambda name: calls.append(name) is None,
        api_token="s3cr3t-t0ken",
    )
    endpoint.start()
    yield endpoint, calls
    endpoint.stop()
    urllib.request.install_opener(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("source", ["file", "variable"])
def test_retry_sends_the_api_token_to_the_daemon(
    failed_release: Path,
    daemon_endpoint: tuple[Endpoint, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    source: str,
) -> None:
    endpoint, calls = daemon_endpoint
    url = f"http://127.0.0.1:{endpoint.port}"
    if source == "file":
        (tmp_path / "token").write_text("s3cr3t-t0ken\n")
        monkeypatch.setenv("ECSOP_API_TOKEN_FILE", str(tmp_path / "token"))
    else:
        monkeypatch.setenv("ECSOP_API_TOKEN", "s3cr3t-t0ken")
    assert cli.main(["retry", "api", "--specs", str(failed_release), "--url", url]) == 0
    assert calls == ["api"]
    out, err = capsys.readouterr()
    assert "cleared failed record" in out and "not reachable" not in out
    assert "s3cr3t" not in out + err


def test_retry_without_the_token_is_refused_by_the_daemon(
    failed_release: Path,
    daemon_endpoint: tuple[Endpoint, list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint, calls = daemon_endpoint
    url = f"http://127.0.0.1:{endpoint.port}"
    assert cli.main(["retry", "api", "--specs", str(failed_release), "--url", url]) == 0
    assert calls == []
    assert "it will notice on its next resync" in capsys.readouterr().out


def test_approve_sends_the_api_token_to_the_daemon(
    failed_release: Path,
    daemon_endpoint: tuple[Endpoint, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A daemon with an API token (any daemon an approver reaches over the network)
    refused approve's wake-up, and approve said "not reachable": the approved release
    then waited for the next resync (300 s with an event queue) instead of deploying."""
    endpoint, calls = daemon_endpoint
    url = f"http://127.0.0.1:{endpoint.port}"
    spec = failed_release / "api.yaml"
    spec.write_text(doc(name="api", service="api", extra="  rollout: {approval: manual}\n"))
    monkeypatch.setenv("ECSOP_API_TOKEN", "s3cr3t-t0ken")
    assert cli.main(["approve", "api", "--specs", str(failed_release), "--url", url]) == 0
    assert calls == ["api"]
    out, err = capsys.readouterr()
    assert "approved" in out and "not reachable" not in out
    assert "s3cr3t" not in out + err
    monkeypatch.delenv("ECSOP_API_TOKEN")
    assert cli.main(["approve", "api", "--specs", str(failed_release), "--url", url]) == 0
    assert calls == ["api"]
    assert "refused" in capsys.readouterr().out, "a refusal is not an unreachable daemon"


def test_an_empty_token_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], quiet_logs: None
) -> None:
    (tmp_path / "token").write_text("\n")
    assert (
        cli.main(["run", "--specs", str(tmp_path), "--api-token-file", str(tmp_path / "token")])
        == 2
    )
    assert f"the API token file {tmp_path / 'token'} is empty" in capsys.readouterr().err
