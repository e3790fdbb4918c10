"""The ``ecsop`` command line: one module per verb, ``app`` declares them all.

May import: anything of ecsop; ``ecsop.sandbox`` only behind ``--sandbox``.
"""

from ecsop.cli.app import main

__all__ = ["main"]
