"""The sandbox endpoint: moto's server with the ECS rollout simulator in front.

One HTTP port speaks to boto3 and the AWS CLI.  A WSGI layer in front of
moto's ``DomainDispatcherApplication``, for every request:

1. serves ``/_sandbox/...`` itself (the control API);
2. identifies the AWS call (service, operation, protocol), counts it, and may
   answer it with an injected fault;
3. advances the simulation to the clock's now, so whatever the caller reads
   (ECS, target health, alarms) is as of that instant;
4. answers ECS calls from the simulator, and passes everything else (ELBv2,
   CloudWatch, STS, ECR, ...) to moto, whose state the simulator also drives.

moto keeps its state in process-wide backends, so one sandbox runs per process
at a time; starting it resets moto's state.
"""

from __future__ import annotations

import io
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from types import FrameType, TracebackType
from typing import Any

from ecsop.sandbox import addons, ecs_api, protocol
from ecsop.sandbox.clock import SimClock
from ecsop.sandbox.control import Control
from ecsop.sandbox.faults import CallLog, Fault, FaultInjector
from ecsop.sandbox.scenario import Scenario, ScenarioError, load_scenario
from ecsop.sandbox.simulator import EcsError, Simulator

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

ECS_TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
_ACTIVE = threading.Lock()

_THREADS = 32
"""Requests served at once: daemons, the CLI and tests share one sandbox, and an SQS
long poll holds its thread for up to 20 s."""
_CONNECTION_LIMIT = 1000
_IDLE_SECONDS = 120.0
"""An idle kept-alive connection is closed after this long."""


class SandboxApp:
    """The WSGI application described in the module docstring."""

    def __init__(
        self,
        sim: Simulator,
        injector: FaultInjector,
        control: Control,
        moto_app: WsgiApp,
        call_log: CallLog | None = None,
    ) -> None:
        self._sim = sim
        self._injector = injector
        self._control = control
        self._moto = moto_app
        self._call_log = call_log

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        body = _read_body(environ)
        if path.startswith("/_sandbox/"):
            status, payload = self._control.handle(
                environ.get("REQUEST_METHOD", "GET"),
                path[len("/_sandbox/") :],
                body,
                environ.get("QUERY_STRING", ""),
            )
            return _json(start_response, status, payload)
        wall, sim_now = time.time(), self._sim.clock.now()
        headers = _headers(environ)
        call = protocol.identify(headers, path, body)
        fault = self._injector.decide(call)
        target = headers.get("x-amz-target", "")
        request: dict[str, Any] | None = None
        if target.startswith(ECS_TARGET_PREFIX):
            try:
                parsed = json.loads(body) if body else {}
            except ValueError:
                parsed = None
            request = parsed if isinstance(parsed, dict) else None
        if self._call_log is not None:
            self._call_log.record(
                call,
                wall=wall,
                sim=sim_now,
                fault=fault.status if fault is not None else None,
                request=request,
            )
        if fault is not None and not fault.after_write:
            return _fault(call, fault, start_response)
        self._sim.sync()
        if fault is not None:  # carried out, then its answer lost
            for _ in self._dispatch(call, target, environ, body, request, _discard):
                pass
            return _fault(call, fault, start_response)
        return self._dispatch(call, target, environ, body, request, start_response)

    def _dispatch(
        self,
        call: protocol.Call,
        target: str,
        environ: dict[str, Any],
        body: bytes,
        request: dict[str, Any] | None,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """The call carried out: ECS by the simulator, everything else by moto."""
        if target.startswith(ECS_TARGET_PREFIX):
            return self._ecs(call, target[len(ECS_TARGET_PREFIX) :], body, request, start_response)
        return self._moto(environ, start_response)

    def _ecs(
        self,
        call: protocol.Call,
        operation: str,
        body: bytes,
        request: dict[str, Any] | None,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        try:
            if request is None:  # not a JSON object: let the ECS layer report it
                request = json.loads(body) if body else {}
            response = ecs_api.handle(self._sim, operation, request)
        except EcsError as exc:
            answer = protocol.error(call, 400, exc.code, exc.message)
            start_response(_status(answer.status), answer.headers)
            return [answer.body]
        except (KeyError, ValueError, TypeError) as exc:
            answer = protocol.error(
                call, 400, "InvalidParameterException", f"Invalid request: {exc}"
            )
            start_response(_status(400), answer.headers)
            return [answer.body]
        data = json.dumps(response).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))],
        )
        return [data]


class _SimulatedDate:
    """Every answer's ``Date`` header carries simulated time, as AWS sends its own.

    The daemon compares deployment timestamps with the server's clock, not its
    host's; with a fast simulated clock only the simulator's time agrees with
    the timestamps it returns (waitress adds its own ``Date`` only when the
    application sent none).
    """

    def __init__(self, app: WsgiApp, clock: SimClock) -> None:
        self._app = app
        self._clock = clock

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def dated(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, v) for k, v in headers if k.lower() != "date"]
            headers.append(("Date", formatdate(self._clock.now(), usegmt=True)))
            return start_response(status, headers, exc_info)

        return self._app(environ, dated)


