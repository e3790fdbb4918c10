"""The ECS rollout simulator and the AWS-compatible sandbox endpoint.

A test double, never on the daemon's production path except behind
``--sandbox``.  Modules, one concept each:

- ``scenario``: the scenario file (pydantic models, ``load_scenario``)
- ``clock``: simulated time (``SimClock``)
- ``behaviours``: image -> behaviour -> a task's plan
- ``model``: clusters, task definitions, services, deployments, tasks
- ``lifecycle``: one task's life; ``rollout``: the service scheduler
- ``breaker`` (failed tasks, circuit breaker, rollbacks), ``throttle`` (launch
  backoff), ``placement`` (capacity), ``deployment_alarms`` (alarm reads, bake time)
- ``service_deployments``: service deployments and revisions (the history API)
- ``traffic_shift``: the BLUE_GREEN, CANARY and LINEAR scheduler (stages,
  weights, rollbacks); ``shift_plan`` (blue, green, the stages),
  ``traffic_config`` (what ECS accepts), ``listener_rules`` (ALB rules and
  weights in moto), ``lifecycle_hooks`` (hook invocations and answers)
- ``simulator``: state, timers and the lock
- ``ecs_api`` (dispatch), ``ecs_resources``, ``ecs_services``,
  ``ecs_service_deployments``, ``wire_ecs``, ``wire_service_deployments``: the ECS API
- ``loadbalancing`` / ``alarms``: target health and alarm state in moto
- ``oneoff`` (one-off tasks and what their commands do), ``ecs_run_task``
  (RunTask, and one-off tasks in StopTask/ListTasks/DescribeTasks)
- ``protocol`` / ``faults``: recognising calls, injecting errors, counting calls;
  ``token_bucket`` and ``ecs_rates``: token-bucket throttling, ECS's rates
- ``ecr_images``: the scenario's ECR images in moto's ECR
- ``traffic``, ``app_metrics``, ``metrics_endpoints``: serving tasks' Prometheus
  endpoints, file SD and CloudWatch data; ``metric_math``: GetMetricData math
- ``scenario_extras``: the ``commands`` and ``metrics`` scenario sections
- ``ecs_eventbridge``: ECS's task, service action and deployment events on
  moto's EventBridge (late, lost or duplicated as the scenario says)
- ``control``: the ``/_sandbox/`` API; ``addons``: the add-ons around the
  simulator and their routes; ``server``: ``SandboxServer`` and ``main``
- ``demo``: ``ecsop run --sandbox`` (in-process server, boto3 pointed at it);
  ``demo.yaml`` is its scenario

Importing this package is cheap; moto is imported when a server starts.
"""

from ecsop.sandbox.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario"]
