"""What a running sandbox adds around the simulator: ECR images, app metrics, ECS events.

``SandboxServer`` calls ``install`` once the scenario is loaded, hands the
control API to ``Addons.register`` and calls ``Addons.close`` when it stops.
Each add-on owns its module; this one wires them and serves their control
routes (``docs/sandbox.md``, "The control API"):

- ``GET /_sandbox/ecr``, ``POST /_sandbox/ecr`` (``ecr_images``);
- ``GET /_sandbox/metrics``, ``POST /_sandbox/metrics`` (``app_metrics``);
- ``GET /_sandbox/listeners`` (``listener_endpoints``).
- ``GET /_sandbox/events``, ``POST /_sandbox/events`` (``ecs_eventbridge``).
"""

from __future__ import annotations

from typing import Any

from ecsop.sandbox import ecs_eventbridge, metric_math
from ecsop.sandbox.app_metrics import AppMetrics
from ecsop.sandbox.control import Control, ControlError
from ecsop.sandbox.ecr_images import EcrImages, parse
from ecsop.sandbox.listener_endpoints import ListenerEndpoints
from ecsop.sandbox.scenario import ImageBehaviour, Scenario
from ecsop.sandbox.simulator import Simulator


class Addons:
    def __init__(self, sim: Simulator, scenario: Scenario) -> None:
        self._sim = sim
        self.ecr = EcrImages(sim.account_id, sim.catalog, sim.lock)
        self.ecr.add_all([*scenario.images, *(c.image for c in scenario.commands)])
        from moto.cloudwatch.models import cloudwatch_backends

        metric_math.install(cloudwatch_backends[sim.account_id][sim.region])
        with sim.lock:
            self.metrics = AppMetrics(sim, scenario.metrics)
            sim.extensions.append(self.metrics)
            self.metrics.advance_to(sim.now)
        self.listeners = ListenerEndpoints(sim, scenario)
        self.events = ecs_eventbridge.install(sim, scenario.events, scenario.seed)

    def register(self, control: Control) -> None:
        control.route("GET", "ecr", self._get_ecr)
        control.route("POST", "ecr", self._post_ecr)
        control.route("GET", "metrics", self._get_metrics)
        control.route("POST", "metrics", self._post_metrics)
        control.route("GET", "listeners", lambda _: self.listeners.describe())
        control.on_images.append(self._images_added)
        self.events.register(control)

    def close(self) -> None:
        self.events.close()
        self.metrics.close()
        self.listeners.close()

    # -- app metrics -------------------------------------------------------
    def _get_metrics(self, _: dict[str, Any]) -> dict[str, Any]:
        with self._sim.lock:
            self._sim.sync()
            return {
                "fileSdPath": self.metrics.file_sd_path,
                "requestsPerSecond": self.metrics.options.requests_per_second,
                "cloudWatchNamespace": self.metrics.options.cloud_watch_namespace,
                "targets": self.metrics.targets(),
            }

    def _post_metrics(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{"fileSdPath": path or null}``: where to keep the file-SD file from now."""
        unknown = set(payload) - {"fileSdPath"}
        if unknown or "fileSdPath" not in payload:
            raise ControlError(400, "give fileSdPath (a file path, or null: no file)")
        path = payload["fileSdPath"]
        if path is not None and not isinstance(path, str):
            raise ControlError(400, "fileSdPath is a string or null")
        with self._sim.lock:
            self._sim.sync()
            self.metrics.set_file_sd_path(path)
        return self._get_metrics({})

    # -- ECR ---------------------------------------------------------------
    def _images_added(self, images: dict[str, ImageBehaviour]) -> None:
        self.ecr.add_all(images)

    def _get_ecr(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"images": self.ecr.references()}

    def _post_ecr(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{"add": [reference...], "remove": [reference...]}``: ECR digest URIs."""
        unknown = set(payload) - {"add", "remove"}
        if unknown:
            raise ControlError(400, f"unknown field(s) {sorted(unknown)}; use add, remove")
        changes = []
        for verb in ("add", "remove"):
            references = payload.get(verb, [])
            if not isinstance(references, list):
                raise ControlError(400, f"{verb} is a list of image references")
            for reference in references:
                image = parse(str(reference))
                if image is None:
                    raise ControlError(
                        400,
                        f"{reference!r} is not an ECR image URI pinned by digest "
                        "(<account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:<digest>)",
                    )
                changes.append((verb, image))
        for verb, image in changes:
            if verb == "add":
                self.ecr.add(image)
            elif not self.ecr.remove(image):
                raise ControlError(404, f"ECR does not hold {image.reference}")
        return self._get_ecr({})


def install(sim: Simulator, scenario: Scenario) -> Addons:
    return Addons(sim, scenario)