class SandboxServer:
    """The sandbox endpoint on ``host:port`` (port 0: any free port), in a thread.

    Served by waitress, which keeps HTTP/1.1 connections open between requests
    as AWS endpoints do: the AWS SDKs reuse one TCP connection for many calls
    ("Reuse connections with keep-alive in Node.js",
    https://docs.aws.amazon.com/sdk-for-javascript/v3/developer-guide/node-reusing-connections.html;
    botocore pools them, ``max_pool_connections``). Werkzeug's development server
    closes every connection after one answer, which made every client, ecsop
    included, pay a TCP connection per call that it never pays against AWS.
    """

    def __init__(self, scenario: Scenario, host: str = "127.0.0.1", port: int = 0) -> None:
        self.scenario = scenario
        self._host = host
        self._port = port
        self._server: Any = None
        self._map: dict[int, Any] = {}
        """waitress's socket map: the listening socket and every open connection."""
        self._thread: threading.Thread | None = None
        self._sim: Simulator | None = None
        self._injector: FaultInjector | None = None
        self._call_log: CallLog | None = None
        self._addons: addons.Addons | None = None

    def start(self) -> SandboxServer:
        import waitress.server
        from moto.core.base_backend import BackendDict
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        if not _ACTIVE.acquire(blocking=False):
            raise RuntimeError("a SandboxServer is already running in this process")
        try:
            BackendDict.reset()
            extras: addons.Addons | None = None
            clock = SimClock(speed=self.scenario.clock_speed)
            sim = Simulator(self.scenario, clock, DEFAULT_ACCOUNT_ID)
            sim.load(self.scenario)
            extras = addons.install(sim, self.scenario)
            injector = FaultInjector(self.scenario.faults, self.scenario.seed)
            call_log = CallLog()
            control = Control(sim, injector, call_log)
            extras.register(control)
            app = SandboxApp(
                sim,
                injector,
                control,
                DomainDispatcherApplication(create_backend_app),
                call_log,
            )
            self._map = {}
            self._server = waitress.server.create_server(
                _SimulatedDate(app, clock),
                map=self._map,
                host=self._host,
                port=self._port,
                threads=_THREADS,
                connection_limit=_CONNECTION_LIMIT,
                channel_timeout=_IDLE_SECONDS,
                ident="sandbox",
            )
        except BaseException:
            if extras is not None:
                extras.close()
            _ACTIVE.release()
            raise
        self._sim, self._injector, self._call_log = sim, injector, call_log
        self._addons = extras
        self._thread = threading.Thread(
            target=self._server.run,
            name="ecsop-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        server, connections = self._server, self._map

        def close_all() -> None:  # on the event loop's thread, as waitress requires
            for dispatcher in list(connections.values()):
                dispatcher.close()

        # waitress's own order (``MultiSocketServer.close``): the workers finish first,
        # for a worker finishing a request pulls the loop's trigger.
        server.task_dispatcher.shutdown(timeout=5)
        if self._thread is not None and self._thread.is_alive():
            server.trigger.pull_trigger(close_all)
            self._thread.join(timeout=10)
        else:
            close_all()
        if self._addons is not None:
            self._addons.close()
        self._server = None
        self._thread = None
        _ACTIVE.release()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        return int(self._server.effective_port)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def simulator(self) -> Simulator:
        if self._sim is None:
            raise RuntimeError("the sandbox was never started")
        return self._sim

    @property
    def clock(self) -> SimClock:
        return self.simulator.clock

    @property
    def faults(self) -> FaultInjector:
        if self._injector is None:
            raise RuntimeError("the sandbox was never started")
        return self._injector

    def advance(self, seconds: float) -> float:
        """Step the clock and run the simulation up to the new now (for tests)."""
        self.clock.advance(seconds)
        return self.simulator.sync()


def main(scenario_path: str, port: int) -> int:
    """Serve until SIGINT or SIGTERM (``ecsop sandbox --scenario FILE --port PORT``)."""
    try:
        scenario = load_scenario(scenario_path)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with SandboxServer(scenario, port=port) as server:
            count = len(server.simulator.services)
            print(
                f"ecsop sandbox: {server.endpoint_url} ({count} services, "
                f"clock x{scenario.clock_speed}); control API at {server.endpoint_url}/_sandbox/",
                flush=True,
            )
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _fault(call: protocol.Call, fault: Fault, start_response: StartResponse) -> Iterable[bytes]:
    answer = (
        protocol.throttling(call)
        if fault.status == 400
        else protocol.server_error(call, fault.status)
    )
    start_response(_status(answer.status), answer.headers)
    return [answer.body]


def _discard(
    status: str, headers: list[tuple[str, str]], exc_info: Any = None
) -> Callable[[bytes], object]:
    """A ``start_response`` for an answer nobody will receive."""
    return lambda data: None


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = stream.read(int(length))
    elif environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked" or environ.get(
        "wsgi.input_terminated"
    ):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return bytes(body)


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def _status(code: int) -> str:
    from http import HTTPStatus

    return f"{code} {HTTPStatus(code).phrase}"


def _json(start_response: StartResponse, status: int, payload: dict[str, Any]) -> list[bytes]:
    data = json.dumps(payload).encode()
    start_response(
        _status(status), [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]
