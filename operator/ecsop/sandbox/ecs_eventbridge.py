"""ECS's events on EventBridge: what the simulator publishes as tasks and deployments change.

ECS sends three kinds of events a deployment tool listens to to the account's
default event bus, ``source`` ``aws.ecs`` ("Amazon ECS events",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_cwe_events.html):

- ``ECS Task State Change`` ("Amazon ECS task state change events",
  ``ecs_task_events.html``) whenever a task's ``lastStatus`` or
  ``desiredStatus`` changes, or one of its containers changes state; ``detail``
  resembles DescribeTasks' task (``clusterArn``, ``group`` ``service:<name>``,
  ``startedBy`` the deployment id, ``lastStatus``, ``desiredStatus``,
  ``stopCode``, ``stoppedReason``, ``containers`` with their ``exitCode``,
  ``version``), timestamps as ISO strings; ``resources`` is the task ARN;
- ``ECS Service Action`` ("Amazon ECS service action events",
  ``ecs_service_events.html``): ``SERVICE_STEADY_STATE``,
  ``SERVICE_TASK_START_IMPAIRED`` (the launch throttle),
  ``SERVICE_TASK_PLACEMENT_FAILURE``; ``detail`` has ``eventType``,
  ``eventName``, ``clusterArn``, ``createdAt``; ``resources`` the service ARN;
- ``ECS Deployment State Change`` ("Amazon ECS service deployment state change
  events", ``ecs_service_deployment_events.html``):
  ``SERVICE_DEPLOYMENT_IN_PROGRESS`` (a deployment, or a rollback, starts),
  ``SERVICE_DEPLOYMENT_COMPLETED``, ``SERVICE_DEPLOYMENT_FAILED``; ``detail``
  has ``eventType``, ``eventName``, ``deploymentId``, ``updatedAt`` and
  ``reason`` (the deployment's ``rolloutStateReason``); ``resources`` the
  service ARN.

The simulator tells this module of every change (``Simulator.listeners``,
``new_task_hooks``), and each event is put on moto's default event bus with
its own simulated ``time`` (by a sender thread with a running clock, so API
calls never wait for EventBridge's work), so rules created through the EventBridge API
deliver it to their targets (an SQS queue) as AWS would. The scenario's
``events`` section (and ``POST /_sandbox/events``) makes delivery late,
lossy, duplicated or out of order, drawn from a generator seeded by the
scenario's seed.

With a running clock a thread keeps the simulation moving between API calls
(a task crashes when it crashes, not when the next request arrives), but only
while some rule exists on the default bus: nobody listening, nothing to do.

Not published: one-off (RunTask) tasks' state changes, container instance
events, and the service action events of features the sandbox lacks
(capacity providers, service discovery, daemon services). A task event is sent
for ``lastStatus``/``desiredStatus``/container changes, not for health status
changes (ECS documents none).
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import re
import threading
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ecsop.sandbox import events, wire_ecs
from ecsop.sandbox.control import Control, ControlError
from ecsop.sandbox.model import Deployment, Service, Task, TaskStatus
from ecsop.sandbox.scenario_extras import EventsOptions

if TYPE_CHECKING:
    from ecsop.sandbox.simulator import Simulator

SOURCE = "aws.ecs"
TASK_STATE_CHANGE = "ECS Task State Change"
SERVICE_ACTION = "ECS Service Action"
DEPLOYMENT_STATE_CHANGE = "ECS Deployment State Change"

RECENT = 10_000
"""Events kept for ``GET /_sandbox/events`` (delivered, dropped or pending)."""
IDLE_TICK = 0.25
"""Real seconds the delivery thread sleeps when no rule listens."""
MAX_TICK = 0.05
"""Real seconds it sleeps at most while rules listen (a clock speed change is seen
within this)."""

# The shapes of ``events``' service messages that are also ECS events on EventBridge.
_COMPLETED = re.compile(
    r"^\(service (?P<name>.+?)\) \(deployment (?P<id>\S+)\) deployment completed\.$"
)
_FAILED = re.compile(r"^\(service (?P<name>.+?)\) \(deployment (?P<id>\S+)\) deployment failed: ")
_ROLLING_BACK = re.compile(r"^\(service (?P<name>.+?)\) rolling back to deployment (?P<id>\S+)\.$")
_UNPLACEABLE = re.compile(r"^\(service (?P<name>.+?)\) was unable to place a task")


def iso(epoch: float) -> str:
    """ISO 8601 with milliseconds, as ECS writes timestamps inside an event's ``detail``."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class EcsEventBridge:
    """Turns simulator changes into ECS events and delivers them (late, lost, twice)."""

    def __init__(self, sim: Simulator, options: EventsOptions, seed: int) -> None:
        self._sim = sim
        self.options = options
        self._rng = random.Random(f"ecs-events-{seed}")
        self._seen: dict[str, tuple[str, ...]] = {}
        """Task ARN -> the state last published for it (removed once STOPPED is)."""
        self._pending: list[tuple[float, int, dict[str, Any]]] = []
        """Delayed events: (due simulated time, sequence, PutEvents entry)."""
        self._sequence = itertools.count()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.counts = {
            "emitted": 0,
            "delivered": 0,
            "dropped": 0,
            "duplicated": 0,
            "undeliverable": 0,
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outbox: deque[dict[str, Any]] = deque()
        """Events to put on the bus, in order, by the sender thread: outside the
        simulator's lock, which every API call waits for (a running clock only)."""
        self._outbox_ready = threading.Condition(threading.Lock())
        self._sender: threading.Thread | None = None

    # -- wiring --------------------------------------------------------------
    def install(self) -> None:
        """Listen to the simulator and, with a running clock, keep it moving."""
        with self._sim.lock:
            self._sim.listeners.append(self)
            self._sim.new_task_hooks.append(self._launched)
            self._sim.extensions.append(self)
        self._thread = threading.Thread(target=self._run, name="ecs-events", daemon=True)
        self._thread.start()
        self._sender = threading.Thread(target=self._send, name="ecs-events-send", daemon=True)
        self._sender.start()

    def close(self) -> None:
        self._stop.set()
        with self._outbox_ready:
            self._outbox_ready.notify_all()
        for thread in (self._thread, self._sender):
            if thread is not None:
                thread.join()

    def register(self, control: Control) -> None:
        control.route("GET", "events", self._get)
        control.route("POST", "events", self._post)

    # -- what the simulator tells ----------------------------------------------
    def _launched(self, service: Service, task: Task) -> None:
        self.task_changed(service, task, task.created_at)

    def task_changed(self, service: Service, task: Task, at: float) -> None:
        state = (
            str(task.last_status),
            task.desired_status,
            *(c.last_status for c in task.containers),
        )
        if self._seen.get(task.arn) == state:
            return
        if task.last_status is TaskStatus.STOPPED:
            self._seen.pop(task.arn, None)  # nothing changes after STOPPED
        else:
            self._seen[task.arn] = state
        if not self._listening():
            self.counts["emitted"] += 1  # nobody to deliver to: spare building the detail
            return
        definition = self._sim.task_definitions_by_arn.get(task.task_definition_arn)
        detail = _iso_times(wire_ecs.task(task, definition, include_tags=False))
        detail["updatedAt"] = iso(at)
        self._emit(TASK_STATE_CHANGE, [task.arn], detail, at)

    def deployment_started(self, service: Service, deployment: Deployment, at: float) -> None:
        if deployment.service_deployment.target_deployment is not deployment:
            return  # a rollback: announced with its reason by the "rolling back" event below
        self._deployment(service, deployment, "SERVICE_DEPLOYMENT_IN_PROGRESS", "INFO", at)

    def service_event(self, service: Service, message: str, at: float) -> None:
        if message == events.steady_state(service.name):
            self._service_action(service, "SERVICE_STEADY_STATE", "INFO", at)
        elif message == events.unable_to_start_consistently(service.name):
            self._service_action(service, "SERVICE_TASK_START_IMPAIRED", "WARN", at)
        elif _UNPLACEABLE.match(message):
            reason = "RESOURCE:FARGATE" if service.launch_type == "FARGATE" else "RESOURCE:CPU"
            self._service_action(
                service, "SERVICE_TASK_PLACEMENT_FAILURE", "ERROR", at, reason=reason
            )
        elif found := _COMPLETED.match(message):
            self._deployment_by_id(service, found["id"], "SERVICE_DEPLOYMENT_COMPLETED", "INFO", at)
        elif found := _FAILED.match(message):
            self._deployment_by_id(service, found["id"], "SERVICE_DEPLOYMENT_FAILED", "ERROR", at)
        elif _ROLLING_BACK.match(message):
            # The rollback deployment is the PRIMARY now (a new one for rolling updates,
            # blue again for blue/green); its reason names the deployment rolled back to.
            self._deployment(service, service.primary, "SERVICE_DEPLOYMENT_IN_PROGRESS", "INFO", at)

    def _deployment_by_id(
        self, service: Service, deployment_id: str, name: str, kind: str, at: float
    ) -> None:
        found = next((d for d in service.deployments if d.id == deployment_id), None)
        if found is not None:
            self._deployment(service, found, name, kind, at)

    def _deployment(
        self, service: Service, deployment: Deployment, name: str, kind: str, at: float
    ) -> None:
        detail = {
            "eventType": kind,
            "eventName": name,
            "deploymentId": deployment.id,
            "updatedAt": iso(at),
            "reason": deployment.rollout_state_reason,
        }
        self._emit(DEPLOYMENT_STATE_CHANGE, [service.arn], detail, at)

    def _service_action(
        self, service: Service, name: str, kind: str, at: float, **extra: str
    ) -> None:
        detail = {
            "eventType": kind,
            "eventName": name,
            "clusterArn": service.cluster.arn,
            "createdAt": iso(at),
            **extra,
        }
        self._emit(SERVICE_ACTION, [service.arn], detail, at)

    # -- delivery ---------------------------------------------------------------
    def _emit(
        self, detail_type: str, resources: list[str], detail: dict[str, Any], at: float
    ) -> None:
        self.counts["emitted"] += 1
        if not self._listening():
            return
        entry = {
            "Source": SOURCE,
            "DetailType": detail_type,
            "Detail": detail,  # serialised when sent
            "Resources": resources,
            "Time": at,
        }
        options = self.options
        dropped = options.drop_rate > 0 and self._rng.random() < options.drop_rate
        twice = options.duplicate_rate > 0 and self._rng.random() < options.duplicate_rate
        due = at + options.delay_seconds
        if options.jitter_seconds > 0:
            due += self._rng.uniform(0, options.jitter_seconds)
        self.recent.append(_summary(entry, detail, dropped=dropped, due=due))
        if dropped:
            self.counts["dropped"] += 1
            return
        copies = 2 if twice else 1
        self.counts["duplicated"] += copies - 1
        if due <= self._sim.now:
            for _ in range(copies):
                self._deliver(entry)
            return
        for _ in range(copies):
            heapq.heappush(self._pending, (due, next(self._sequence), entry))

    def advance_to(self, until: float) -> None:
        """Deliver the delayed events due by ``until`` (the simulator's extension hook)."""
        while self._pending and self._pending[0][0] <= until:
            _, _, entry = heapq.heappop(self._pending)
            self._deliver(entry)

    def _deliver(self, entry: dict[str, Any]) -> None:
        """Send the event: at once with a frozen clock (tests read right after stepping
        it), else through the sender thread, in order, without the simulator's lock."""
        if self._sim.clock.speed <= 0:
            self._put(entry)
            return
        with self._outbox_ready:
            self._outbox.append(entry)
            self._outbox_ready.notify()

    def _send(self) -> None:
        while True:
            with self._outbox_ready:
                while not self._outbox and not self._stop.is_set():
                    self._outbox_ready.wait()
                if not self._outbox:
                    return
                entry = self._outbox.popleft()
            self._put(entry)

    def _put(self, entry: dict[str, Any]) -> None:
        """Put the event on the bus. A target that cannot take it (a deleted queue) loses
        it: EventBridge retries a failed delivery, then drops it; ECS never notices."""
        try:
            self._backend().put_events([{**entry, "Detail": json.dumps(entry["Detail"])}])
        except Exception:
            self.counts["undeliverable"] += 1
        else:
            self.counts["delivered"] += 1

    def _backend(self) -> Any:
        from moto.events.models import events_backends

        return events_backends[self._sim.account_id][self._sim.region]

    def _listening(self) -> bool:
        """Whether any rule exists on the default bus (else nobody can receive an event)."""
        try:
            bus = self._backend().event_buses.get("default")
        except Exception:  # moto not importable or not set up: nobody listens
            return False
        return bool(bus is not None and bus.rules)

    # -- the clock ----------------------------------------------------------------
    def _run(self) -> None:
        """Keep the simulation (and delayed deliveries) moving in real time while rules listen."""
        while not self._stop.is_set():
            speed = self._sim.clock.speed
            if speed <= 0 or not self._listening():
                self._stop.wait(IDLE_TICK)
                continue
            try:
                now = self._sim.sync()
            except Exception:  # the request path reports it (sync raises there too)
                self._stop.wait(IDLE_TICK)
                continue
            self._stop.wait(self._sleep(now, speed))

    def _sleep(self, now: float, speed: float) -> float:
        """Real seconds until the next thing due (a service step or a delayed event)."""
        due = [d for d in (self._sim.next_wake(), self._next_delivery()) if d is not None]
        if not due:
            return MAX_TICK
        return min(MAX_TICK, max(0.001, (min(due) - now) / speed))

    def _next_delivery(self) -> float | None:
        with self._sim.lock:
            return self._pending[0][0] if self._pending else None

    # -- control API ---------------------------------------------------------------
    def _get(self, query: dict[str, Any]) -> dict[str, Any]:
        """``?limit=N``: the options, the counts and the newest N events (default 100)."""
        unknown = set(query) - {"limit"}
        if unknown:
            raise ControlError(400, f"unknown parameter(s) {sorted(unknown)}; use limit")
        limit = int(query.get("limit", ["100"])[-1])
        self._sim.sync()
        with self._sim.lock:
            recent = list(self.recent)[-limit:] if limit > 0 else []
            return {
                "options": self.options.model_dump(by_alias=True),
                **self.counts,
                "pending": len(self._pending),
                "events": recent,
            }

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The scenario's ``events`` shape: how events are delivered from now on."""
        options = EventsOptions.model_validate(payload)
        with self._sim.lock:
            self.options = options
        return self._get({})


def _iso_times(task: dict[str, Any]) -> dict[str, Any]:
    """DescribeTasks' epoch timestamps as the ISO strings an event carries."""
    return {
        key: iso(value) if key.endswith("At") and isinstance(value, int | float) else value
        for key, value in task.items()
    }


def _summary(
    entry: dict[str, Any], detail: dict[str, Any], *, dropped: bool, due: float
) -> dict[str, Any]:
    what = detail.get("eventName") or f"{detail.get('lastStatus')}/{detail.get('desiredStatus')}"
    return {
        "time": entry["Time"],
        "due": due,
        "detailType": entry["DetailType"],
        "what": what,
        "resources": entry["Resources"],
        "dropped": dropped,
    }


def install(sim: Simulator, options: EventsOptions, seed: int) -> EcsEventBridge:
    bridge = EcsEventBridge(sim, options, seed)
    bridge.install()
    return bridge
