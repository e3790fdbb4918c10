"""The generic machinery of a controller: the work queue, rate limiters, clocks.

May import: nothing of ecsop outside itself. It knows queue items are strings
and nothing about releases, ECS or specs, like client-go's workqueue.
"""
