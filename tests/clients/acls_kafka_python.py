"""Kafka ACLs through kafka-python's KafkaAdminClient (plaintext, as User:ANONYMOUS):

  acls_kafka_python.py BOOTSTRAP

creates a PREFIXED and a LITERAL ACL, lists them, deletes the PREFIXED one by filter and
lists again; prints one line per step:
  CREATED <n succeeded> <n failed>
  LISTED <sorted 'TYPE:name:PATTERN:principal:host:OPERATION:PERMISSION' items, ';'-joined>
  DELETED <n matched>
"""

import sys

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)


def listed(admin, pattern_filter):
    acls, error = admin.describe_acls(
        ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                  permission_type=ACLPermissionType.ANY, resource_pattern=pattern_filter))
    items = sorted(
        f"{a.resource_pattern.resource_type.name}:{a.resource_pattern.resource_name}:"
        f"{a.resource_pattern.pattern_type.name}:{a.principal}:{a.host}:"
        f"{a.operation.name}:{a.permission_type.name}"
        for a in acls)
    return ";".join(items), error


def main():
    admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=30000)
    acls = [
        ACL(principal="User:alice", host="*", operation=ACLOperation.READ,
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(ResourceType.TOPIC, "orders",
                                             ACLResourcePatternType.PREFIXED)),
        ACL(principal="User:bob", host="10.0.0.1", operation=ACLOperation.WRITE,
            permission_type=ACLPermissionType.DENY,
            resource_pattern=ResourcePattern(ResourceType.TOPIC, "payments",
                                             ACLResourcePatternType.LITERAL)),
    ]
    result = admin.create_acls(acls)
    print("CREATED", len(result["succeeded"]), len(result["failed"]))
    every_topic = ResourcePatternFilter(ResourceType.TOPIC, None, ACLResourcePatternType.ANY)
    items, error = listed(admin, every_topic)
    print("LISTED", items, error.__name__)
    prefixed = ResourcePatternFilter(ResourceType.TOPIC, None, ACLResourcePatternType.PREFIXED)
    deleted = admin.delete_acls([ACLFilter(principal=None, host=None,
                                           operation=ACLOperation.ANY,
                                           permission_type=ACLPermissionType.ANY,
                                           resource_pattern=prefixed)])
    print("DELETED", sum(len(matched) for _, matched, _ in deleted))
    items, error = listed(admin, every_topic)
    print("LISTED", items, error.__name__)


if __name__ == "__main__":
    main()
