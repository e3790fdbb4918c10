"""The one-shot commands and the newcomer's `ecsop run --sandbox`, as processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from ecsop.spec.model import fingerprint

from .conftest import (
    CRASH,
    GOOD_V1,
    GOOD_V2,
    Daemon,
    Sandbox,
    SpecRepo,
    free_port,
    release_doc,
    wait_for,
)

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def ecsop(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **sandbox.aws_env()}
    return subprocess.run(
        [sys.executable, "-m", "ecsop", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_plan_reports_without_changing_anything(sandbox: Sandbox, repo: SpecRepo) -> None:
    repo.commit(
        {
            "shop.yaml": release_doc("shop", "shop", GOOD_V1),
            "breaker.yaml": release_doc("breaker", "shop-breaker", GOOD_V2),
        },
        "plan",
    )
    before = sandbox.calls("UpdateService"), sandbox.calls("RegisterTaskDefinition")
    described = sandbox.calls("DescribeServices")
    result = ecsop(sandbox, "plan", "--specs", str(repo.path))
    assert result.returncode == 2, result.stdout + result.stderr
    # Both services of the cluster in one batched call, as the daemon's resync does.
    assert sandbox.calls("DescribeServices") == described + 1
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["breaker"].startswith("Progressing: would RecordLastGood")  # adopt first
    assert "shop" in lines
    assert (sandbox.calls("UpdateService"), sandbox.calls("RegisterTaskDefinition")) == before
    assert sandbox.tags("shop") == {}, "plan must not tag anything"


def test_plan_exits_zero_in_sync_and_one_on_missing_service(
    sandbox: Sandbox, repo: SpecRepo
) -> None:
    sandbox.remember_last_good("shop", "shop")
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1)}, "in sync")
    result = ecsop(sandbox, "plan", "--specs", str(repo.path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "shop: Synced: no change" in result.stdout
    repo.commit({"shop.yaml": release_doc("shop", "nope", GOOD_V1)}, "missing")
    result = ecsop(sandbox, "plan", "--specs", str(repo.path))
    assert result.returncode == 1
    assert "prod/nope not found" in result.stdout


def test_retry_clears_the_record_and_the_daemon_tries_again(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: Callable[..., Daemon]
) -> None:
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1)}, "adopt")
    daemon = start_daemon()
    wait_for(lambda: daemon.release("shop").get("phase") == "Synced", 20, "adopted")
    repo.commit({"shop.yaml": release_doc("shop", "shop", CRASH)}, "crash")
    wait_for(lambda: daemon.release("shop").get("phase") == "Degraded", 40, "rolled back")
    updates, registers = sandbox.calls("UpdateService"), sandbox.calls("RegisterTaskDefinition")

    result = ecsop(sandbox, "retry", "shop", "--specs", str(repo.path), "--url", daemon.url)
    assert result.returncode == 0, result.stderr
    assert f"cleared failed record for {fingerprint({'app': CRASH})}" in result.stdout
    # The daemon deploys the same release again (reusing its revision) and rolls it back again.
    wait_for(lambda: sandbox.calls("UpdateService") >= updates + 2, 40, "retried and rolled back")
    wait_for(
        lambda: sandbox.failed("shop"), 20, "failure re-recorded"
    )
    assert sandbox.calls("RegisterTaskDefinition") == registers

    again = ecsop(sandbox, "retry", "unknown", "--specs", str(repo.path), "--url", daemon.url)
    assert again.returncode == 1 and "no valid release named 'unknown'" in again.stderr


def test_run_sandbox_is_the_newcomers_first_command(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", specs)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecsop",
            "run",
            "--sandbox",
            "--specs",
            str(specs),
            "--metrics-host",
            "127.0.0.1",
            "--metrics-port",
            str(port),
            "--active-poll-interval",
            "0.5",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def phases() -> dict[str, str]:
            import json

            with urllib.request.urlopen(f"{url}/status", timeout=5) as response:
                return {r["name"]: r["phase"] for r in json.load(response)["releases"]}

        wait_for(
            lambda: len(phases()) == 5 and set(phases().values()) == {"Synced"},
            60,
            "every example release synced (staging deployed)",
        )
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert "ecsop_release_synced" in metrics
        # Staging's deploy ran the demo's migration first, then its smoke test in the bake.
        for kind, step in (("pre_deploy", "migrate"), ("verify", "smoke")):
            assert (
                f'ecsop_steps_total{{kind="{kind}",outcome="succeeded",'
                f'release="taskboard-api-staging",step="{step}"}} 1.0'
            ) in metrics
        spec = specs / "taskboard-api.yaml"
        crash = "d4d63d598cb81576ed3871e8c2e5fabc4ec4e4157bc27f97c4590542df24344b"
        spec.write_text(
            spec.read_text().replace(
                "c7aa851d3bc1db87561f200b55082aad56d29a4af40c38f242ae0154b8f5fced", crash
            )
        )
        wait_for(
            lambda: phases()["taskboard-api-staging"] in ("RollingBack", "Degraded"),
            60,
            "automatic rollback of the crash-looping digest",
        )
        wait_for(lambda: phases()["taskboard-api-staging"] == "Degraded", 60, "rolled back")
        assert phases()["taskboard-api-prod"] == "Synced"
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
        log.close()
    text = (tmp_path / "run.log").read_text()
    assert "Try it" in text and "rollback:" in text
