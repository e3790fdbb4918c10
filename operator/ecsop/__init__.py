"""ecsop: a GitOps operator for Amazon ECS.

The package is laid out one concept per module (see ``shared/DESIGN.md``):
``spec`` and ``source`` own the desired state, ``reconciler`` the decision,
``ecs`` the AWS gateway, ``controller`` the loop, ``sandbox`` the simulator.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ecsop")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
