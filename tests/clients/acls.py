"""Kafka ACLs through confluent-kafka (librdkafka) over SASL_SSL with SCRAM-SHA-512 (over
PLAINTEXT, as User:ANONYMOUS, when CA, USER and PASSWORD are `-`):

  acls.py BOOTSTRAP CA USER PASSWORD grant PRINCIPAL topic:NAME|group:NAME...
      creates ALLOW READ on each resource for PRINCIPAL; prints `GRANTED <n>`
  acls.py BOOTSTRAP CA USER PASSWORD create 'TYPE|NAME|PATTERN|PRINCIPAL|OPERATION|PERMISSION'...
      creates each ACL (Kafka's enum names); prints `CREATED <n>`
  acls.py BOOTSTRAP CA USER PASSWORD describe
      prints `ACL <type> <name> <pattern> <principal> <host> <operation> <permission>` lines
  acls.py BOOTSTRAP CA USER PASSWORD consume TOPIC GROUP COUNT
      reads partition 0 from the start with a consumer of GROUP (subscribe, commits);
      prints `VALUES <json list>` or `ERROR <KafkaError name>` on the first error
"""

import json
import sys

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)


def main():
    bootstrap, ca, user, password, command = sys.argv[1:6]
    args = sys.argv[6:]
    config = {"bootstrap.servers": bootstrap}
    if user != "-":
        config.update({
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": ca,
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": password,
        })
    if command == "grant":
        principal, resources = args[0], args[1:]
        admin = AdminClient(config)
        types = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
        bindings = [
            AclBinding(types[kind], name, ResourcePatternType.LITERAL, principal, "*",
                       AclOperation.READ, AclPermissionType.ALLOW)
            for kind, name in (r.split(":", 1) for r in resources)
        ]
        for f in admin.create_acls(bindings, request_timeout=30).values():
            f.result()
        print(f"GRANTED {len(bindings)}")
    elif command == "create":
        admin = AdminClient(config)
        bindings = []
        for spec in args:
            rtype, name, pattern, principal, operation, permission = spec.split("|")
            bindings.append(AclBinding(ResourceType[rtype], name, ResourcePatternType[pattern],
                                       principal, "*", AclOperation[operation],
                                       AclPermissionType[permission]))
        for f in admin.create_acls(bindings, request_timeout=30).values():
            f.result()
        print(f"CREATED {len(bindings)}")
    elif command == "describe":
        admin = AdminClient(config)
        filt = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                AclOperation.ANY, AclPermissionType.ANY)
        for b in admin.describe_acls(filt, request_timeout=30).result():
            print("ACL", b.restype.name, b.name, b.resource_pattern_type.name, b.principal,
                  b.host, b.operation.name, b.permission_type.name)
    elif command == "consume":
        topic, group, count = args[0], args[1], int(args[2])
        consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest",
                             "enable.auto.commit": False})
        consumer.subscribe([topic])
        values = []
        try:
            for _ in range(600):
                msg = consumer.poll(0.1)
                if msg is None:
                    continue
                if msg.error():
                    print("ERROR", msg.error().name())
                    return
                values.append(msg.value().decode())
                if len(values) == count:
                    consumer.commit(asynchronous=False)
                    break
        except KafkaException as e:
            print("ERROR", e.args[0].name())
            return
        finally:
            consumer.close()
        print("VALUES", json.dumps(values))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
