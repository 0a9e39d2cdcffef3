#!/usr/bin/env python3
"""kafka-python's transactional producer against kmirror-broker (a second client, written
independently of librdkafka): a transaction committed and one aborted, as a read_committed
and a read_uncommitted kafka-python consumer see them, and the consumer group offsets sent
with a committed transaction (send_offsets_to_transaction).

Prints one line `RESULT {json}`; exits 0 when every expectation holds, 1 otherwise.
"""

import argparse
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata


def read_all(bootstrap, topic, isolation, expected):
    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    c.assign([TopicPartition(topic, 0)])
    c.seek_to_beginning()
    got = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = c.poll(timeout_ms=500)
        for records in batch.values():
            got.extend(r.value.decode() for r in records)
        if len(got) >= expected and not batch:
            break
    c.close()
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    args = ap.parse_args()
    topic = "txn-kafka-python"
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()

    p = KafkaProducer(bootstrap_servers=args.bootstrap, transactional_id="kmirror-kafka-python-txn")
    p.init_transactions()
    for name, commit in [("a", True), ("b", False), ("c", True)]:
        p.begin_transaction()
        for i in range(5):
            p.send(topic, value=f"{name}-{i}".encode(), partition=0)
        p.flush()
        if commit:
            p.commit_transaction()
        else:
            p.abort_transaction()
    committed = [f"{n}-{i}" for n in "ac" for i in range(5)]
    everything = [f"{n}-{i}" for n in "abc" for i in range(5)]
    got_committed = read_all(args.bootstrap, topic, "read_committed", len(committed))
    got_all = read_all(args.bootstrap, topic, "read_uncommitted", len(everything))

    # The group's offsets, committed by the transaction.
    p.begin_transaction()
    p.send(topic, value=b"d-0", partition=0)
    group = "kmirror-kafka-python-eos"
    p.send_offsets_to_transaction({TopicPartition(topic, 0): OffsetAndMetadata(7, "", -1)}, group)
    p.commit_transaction()
    p.close()
    c = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=group, enable_auto_commit=False)
    group_offset = c.committed(TopicPartition(topic, 0))
    c.close()

    result = {
        "committed_ok": got_committed == committed,
        "uncommitted_ok": got_all == everything,
        "group_offset": group_offset,
        "got_committed": got_committed,
        "got_all": got_all,
    }
    print("RESULT " + json.dumps(result))
    ok = result["committed_ok"] and result["uncommitted_ok"] and group_offset == 7
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
