"""The AWS edge: boto3 clients, the ECS gateway, task definition cloning, the service cache.

May import: ``ecsop.decision``, ``ecsop.spec``, boto3 and botocore (the only
package that may). boto3's dicts never leave it: callers get ``ecsop.decision``
values and ``clients.AwsError``.
"""
