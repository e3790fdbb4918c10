"""ecsop's benchmarks: reaction latency, AWS API cost and scale, side by side with baselines.

``python -m bench`` runs every scenario against the sandbox and writes
``bench/results/``; see ``bench/README.md``. Modules: ``harness`` (the
processes), ``fleet`` (scenarios and specs), ``baselines`` (the deploy-and-watch
script and the naive reconciler), one module per scenario (``trigger``,
``rollback``, ``steady``), ``report`` (tables and targets).
"""
