"""`python -m ecsop sandbox` serves the demo scenario to boto3 until SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "operator" / "ecsop" / "sandbox" / "demo.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_sandbox_command_serves_boto3() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ecsop", "sandbox", "--scenario", str(DEMO), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/_sandbox/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.1)
        ecs = boto3.client(
            "ecs",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        services = ecs.describe_services(
            cluster="prod", services=["taskboard-api", "taskboard-worker"]
        )["services"]
        assert [(s["serviceName"], s["runningCount"]) for s in services] == [
            ("taskboard-api", 4),
            ("taskboard-worker", 2),
        ]
        assert requests.get(f"{url}/_sandbox/clock", timeout=5).json()["speed"] == 20
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in out


def test_port_zero_binds_a_free_port_and_prints_its_url(tmp_path: Path) -> None:
    """How tests start several sandboxes at once: no port chosen ahead that another can take."""
    out = tmp_path / "out.log"
    with out.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "ecsop", "sandbox", "--scenario", str(DEMO), "--port", "0"],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not (
            said := re.search(r"ecsop sandbox: (http://127\.0\.0\.1:\d+) ", out.read_text())
        ):
            assert process.poll() is None, out.read_text()
            assert time.monotonic() < deadline, "the sandbox printed no URL"
            time.sleep(0.1)
        url = said.group(1)
        assert not url.endswith(":0")
        assert requests.get(f"{url}/_sandbox/health", timeout=5).ok
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    assert process.returncode == 0


def test_sandbox_command_reports_a_bad_scenario(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("clockSpeed: fast\nbogus: 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "ecsop", "sandbox", "--scenario", str(bad), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "clockSpeed" in result.stderr and "bogus" in result.stderr
