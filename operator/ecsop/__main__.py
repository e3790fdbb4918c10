"""``python -m ecsop``: the same entry point as the ``ecsop`` console script."""

from ecsop.cli import main

raise SystemExit(main())
