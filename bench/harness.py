"""Processes the benchmark drives: the sandbox, the ecsop daemon, a git repo of specs.

Each runs as its own OS process, as in production and in ``tests/e2e``: the
sandbox (``python -m ecsop sandbox``), the daemon (``python -m ecsop run``,
pointed at the sandbox with ``AWS_ENDPOINT_URL``) and the baselines
(``python -m bench.baselines``). Every contender signs its AWS calls with its
own access key id, so the sandbox's call log (``GET /_sandbox/calls/log``)
tells whose call each one was, and when it arrived in wall-clock and simulated
time. CPU and memory are read from ``/proc/<pid>`` of the process measured,
never of the sandbox.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.fleet import CONTAINER

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # starting up, or a transient HTTP error
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def aws_env(endpoint: str, caller: str) -> dict[str, str]:
    """Environment of a process whose AWS calls go to the sandbox, signed as ``caller``."""
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": caller,
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    }


def _with_code(env: dict[str, str], code: Path | None) -> dict[str, str]:
    if code is None:
        return env
    return {**env, "PYTHONPATH": os.pathsep.join([str(code), env["PYTHONPATH"]])}


# --- /proc --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` alone (not its children), in seconds."""
    with open(f"/proc/{pid}/stat") as handle:
        raw = handle.read()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """VmHWM (peak resident set) and VmRSS of ``pid``, in KiB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
    return out


class CpuSampler:
    """Samples a process's CPU time every ``every`` seconds in a thread: (wall, cpu)."""

    def __init__(self, pid: int, every: float = 0.01) -> None:
        self.pid = pid
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-sampler")

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.time(), cpu_seconds(self.pid)))
            except OSError:
                return
            self._stop.wait(self.every)

    def at(self, wall: float) -> float:
        """CPU seconds at ``wall`` (the last sample at or before it)."""
        value = self.samples[0][1] if self.samples else 0.0
        for when, cpu in self.samples:
            if when > wall:
                break
            value = cpu
        return value

    def busy_until(self, start: float, quiet: float = 0.3, stop: float | None = None) -> float:
        """When the process last used CPU before ``quiet`` seconds of no CPU, after ``start``."""
        last_change = start
        previous: float | None = None
        for when, cpu in self.samples:
            if when < start:
                previous = cpu
                continue
            if stop is not None and when > stop:
                break
            if previous is not None and cpu > previous:
                last_change = when
            elif when - last_change >= quiet:
                break
            previous = cpu
        return last_change


# --- the sandbox --------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    seq: int
    wall: float
    sim: float
    operation: str
    caller: str
    request: dict[str, Any]
    service: str = ""
    """The SigV4 signing name (``ecs``, ``sqs``, ...)."""
    fault: int | None = None
    """The injected fault's HTTP status (400: throttled), if the call got one."""


def describes_again(calls: list[Call]) -> int:
    """DescribeServices among ``calls`` naming only services an earlier one named.

    A first pass ends when every release has had its pass; the next resync is
    due then and starts at once, so the calls a bench counts until it *sees*
    every release Synced include some of that resync's. These are those.
    """
    described: set[str] = set()
    again = 0
    for call in sorted(calls, key=lambda c: c.seq):
        if call.operation != "DescribeServices":
            continue
        named = {str(s) for s in call.request.get("services") or ()}
        if named and named <= described:
            again += 1
        described |= named
    return again


class Sandbox:
    """``python -m ecsop sandbox`` with a generated scenario, and its control API."""

    def __init__(self, workdir: Path, scenario: dict[str, Any], name: str = "sandbox") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(scenario, sort_keys=False))
        port = ("--port", str(self.port))
        self._log = (workdir / f"{name}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ecsop", "sandbox", "--scenario", str(path), *port],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=aws_env("", "sandbox"),
        )
        try:
            wait_for(lambda: self.control("GET", "health")["ok"], 120, "the sandbox", 0.1)
        except BaseException:
            self.stop()
            raise
        self._after = 0

    def control(self, method: str, route: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/_sandbox/{route}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    def clock(self) -> dict[str, float]:
        answer: dict[str, float] = self.control("GET", "clock")
        return answer

    def calls(
        self,
        operations: Iterable[str] = (),
        callers: Iterable[str] = (),
        after: int = 0,
    ) -> list[Call]:
        query = [("operation", o) for o in operations] + [("caller", c) for c in callers]
        query.append(("after", str(after)))
        found = self.control("GET", "calls/log?" + urllib.parse.urlencode(query))["calls"]
        return [
            Call(
                c["seq"],
                c["wall"],
                c["sim"],
                c["operation"],
                c["caller"],
                c["request"],
                c.get("service", ""),
                c["fault"],
            )
            for c in found
        ]

    def last_seq(self) -> int:
        """The newest call's seq (0 if none): a bookmark for ``calls(after=...)``."""
        found = self.control("GET", "calls/log?" + urllib.parse.urlencode({"after": self._after}))
        if found["calls"]:
            self._after = found["calls"][-1]["seq"]
        return self._after

    def ecs(self, caller: str = "bench") -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "ecs",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=caller,
            aws_secret_access_key="bench",
            config=Config(retries={"mode": "standard", "max_attempts": 10}),
        )

    def stop(self) -> None:
        end(self.proc, grace=20)
        self._log.close()


