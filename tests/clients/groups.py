"""Consumer-group tools for the offset sync tests, with confluent-kafka (librdkafka).

  commit  --bootstrap B --group G --topic T --offsets 0:37,1:200 [--metadata M]
      commits those offsets (with metadata M) for group G as a standalone consumer (no
      subscription).
  committed --bootstrap B --group G --topic T --partitions N
      prints `COMMITTED {"0": 37, "1": 200}` (partitions without an offset left out), then
      `METADATA {"0": "", "1": "m"}`, their commits' metadata.
  consume --bootstrap B --group G --topic T --partitions N [--max M]
      joins group G (subscribe), reads from its committed positions to the end of every
      partition, and prints `RECORDS [[partition, key, value], ...]`. With --max it stops
      after M records and commits its positions (without, it commits nothing).
  hold --bootstrap B --group G --topic T --seconds S
      joins group G and stays a member for S seconds after its assignment; prints
      `HELD true`.
  delete --bootstrap B --topic T --before 0:20
      deletes the records below those offsets (DeleteRecords), moving the log start.
  mm2 --bootstrap B --topic T --kind checkpoint|heartbeat
      reads partition 0 of T to its end and decodes each record with MirrorMaker 2's
      layouts (connect/mirror-client Checkpoint.java / Heartbeat.java), printing
      `MM2 [{...}, ...]`.
  read --bootstrap B --topic T --partitions N --from 0:37,1:200
      reads each partition from the given offset to its end without a group, printing
      `RECORDS` like `consume`.
"""

import argparse
import json
import struct
import sys
import time
import uuid

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient


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


def string(buf, at):
    """Kafka's STRING: INT16 length, UTF-8 bytes."""
    (n,) = struct.unpack_from(">h", buf, at)
    return buf[at + 2 : at + 2 + n].decode(), at + 2 + n


def decode_mm2(kind, key, value):
    if kind == "checkpoint":
        group, at = string(key, 0)
        topic, at = string(key, at)
        (partition,) = struct.unpack_from(">i", key, at)
        assert at + 4 == len(key), "checkpoint key has trailing bytes"
        version, upstream, offset = struct.unpack_from(">hqq", value, 0)
        metadata, at = string(value, 18)
        assert at == len(value), "checkpoint value has trailing bytes"
        return {"group": group, "topic": topic, "partition": partition, "version": version,
                "upstream_offset": upstream, "offset": offset, "metadata": metadata}
    source, at = string(key, 0)
    target, at = string(key, at)
    assert at == len(key), "heartbeat key has trailing bytes"
    version, timestamp = struct.unpack_from(">hq", value, 0)
    assert len(value) == 10, "heartbeat value has trailing bytes"
    return {"source": source, "target": target, "version": version, "timestamp": timestamp}


def drain(c, topic, partitions, positions, deadline, most=None, raw=False):
    """Polls until every partition's position reaches its end (or `most` records were
    read); returns the records."""
    end = ends(c, topic, partitions)
    records = []
    while any(positions.get(p, -1) < end[p] for p in range(partitions)):
        if most is not None and len(records) >= most:
            break
        if time.time() > deadline:
            sys.exit(f"TIMEOUT positions={positions} ends={end}")
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            sys.exit(f"ERROR {m.error()}")
        if raw:
            records.append((m.key(), m.value()))
        else:
            key = m.key().decode() if m.key() is not None else None
            value = m.value().decode() if m.value() is not None else None
            records.append([m.partition(), key, value])
        positions[m.partition()] = m.offset() + 1
    return records


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["commit", "committed", "consume", "delete", "hold", "mm2", "read"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--offsets")
    ap.add_argument("--metadata", default="", help="commit: the commit's metadata string")
    ap.add_argument("--from", dest="start")
    ap.add_argument("--before")
    ap.add_argument("--kind", choices=["checkpoint", "heartbeat"])
    ap.add_argument("--max", type=int)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    deadline = time.time() + args.timeout

    if args.command == "commit":
        c = consumer(args.bootstrap, args.group)
        offsets = [
            TopicPartition(args.topic, p, o, metadata=args.metadata)
            for p, o in offsets_arg(args.offsets).items()
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
        metadata = {str(tp.partition): tp.metadata for tp in got if tp.offset != OFFSET_INVALID}
        print("METADATA " + json.dumps(metadata))
    elif args.command == "consume":
        c = consumer(args.bootstrap, args.group)
        committed = c.committed(
            [TopicPartition(args.topic, p) for p in range(args.partitions)], timeout=10
        )
        positions = {tp.partition: max(tp.offset, 0) for tp in committed}
        c.subscribe([args.topic])
        records = drain(c, args.topic, args.partitions, positions, deadline, args.max)
        if args.max is not None and records:
            c.commit(
                offsets=[TopicPartition(args.topic, p, o) for p, o in positions.items()],
                asynchronous=False,
            )
        c.close()
        print("RECORDS " + json.dumps(records))
    elif args.command == "delete":
        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        parts = [TopicPartition(args.topic, p, o) for p, o in offsets_arg(args.before).items()]
        for tp, future in admin.delete_records(parts).items():
            result = future.result(timeout=30)
            print(f"DELETED {tp.partition} low_watermark={result.low_watermark}")
    elif args.command == "mm2":
        c = consumer(args.bootstrap, f"groups-mm2-{uuid.uuid4()}")
        c.assign([TopicPartition(args.topic, 0, 0)])
        try:
            records = drain(c, args.topic, 1, {0: 0}, deadline, raw=True)
        except KafkaException as e:
            # Not created yet: nothing written so far.
            if e.args[0].code() != KafkaError._UNKNOWN_PARTITION:
                raise
            records = []
        c.close()
        print("MM2 " + json.dumps([decode_mm2(args.kind, k, v) for k, v in records]))
    elif args.command == "hold":
        c = consumer(args.bootstrap, args.group)
        assigned = []
        c.subscribe([args.topic], on_assign=lambda _c, parts: assigned.append(parts))
        while not assigned:
            if time.time() > deadline:
                sys.exit("TIMEOUT waiting for an assignment")
            c.poll(0.2)
        until = time.time() + args.seconds
        while time.time() < until:
            c.poll(0.2)
        c.close()
        print("HELD true")
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
