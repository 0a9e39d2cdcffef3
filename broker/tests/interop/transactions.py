#!/usr/bin/env python3
"""confluent-kafka (librdkafka) transactions against kmirror-broker: a transactional producer
commits, aborts and commits again; a read_committed consumer must see exactly the committed
records, in order, and a read_uncommitted one every record. Then a second producer with the
same transactional.id fences the first, whose commit must fail fatally. Last, a
consume-transform-produce loop: the consumer group's offsets sent with an aborted
transaction are not committed, with a committed one they are.

Prints one line `RESULT {json}`; exits 0 when every expectation holds, 1 otherwise.
"""

import argparse
import json
import sys
import time

from confluent_kafka import KafkaException, Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def produce(producer, topic, values):
    for v in values:
        producer.produce(topic, key=v.split("-")[0].encode(), value=v.encode(), partition=int(v[-1]) % 2)
    producer.flush(30)


def read_all(bootstrap, topic, isolation, expected):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"txn-check-{isolation}-{time.monotonic_ns()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": isolation,
    })
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < expected and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append((m.partition(), m.value().decode()))
    # A little longer, to catch records that should not be there.
    extra_deadline = time.monotonic() + 2
    while time.monotonic() < extra_deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append((m.partition(), m.value().decode()))
    c.close()
    return got


def by_partition(records):
    out = {}
    for partition, value in records:
        out.setdefault(partition, []).append(value)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    args = ap.parse_args()
    topic = "txn-interop"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).values():
        f.result(30)

    p = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": "kmirror-interop-txn"})
    p.init_transactions(30)
    batches = {
        "committed-1": [f"a-{i}" for i in range(10)],
        "aborted": [f"b-{i}" for i in range(7)],
        "committed-2": [f"c-{i}" for i in range(5)],
    }
    for name, values in batches.items():
        p.begin_transaction()
        produce(p, topic, values)
        if name == "aborted":
            p.abort_transaction(30)
        else:
            p.commit_transaction(30)

    committed = batches["committed-1"] + batches["committed-2"]
    everything = batches["committed-1"] + batches["aborted"] + batches["committed-2"]
    want_committed = by_partition([(int(v[-1]) % 2, v) for v in committed])
    want_all = by_partition([(int(v[-1]) % 2, v) for v in everything])
    got_committed = by_partition(read_all(args.bootstrap, topic, "read_committed", len(committed)))
    got_all = by_partition(read_all(args.bootstrap, topic, "read_uncommitted", len(everything)))

    # Fencing: a second producer with the same id; the first one's next commit fails fatally.
    p.begin_transaction()
    produce(p, topic, ["d-0"])
    p2 = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": "kmirror-interop-txn"})
    p2.init_transactions(30)
    fenced = None
    try:
        p.commit_transaction(10)
    except KafkaException as e:
        err = e.args[0]
        fenced = {"error": err.name(), "fatal": err.fatal()}
    # The fenced transaction was aborted: read_committed still sees only the committed.
    p2.begin_transaction()
    produce(p2, topic, ["e-0"])
    p2.commit_transaction(30)
    after = by_partition(read_all(args.bootstrap, topic, "read_committed", len(committed) + 1))
    want_after = by_partition([(int(v[-1]) % 2, v) for v in committed + ["e-0"]])

    # Consume-transform-produce: offsets committed by the transaction, not the consumer.
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "txn-interop-eos",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    c.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + 30
    while seen < len(committed) + 1 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen += 1
    positions = c.position(c.assignment())
    offsets = {}
    for verdict in ["abort", "commit"]:
        p2.begin_transaction()
        produce(p2, topic, ["f-1"] if verdict == "abort" else ["g-0"])
        p2.send_offsets_to_transaction(positions, c.consumer_group_metadata(), 30)
        if verdict == "abort":
            p2.abort_transaction(30)
        else:
            p2.commit_transaction(30)
        offsets[verdict] = sorted((tp.partition, tp.offset) for tp in c.committed(c.assignment(), 10))
    c.close()
    want_offsets = sorted((tp.partition, tp.offset) for tp in positions)

    result = {
        "eos_seen": seen,
        "offsets_after_abort": offsets["abort"],
        "offsets_after_commit": offsets["commit"],
        "positions": want_offsets,
        "eos_ok": (all(o < 0 for _, o in offsets["abort"]) and offsets["commit"] == want_offsets
                   and seen == len(committed) + 1),
        "committed_ok": got_committed == want_committed,
        "uncommitted_ok": got_all == want_all,
        "fenced": fenced,
        "after_fence_ok": after == want_after,
        "got_committed": got_committed,
        "got_after": after,
    }
    print("RESULT " + json.dumps(result))
    ok = (result["committed_ok"] and result["uncommitted_ok"] and result["after_fence_ok"]
          and fenced is not None and fenced["fatal"] and result["eos_ok"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
