"""Reading health signals a rollout is judged by: target health, alarms, HTTP checks.

May import: ``ecsop.aws``, ``ecsop.decision``, ``ecsop.spec``. Probes turn the
outside world into ``decision.observation.Health``; they decide nothing.
"""
