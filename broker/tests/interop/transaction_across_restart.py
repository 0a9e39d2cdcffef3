#!/usr/bin/env python3
"""A confluent-kafka transaction that spans a restart of kmirror-broker: the producer begins
a transaction and writes to it, prints `READY`, waits for a line on stdin (the broker has
been restarted meanwhile), writes more and commits. A read_committed consumer must then see
every record of the transaction, in order.

Prints one line `RESULT {json}`; exits 0 when the commit succeeded and every record is
there, 1 otherwise.
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    args = ap.parse_args()
    topic = "txn-restart"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        f.result(30)
    p = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": "kmirror-restart-txn"})
    p.init_transactions(30)
    p.begin_transaction()
    values = [f"v-{i}" for i in range(10)]
    for v in values[:5]:
        p.produce(topic, value=v.encode(), partition=0)
    p.flush(30)
    print("READY", flush=True)
    sys.stdin.readline()
    error = None
    try:
        for v in values[5:]:
            p.produce(topic, value=v.encode(), partition=0)
        p.flush(60)
        p.commit_transaction(60)
    except KafkaException as e:
        error = e.args[0].name()
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "txn-restart-check",
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
    })
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < len(values) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.close()
    result = {"error": error, "got": got}
    print("RESULT " + json.dumps(result))
    return 0 if error is None and got == values else 1


if __name__ == "__main__":
    sys.exit(main())
