"""Client quotas, set with kafka-python's AlterClientQuotas / DescribeClientQuotas and felt
by confluent-kafka (librdkafka) clients:

  client_quotas.py BOOTSTRAP alter [--validate-only] ENTITY KEY=VALUE|KEY= ...
  client_quotas.py BOOTSTRAP describe [--strict] [TYPE=NAME|TYPE=<default>|TYPE=* ...]
  client_quotas.py BOOTSTRAP produce TOPIC CLIENT_ID COUNT VALUE_BYTES
  client_quotas.py BOOTSTRAP consume TOPIC CLIENT_ID COUNT

ENTITY is `type=name[,type=name]`, a name `<default>` meaning the default entity;
`KEY=` removes the key. `alter` prints `ALTERED` or `ALTER-ERROR <code> <message>` per
entry; `describe` prints one `ENTRY <entity> <key>=<value> ...` line per entity (sorted)
or `DESCRIBE-ERROR <code> <message>`. `produce` writes COUNT records of VALUE_BYTES to
partition 0 and `consume` reads COUNT records from partition 0 of TOPIC, both as
CLIENT_ID, and print `DONE records=<n> throttled_ms=<largest throttle_time_ms reported
to throttle_cb> throttles=<how many>`. Exits 1 on anything else.
"""

import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.protocol.admin.client_quotas import (AlterClientQuotasRequest,
                                                DescribeClientQuotasRequest)

DEFAULT = "<default>"


def parse_entity(text):
    entity = []
    for part in text.split(","):
        kind, name = part.split("=", 1)
        entity.append((kind, None if name == DEFAULT else name))
    return entity


def shown(entity):
    return ",".join(f"{k}={DEFAULT if n is None else n}" for k, n in sorted(entity))


def alter(admin, args):
    validate_only = args[0] == "--validate-only"
    if validate_only:
        args = args[1:]
    entity = parse_entity(args[0])
    ops = []
    for op in args[1:]:
        key, value = op.split("=", 1)
        ops.append((key, float(value) if value else 0.0, value == ""))
    request = AlterClientQuotasRequest(entries=[(entity, ops)], validate_only=validate_only)
    response = admin._manager.run(lambda: admin._manager.send(request))
    for entry in response.entries:
        if entry.error_code:
            print(f"ALTER-ERROR {entry.error_code} {entry.error_message}")
        else:
            print("ALTERED")


def number(value):
    return str(int(value)) if value.is_integer() else str(value)


def describe(admin, args):
    strict = bool(args) and args[0] == "--strict"
    if strict:
        args = args[1:]
    components = []
    for c in args:
        kind, name = c.split("=", 1)
        if name == DEFAULT:
            components.append((kind, 1, None))
        elif name == "*":
            components.append((kind, 2, None))
        else:
            components.append((kind, 0, name))
    request = DescribeClientQuotasRequest(components=components, strict=strict)
    response = admin._manager.run(lambda: admin._manager.send(request))
    if response.error_code:
        print(f"DESCRIBE-ERROR {response.error_code} {response.error_message}")
        return
    lines = []
    for entry in response.entries or []:
        entity = [(e.entity_type, e.entity_name) for e in entry.entity]
        values = " ".join(f"{v.key}={number(v.value)}" for v in sorted(entry.values, key=lambda v: v.key))
        lines.append(f"ENTRY {shown(entity)} {values}")
    for line in sorted(lines):
        print(line)


class Throttles:
    def __init__(self):
        self.largest_ms = 0
        self.count = 0

    def __call__(self, event):
        ms = int(event.throttle_time * 1000)
        if ms > 0:
            self.count += 1
            self.largest_ms = max(self.largest_ms, ms)

    def done(self, records):
        print(f"DONE records={records} throttled_ms={self.largest_ms} throttles={self.count}")


def produce(bootstrap, topic, client_id, count, value_bytes):
    throttles = Throttles()
    p = Producer({"bootstrap.servers": bootstrap, "client.id": client_id,
                  "throttle_cb": throttles, "linger.ms": 5, "acks": "all"})
    acked = []
    value = b"v" * value_bytes
    for i in range(count):
        while True:
            try:
                p.produce(topic, value=value, key=str(i).encode(), partition=0,
                          on_delivery=lambda err, msg: acked.append(err is None))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    p.flush(120)
    if len(acked) != count or not all(acked):
        print(f"FAILED acked={sum(acked)} of {count}")
        sys.exit(1)
    throttles.done(count)


def consume(bootstrap, topic, client_id, count):
    throttles = Throttles()
    c = Consumer({"bootstrap.servers": bootstrap, "client.id": client_id,
                  "group.id": f"quota-{client_id}", "enable.auto.commit": False,
                  "throttle_cb": throttles})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    deadline = time.time() + 120
    while got < count and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got += 1
    c.close()
    if got != count:
        print(f"FAILED records={got} of {count}")
        sys.exit(1)
    throttles.done(got)


def main():
    bootstrap, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if command in ("alter", "describe"):
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        (alter if command == "alter" else describe)(admin, args)
        admin.close()
    elif command == "produce":
        produce(bootstrap, args[0], args[1], int(args[2]), int(args[3]))
    elif command == "consume":
        consume(bootstrap, args[0], args[1], int(args[2]))
    else:
        print(f"unknown command {command}")
        sys.exit(1)


if __name__ == "__main__":
    main()
