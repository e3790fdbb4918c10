"""ecsop: a GitOps operator for Amazon ECS.

Packages are the layers (``docs/design.md``), each importing only those below:
``cli`` -> ``controller`` -> ``observability`` | ``runtime`` | ``probes`` ->
``aws`` -> ``decision`` -> ``spec``. ``sandbox`` (the ECS simulator) stands
apart: a test double only the CLI starts, behind ``--sandbox``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ecsop")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
