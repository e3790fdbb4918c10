"""The generic machinery of a controller: the work queue, rate limiters, clocks,
shard leases (client-go's leader election, per shard) and the write fence.

May import: nothing of ecsop outside itself. It knows queue items are strings,
shards integers and replicas strings, and nothing about releases, ECS, specs or
DynamoDB, like client-go's workqueue and leaderelection.
"""