# --- specs in git -------------------------------------------------------------------


class SpecRepo:
    """A real git repository of release specs, one file per release."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> None:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
        }
        subprocess.run(["git", *args], cwd=self.path, env=env, check=True, capture_output=True)

    def write(self, files: dict[str, dict[str, Any]]) -> None:
        for name, doc in files.items():
            (self.path / name).write_text(yaml.safe_dump(doc, sort_keys=False))

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-qm", message)


# --- the daemon ---------------------------------------------------------------------


class Daemon:
    """``python -m ecsop run`` against the sandbox, signing its calls as ``caller``."""

    def __init__(
        self,
        workdir: Path,
        sandbox: Sandbox,
        specs: Path,
        *flags: str,
        caller: str = "ecsop",
        code: Path | None = None,
    ) -> None:
        """``code``: a directory holding another ``ecsop`` package to run instead of this
        checkout's (an earlier commit's, for a side-by-side run)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"daemon-{caller}-{self.port}.log"
        self._log = self.log_path.open("w")
        endpoint = ("--metrics-host", "127.0.0.1", "--metrics-port", str(self.port))
        endpoint += ("--log-format", "json")
        # The bench reads /status to know when releases are Synced; without history
        # (read from AWS for /status on demand) those reads cost no AWS call.
        endpoint += ("--status-history", "0")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ecsop", "run", "--specs", str(specs), *endpoint, *flags],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_with_code(aws_env(sandbox.url, caller), code),
        )
        self.pid = self.proc.pid
        try:
            wait_for(lambda: self.get("/readyz"), 120, "the daemon to be ready", 0.1)
        except BaseException:
            self.stop()
            raise

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=60) as response:
            body = response.read()
        return json.loads(body) if path == "/status" else body.decode()

    def phases(self) -> dict[str, str]:
        return {r["name"]: r["phase"] for r in self.get("/status")["releases"]}

    def wait_settled(self, releases: int, timeout: float, every: float = 0.5) -> None:
        """Until every release has been reconciled once and is Synced (``/status`` read
        every ``every`` seconds: at 10,000 releases each read costs the daemon CPU)."""

        def settled() -> bool:
            phases = self.phases()
            return len(phases) == releases and all(p == "Synced" for p in phases.values())

        wait_for(settled, timeout, f"{releases} releases Synced", every)

    def metric_samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        from prometheus_client.parser import text_string_to_metric_families

        out: dict[tuple[tuple[str, str], ...], float] = {}
        for family in text_string_to_metric_families(self.get("/metrics")):
            for sample in family.samples:
                if sample.name == name:
                    out[tuple(sorted(sample.labels.items()))] = sample.value
        return out

    def memory(self) -> dict[str, int]:
        return memory_kib(self.pid)

    def stop(self) -> None:
        end(self.proc, grace=30)
        self._log.close()


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation, as numpy's default."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def start_baseline(
    workdir: Path, sandbox: Sandbox, caller: str, *args: str, log_name: str | None = None
) -> subprocess.Popen[bytes]:
    """``python -m bench.baselines ARGS`` against the sandbox, signing as ``caller``."""
    log = (workdir / f"{log_name or caller}.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.baselines", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=aws_env(sandbox.url, caller),
            cwd=ROOT,
        )
    finally:
        log.close()


def start_script(
    workdir: Path,
    sandbox: Sandbox,
    service: str,
    image: str,
    *,
    poll: str,
    timeout: str,
    log_name: str,
) -> subprocess.Popen[bytes]:
    """The deploy-script baseline: update ``service`` of cluster "script" to ``image``, then
    poll every ``poll`` seconds until ECS's own breaker or ``timeout`` decides."""
    return start_baseline(
        workdir,
        sandbox,
        "script",
        "script",
        "--cluster",
        "script",
        "--service",
        service,
        "--container",
        CONTAINER,
        "--image",
        image,
        "--poll",
        poll,
        "--timeout",
        timeout,
        log_name=log_name,
    )


def end(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Terminate one process this benchmark started, then kill it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_updates(
    sandbox: Sandbox,
    caller: str,
    wanted: dict[str, int],
    after: int,
    timeout: float,
    cluster: str | None = None,
) -> dict[str, list[Call]]:
    """UpdateService calls by ``caller`` after seq ``after``, per service, until each
    service has ``wanted[service]`` of them; short of that if ``timeout`` passed."""
    found: dict[str, list[Call]] = {name: [] for name in wanted}
    seen = after
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for call in sandbox.calls(["UpdateService"], [caller], after=seen):
            seen = max(seen, call.seq)
            name = str(call.request.get("service", ""))
            if name in found and (cluster is None or call.request.get("cluster") == cluster):
                found[name].append(call)
        if all(len(found[name]) >= count for name, count in wanted.items()):
            break
        time.sleep(0.01)
    return found
