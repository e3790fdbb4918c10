"""The operator: the per-release reconcile pass, its executor and recorder, the daemon.

May import: every package below it (``runtime``, ``observability``, ``probes``,
``aws``, ``decision``, ``spec``), never ``ecsop.cli`` or ``ecsop.sandbox``.
"""
