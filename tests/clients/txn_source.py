#!/usr/bin/env python3
"""Writes a transactional source with confluent-kafka (librdkafka's transactional producer),
for the mirror's transaction tests. Values are `<phase>-<partition>-<i>`, keyed by
partition, `--per-partition` records per partition and phase.

`--mode write`: one producer commits phase `a`, aborts `b`, an idempotent
non-transactional producer writes `n`, the first commits `c`. Prints `RESULT {json}`,
the committed values per partition in offset order.

`--mode hold`: one producer opens a transaction and writes `o`; a second commits `u`
behind it; prints `READY`, then ends the first transaction as a line on stdin says
(`commit` or `abort`) and prints `DONE {json}`, the values now committed by this run per
partition in offset order.
"""

import argparse
import json
import sys

from confluent_kafka import Producer


def write(producer, topic, phase, partitions, per_partition):
    for i in range(per_partition):
        for p in range(partitions):
            producer.produce(topic, key=str(p).encode(), value=f"{phase}-{p}-{i}".encode(), partition=p)
    producer.flush(30)


def values(phase, partitions, per_partition):
    return {p: [f"{phase}-{p}-{i}" for i in range(per_partition)] for p in range(partitions)}


def joined(*parts):
    out = {}
    for part in parts:
        for p, v in part.items():
            out.setdefault(str(p), []).extend(v)
    return out


def transactional(bootstrap, name):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": name, "linger.ms": 5})
    p.init_transactions(30)
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--per-partition", type=int, default=20)
    ap.add_argument("--mode", choices=["write", "hold"], required=True)
    args = ap.parse_args()
    n, k = args.partitions, args.per_partition

    if args.mode == "write":
        tx = transactional(args.bootstrap, "txn-source-writer")
        plain = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True})
        for phase, commit in [("a", True), ("b", False)]:
            tx.begin_transaction()
            write(tx, args.topic, phase, n, k)
            tx.commit_transaction(30) if commit else tx.abort_transaction(30)
        write(plain, args.topic, "n", n, k)
        tx.begin_transaction()
        write(tx, args.topic, "c", n, k)
        tx.commit_transaction(30)
        print("RESULT " + json.dumps(joined(values("a", n, k), values("n", n, k), values("c", n, k))))
        return 0

    held = transactional(args.bootstrap, "txn-source-held")
    behind = transactional(args.bootstrap, "txn-source-behind")
    held.begin_transaction()
    write(held, args.topic, "o", n, k)
    behind.begin_transaction()
    write(behind, args.topic, "u", n, k)
    behind.commit_transaction(30)
    print("READY", flush=True)
    verdict = sys.stdin.readline().strip()
    if verdict == "commit":
        held.commit_transaction(30)
        done = joined(values("o", n, k), values("u", n, k))
    else:
        held.abort_transaction(30)
        done = joined(values("u", n, k))
    print("DONE " + json.dumps(done), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
