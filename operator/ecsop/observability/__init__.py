"""What people see: Prometheus metrics, per-release status, the HTTP endpoint, logs.

May import: ``ecsop.decision`` (for the words: phases, reasons) and ``ecsop.spec``.
"""
