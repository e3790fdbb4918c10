"""A real Prometheus server for tests: Debian's ``prometheus`` binary, as a process.

It listens on a free port with its storage in the test's temporary
directory; the tests give it its whole configuration (what to scrape, which
rule files) and read its HTTP API with ``urllib``. ``binary`` finds the
executable; without it a test skips, and fails under CI, which must install it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


def binary() -> str:
    """The prometheus executable; skips the test without one (fails it under CI)."""
    found = shutil.which("prometheus")
    if found is None:
        why = "the prometheus server binary is not installed (apt-get install prometheus)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{why}; CI must install it")
        pytest.skip(why)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except OSError as exc:  # starting up
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class PortTaken(Exception):
    """Another process bound the port between choosing it and Prometheus binding it."""


class Prometheus:
    """A Prometheus process run with ``config`` (its ``prometheus.yml``, as a mapping)."""

    def __init__(
        self, executable: str, tmp: Path, config: dict[str, Any], port: int | None = None
    ) -> None:
        """``port``: a fixed one, to start Prometheus again where the daemon looks for it."""
        path = self.config_path = tmp / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / "prometheus.log"
        # A port chosen here can be taken by another test worker's process before
        # Prometheus binds it: then it exits at once, and starts again on another.
        for _attempt in range(1 if port else 5):
            self.port = port or free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self._log = self.log_path.open("w")
            self.proc = subprocess.Popen(
                [
                    executable,
                    f"--config.file={path}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_for(self.ready, 30, "Prometheus ready")
                return
            except PortTaken:
                self._log.close()
            except BaseException:
                self.stop()
                raise
        raise AssertionError(f"Prometheus could not bind a port: {self.log_path.read_text()}")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            log = self.log_path.read_text()
            if "address already in use" in log:
                raise PortTaken(self.port)
            raise AssertionError(f"prometheus exited: {log[-2000:]}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
            if response.status != 200:
                return False
        # Ours, not another test's Prometheus that took the port: ours exits soon after.
        return bool(self.api("status/flags").get("config.file") == str(self.config_path))

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def alerts(self, name: str, state: str) -> list[dict[str, Any]]:
        return [
            alert
            for alert in self.api("alerts")["alerts"]
            if alert["labels"]["alertname"] == name and alert["state"] == state
        ]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def scraping_files(file_sd: Path, job: str = "ecs") -> dict[str, Any]:
    """A configuration scraping every second the targets listed in ``file_sd`` as ``job``."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": job,
                "file_sd_configs": [{"files": [str(file_sd)], "refresh_interval": "1s"}],
            }
        ],
    }
