"""The pure decision: (spec, observed state, recorded history, now) -> one action.

May import: ``ecsop.spec`` and itself, never anything that performs I/O (no
AWS, no clock, no files): import-linter enforces it, so a module added here is
pure from the day it is added. ``ecs_state`` and ``observation`` are the
input values, ``memory`` the history ecsop keeps in AWS tags, ``situation``
classifies a pass, ``decide`` chooses, ``actions`` is what it can choose.
"""
