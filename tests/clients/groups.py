"""Consumer-group tools for the offset sync tests, with confluent-kafka (librdkafka).

  commit  --bootstrap B --group G --topic T --offsets 0:37,1:200
      commits those offsets for group G as a standalone consumer (no subscription).
  committed --bootstrap B --group G --topic T --partitions N
      prints `COMMITTED {"0": 37, "1": 200}` (partitions without an offset left out).
  consume --bootstrap B --group G --topic T --partitions N
      joins group G (subscribe), reads from its committed positions to the end of every
      partition (committing nothing), and prints `RECORDS [[partition, key, value], ...]`.
  read --bootstrap B --topic T --partitions N --from 0:37,1:200
      reads each partition from the given offset to its end without a group, printing
      `RECORDS` like `consume`.
"""

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import OFFSET_INVALID, Consumer, TopicPartition


def offsets_arg(text):
    out = {}
    for item in text.split(","):
        partition, offset = item.split(":")
        out[int(partition)] = int(offset)
    return out


def consumer(bootstrap, group, **extra):
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "allow.auto.create.topics": False,
    }
    config.update(extra)
    return Consumer(config)


def ends(c, topic, partitions):
    return {
        p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
        for p in range(partitions)
    }


def drain(c, topic, partitions, positions, deadline):
    """Polls until every partition's position reaches its end; returns the records."""
    end = ends(c, topic, partitions)
    records = []
    while any(positions.get(p, -1) < end[p] for p in range(partitions)):
        if time.time() > deadline:
            sys.exit(f"TIMEOUT positions={positions} ends={end}")
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            sys.exit(f"ERROR {m.error()}")
        key = m.key().decode() if m.key() is not None else None
        value = m.value().decode() if m.value() is not None else None
        records.append([m.partition(), key, value])
        positions[m.partition()] = m.offset() + 1
    return records


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["commit", "committed", "consume", "read"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--offsets")
    ap.add_argument("--from", dest="start")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    deadline = time.time() + args.timeout

    if args.command == "commit":
        c = consumer(args.bootstrap, args.group)
        offsets = [
            TopicPartition(args.topic, p, o) for p, o in offsets_arg(args.offsets).items()
        ]
        c.commit(offsets=offsets, asynchronous=False)
        c.close()
        print("COMMITTED-OK")
    elif args.command == "committed":
        c = consumer(args.bootstrap, args.group)
        parts = [TopicPartition(args.topic, p) for p in range(args.partitions)]
        got = c.committed(parts, timeout=10)
        c.close()
        out = {str(tp.partition): tp.offset for tp in got if tp.offset != OFFSET_INVALID}
        print("COMMITTED " + json.dumps(out))
    elif args.command == "consume":
        c = consumer(args.bootstrap, args.group)
        committed = c.committed(
            [TopicPartition(args.topic, p) for p in range(args.partitions)], timeout=10
        )
        positions = {tp.partition: max(tp.offset, 0) for tp in committed}
        c.subscribe([args.topic])
        records = drain(c, args.topic, args.partitions, positions, deadline)
        c.close()
        print("RECORDS " + json.dumps(records))
    else:
        c = consumer(args.bootstrap, f"groups-read-{uuid.uuid4()}")
        start = offsets_arg(args.start)
        c.assign([TopicPartition(args.topic, p, o) for p, o in start.items()])
        positions = dict(start)
        records = drain(c, args.topic, args.partitions, positions, deadline)
        c.close()
        print("RECORDS " + json.dumps(records))


if __name__ == "__main__":
    main()
