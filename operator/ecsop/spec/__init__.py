"""The desired state: the ServiceRelease model, reading a spec directory, watching it.

May import: nothing of ecsop but itself. Everything else imports it: the spec is
the contract users write against. ``model`` is pure; ``loader`` reads files and
runs ``git rev-parse``; ``watcher`` turns file events into "reload" calls.
"""
