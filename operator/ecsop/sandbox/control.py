"""The sandbox's own control API under ``/_sandbox/``, in JSON.

Tests and benchmarks in another process drive the simulation through it: read
and step the clock, change its speed, replace fault rates, read and reset the
per-operation call counts, read the call log (each call with its wall-clock and
simulated arrival time), add image behaviours while the sandbox runs, and
read the lifecycle hook invocations (or change what hook targets answer).
The routes are documented in ``docs/sandbox.md``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from pydantic import TypeAdapter, ValidationError

from ecsop.sandbox.faults import CallLog, FaultInjector
from ecsop.sandbox.scenario import Faults, HookBehaviour, ImageBehaviour
from ecsop.sandbox.simulator import Simulator

_IMAGES = TypeAdapter(dict[str, ImageBehaviour])
Handler = Callable[[dict[str, Any]], dict[str, Any]]
_HOOKS = TypeAdapter(dict[str, HookBehaviour])


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Control:
    def __init__(
        self, sim: Simulator, injector: FaultInjector, call_log: CallLog | None = None
    ) -> None:
        self._sim = sim
        self._injector = injector
        self._call_log = call_log or CallLog()
        self.on_images: list[Callable[[dict[str, ImageBehaviour]], None]] = []
        """Called with the images ``POST /_sandbox/images`` added (``ecr_images``)."""
        self._routes: dict[tuple[str, str], Handler] = {
            ("GET", "clock"): self._get_clock,
            ("POST", "clock"): self._set_clock,
            ("GET", "faults"): self._get_faults,
            ("POST", "faults"): self._set_faults,
            ("GET", "calls"): self._get_calls,
            ("POST", "calls/reset"): self._reset_calls,
            ("GET", "calls/log"): self._get_call_log,
            ("GET", "images"): self._get_images,
            ("POST", "images"): self._add_images,
            ("GET", "capacity"): self._get_capacity,
            ("POST", "capacity"): self._set_capacity,
            ("GET", "hooks"): self._get_hooks,
            ("POST", "hooks"): self._set_hooks,
            ("GET", "health"): self._health,
        }

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``method /_sandbox/<path>`` with ``handler`` (``addons``)."""
        self._routes[(method, path)] = handler

    def handle(
        self, method: str, route: str, body: bytes, query: str = ""
    ) -> tuple[int, dict[str, Any]]:
        handler = self._routes.get((method, route.strip("/")))
        if handler is None:
            return 404, {"error": f"no route {method} /_sandbox/{route}"}
        try:
            payload = json.loads(body) if body.strip() else {}
            if not isinstance(payload, dict):
                raise ControlError(400, "the request body must be a JSON object")
            if method == "GET":  # a GET's parameters are its query string, each a list
                payload = parse_qs(query)
            return 200, handler(payload)
        except json.JSONDecodeError as exc:
            return 400, {"error": f"invalid JSON: {exc}"}
        except ValidationError as exc:
            return 400, {"error": str(exc)}
        except (ControlError, ValueError) as exc:
            return getattr(exc, "status", 400), {"error": str(exc)}

    def _get_clock(self, _: dict[str, Any]) -> dict[str, Any]:
        now = self._sim.sync()
        return {"now": now, "speed": self._sim.clock.speed, "wall": time.time()}

    def _set_clock(self, payload: dict[str, Any]) -> dict[str, Any]:
        unknown = set(payload) - {"advance", "speed"}
        if unknown:
            raise ControlError(400, f"unknown field(s) {sorted(unknown)}; use advance, speed")
        if "speed" in payload:
            self._sim.clock.speed = float(payload["speed"])
        if "advance" in payload:
            self._sim.clock.advance(float(payload["advance"]))
        return self._get_clock({})

    def _get_faults(self, _: dict[str, Any]) -> dict[str, Any]:
        return self._injector.faults.model_dump(by_alias=True)

    def _set_faults(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._injector.faults = Faults.model_validate(payload)
        return self._get_faults({})

    def _get_calls(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"calls": self._injector.calls()}

    def _reset_calls(self, _: dict[str, Any]) -> dict[str, Any]:
        self._injector.reset_calls()
        self._call_log.reset()
        return {"calls": []}

    def _get_call_log(self, query: dict[str, Any]) -> dict[str, Any]:
        """``?operation=A&operation=B&caller=K&after=SEQ&limit=N``: each call, oldest first."""
        unknown = set(query) - {"operation", "caller", "after", "limit"}
        if unknown:
            raise ControlError(
                400, f"unknown parameter(s) {sorted(unknown)}; use operation, caller, after, limit"
            )
        limit = int(query["limit"][-1]) if "limit" in query else None
        entries = self._call_log.entries(
            operations=frozenset(query.get("operation", ())),
            callers=frozenset(query.get("caller", ())),
            after=int(query.get("after", ["0"])[-1]),
            limit=limit,
        )
        return {"calls": [entry.to_json() for entry in entries]}

    def _get_images(self, _: dict[str, Any]) -> dict[str, Any]:
        with self._sim.lock:
            images = self._sim.catalog.snapshot()
        return {
            "images": {
                ref: b.model_dump(by_alias=True, exclude_none=True) for ref, b in images.items()
            }
        }

    def _add_images(self, payload: dict[str, Any]) -> dict[str, Any]:
        images = _IMAGES.validate_python(payload.get("images", payload))
        with self._sim.lock:
            self._sim.catalog.update(images)
        for hook in self.on_images:
            hook(images)
        return self._get_images({})

    def _get_capacity(self, _: dict[str, Any]) -> dict[str, Any]:
        with self._sim.lock:
            return {"capacity": {name: {"maxTasks": n} for name, n in self._sim.capacity.items()}}

    def _set_capacity(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{"cluster": name, "maxTasks": n or null}``: what the cluster can place from now."""
        unknown = set(payload) - {"cluster", "maxTasks"}
        if unknown or "cluster" not in payload:
            raise ControlError(400, "give cluster and maxTasks (a number, or null: unlimited)")
        limit = payload.get("maxTasks")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ControlError(400, "maxTasks is a number >= 0, or null")
        with self._sim.lock:
            cluster = self._sim.clusters.get(str(payload["cluster"]))
            if cluster is None:
                raise ControlError(404, f"no cluster {payload['cluster']!r}")
            self._sim.capacity[cluster.name] = limit
            for service in self._sim.services_in(cluster):
                self._sim.wake(service, self._sim.now)
        return self._get_capacity({})

    def _get_hooks(self, query: dict[str, Any]) -> dict[str, Any]:
        """``?serviceDeploymentArn=ARN&after=SEQ``: behaviours, and invocations oldest first."""
        unknown = set(query) - {"serviceDeploymentArn", "after"}
        if unknown:
            raise ControlError(
                400, f"unknown parameter(s) {sorted(unknown)}; use serviceDeploymentArn, after"
            )
        arns = set(query.get("serviceDeploymentArn", ()))
        after = int(query.get("after", ["0"])[-1])
        self._sim.sync()
        with self._sim.lock:
            behaviours = self._sim.hooks.snapshot()
            invocations = [
                i.to_json()
                for i in self._sim.hooks.invocations()
                if i.seq > after and (not arns or i.payload["resourceArn"] in arns)
            ]
        return {
            "hooks": {arn: b.model_dump(by_alias=True) for arn, b in behaviours.items()},
            "invocations": invocations,
        }

    def _set_hooks(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{"hooks": {arn: behaviour}}``: what these hook targets answer from now."""
        hooks = _HOOKS.validate_python(payload.get("hooks", payload))
        with self._sim.lock:
            self._sim.hooks.update(hooks)
        return self._get_hooks({})

    def _health(self, _: dict[str, Any]) -> dict[str, Any]:
        with self._sim.lock:
            return {"ok": True, "services": len(self._sim.services)}
