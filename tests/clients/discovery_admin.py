"""Small confluent-kafka admin, producer and reader commands for the discovery tests.

    discovery_admin.py BOOTSTRAP create TOPIC PARTITIONS [name=value ...]
    discovery_admin.py BOOTSTRAP delete TOPIC
    discovery_admin.py BOOTSTRAP add-partitions TOPIC TOTAL
    discovery_admin.py BOOTSTRAP alter TOPIC name=value [...]
    discovery_admin.py BOOTSTRAP alter-broker ID name=value [...]
    discovery_admin.py BOOTSTRAP unset TOPIC name [...]
    discovery_admin.py BOOTSTRAP produce TOPIC PREFIX COUNT [PARTITION ...]
    discovery_admin.py BOOTSTRAP produce-aged TOPIC PREFIX AGE_MS [COUNT ...]
    discovery_admin.py BOOTSTRAP topics
    discovery_admin.py BOOTSTRAP read TOPIC
    discovery_admin.py BOOTSTRAP configs TOPIC

`produce` writes COUNT records to each listed partition (default: every partition), with
value `PREFIX-<partition>-<i>` and key `k<i>`, acks=all, and fails unless all are
acknowledged. `produce-aged` writes one batch to partition 0: for each COUNT in turn, that
many records stamped AGE_MS earlier than the one before them (the first COUNT now),
values `PREFIX-<i>`. Every command prints one JSON document on stdout:
  topics   {topic: partition count} of every topic (Metadata for all topics, which never
           creates one);
  read     {partition: [value, ...]} from the low to the high watermark, or null when the
           topic does not exist;
  configs  {name: {"value": v, "source": ConfigSource name, "default": bool}};
  others   {"ok": true}.
"""

import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)


def pairs(items):
    return dict(item.split("=", 1) for item in items)


def wait_partitions(admin, topic, count):
    deadline = time.time() + 60
    while time.time() < deadline:
        t = admin.list_topics(timeout=10).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == count:
            return
        time.sleep(0.1)
    sys.exit(f"topic {topic} did not get {count} partitions")


def all_topics(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(timeout=10)
    return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}


def main():
    bootstrap, command, *rest = sys.argv[1:]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if command == "create":
        topic, partitions, *configs = rest
        futures = admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=int(partitions),
                    replication_factor=1,
                    config=pairs(configs),
                )
            ],
            operation_timeout=30,
        )
        for f in futures.values():
            f.result(60)
        wait_partitions(admin, topic, int(partitions))
        print(json.dumps({"ok": True}))
    elif command == "delete":
        (topic,) = rest
        for f in admin.delete_topics([topic], operation_timeout=30).values():
            f.result(60)
        deadline = time.time() + 60
        while topic in all_topics(bootstrap):
            if time.time() > deadline:
                sys.exit(f"topic {topic} is still listed after its deletion")
            time.sleep(0.1)
        print(json.dumps({"ok": True}))
    elif command == "add-partitions":
        topic, total = rest
        for f in admin.create_partitions([NewPartitions(topic, int(total))]).values():
            f.result(60)
        wait_partitions(admin, topic, int(total))
        print(json.dumps({"ok": True}))
    elif command in ("alter", "alter-broker"):
        name, *configs = rest
        resource = ConfigResource(
            ResourceType.TOPIC if command == "alter" else ResourceType.BROKER,
            name,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in pairs(configs).items()
            ],
        )
        for f in admin.incremental_alter_configs([resource]).values():
            f.result(60)
        print(json.dumps({"ok": True}))
    elif command == "unset":
        topic, *names = rest
        resource = ConfigResource(
            ResourceType.TOPIC,
            topic,
            incremental_configs=[
                ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE)
                for k in names
            ],
        )
        for f in admin.incremental_alter_configs([resource]).values():
            f.result(60)
        print(json.dumps({"ok": True}))
    elif command == "produce":
        topic, prefix, count, *partitions = rest
        if partitions:
            partitions = [int(p) for p in partitions]
        else:
            partitions = list(range(all_topics(bootstrap)[topic]))
        producer = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5}
        )
        acked = [0]
        errors = []

        def on_delivery(err, msg):
            if err is None:
                acked[0] += 1
            else:
                errors.append(str(err))

        for i in range(int(count)):
            for p in partitions:
                producer.produce(
                    topic,
                    value=f"{prefix}-{p}-{i}".encode(),
                    key=f"k{i}".encode(),
                    partition=p,
                    on_delivery=on_delivery,
                )
            producer.poll(0)
        producer.flush(60)
        if errors or acked[0] != int(count) * len(partitions):
            sys.exit(f"produce: acked {acked[0]}, errors {errors[:5]}")
        print(json.dumps({"ok": True}))
    elif command == "produce-aged":
        topic, prefix, age_ms, *counts = rest
        producer = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1000}
        )
        # The partition's leader known first, so that no record leaves before the others
        # are queued behind it.
        producer.list_topics(topic, timeout=30)
        delivered = []
        now_ms = int(time.time() * 1000)
        i = 0
        for step, count in enumerate(counts):
            for _ in range(int(count)):
                producer.produce(
                    topic,
                    value=f"{prefix}-{i}".encode(),
                    partition=0,
                    timestamp=now_ms - step * int(age_ms),
                    on_delivery=lambda err, msg: delivered.append((err, msg.offset())),
                )
                i += 1
        producer.flush(60)
        errors = [str(err) for err, _ in delivered if err is not None]
        if errors or len(delivered) != i:
            sys.exit(f"produce-aged: delivered {len(delivered)}, errors {errors[:5]}")
        print(json.dumps({"ok": True}))
    elif command == "topics":
        print(json.dumps(all_topics(bootstrap)))
    elif command == "read":
        (topic,) = rest
        count = all_topics(bootstrap).get(topic)
        if count is None:
            print(json.dumps(None))
            return
        c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"discovery-read-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "allow.auto.create.topics": False,
            }
        )
        out = {}
        marks = {}
        for p in range(count):
            out[p] = []
            marks[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        pending = {p for p, (lo, hi) in marks.items() if hi > lo}
        c.assign([TopicPartition(topic, p, marks[p][0]) for p in pending])
        deadline = time.time() + 60
        while pending and time.time() < deadline:
            for msg in c.consume(num_messages=10_000, timeout=0.5):
                if msg.error():
                    raise KafkaException(msg.error())
                p = msg.partition()
                if msg.offset() < marks[p][1]:
                    out[p].append(msg.value().decode())
                if msg.offset() >= marks[p][1] - 1:
                    pending.discard(p)
        c.close()
        if pending:
            sys.exit(f"read {topic}: partitions {sorted(pending)} not read to the end")
        print(json.dumps(out))
    elif command == "configs":
        (topic,) = rest
        futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
        out = {}
        for f in futures.values():
            for name, entry in f.result(60).items():
                out[name] = {
                    "value": entry.value,
                    "source": ConfigSource(entry.source).name,
                    "default": entry.is_default,
                }
        print(json.dumps(out))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
