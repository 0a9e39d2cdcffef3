"""Verifier for the mirror fidelity test (confluent-kafka consumers, manual assign from
the low watermark up to the high watermark, on both clusters).

For every source topic in `--topics` and every partition, the target topic (named by
`--rename`, `{topic}` replaced by the source topic name) must hold the same records in
the same order, byte-equal: key, value, the full header list ((name, value) tuples in
order, duplicates and None values kept), timestamp type and timestamp.

First waits (up to `--wait` seconds) until every target partition holds at least as many
records as its source partition; then reads both sides and compares. `--expected` is the
total number of source records the producer wrote.

Prints per-topic counts, the first differences of each mismatching partition, and a final
`RESULT ok` or `RESULT mismatch`; exits 1 on any mismatch.
"""

import argparse
import sys
import time
import uuid

from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaException,
    TopicPartition,
)


def consumer(bootstrap):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"fidelity-verify-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "check.crcs": True,
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 10_485_760,
            "allow.auto.create.topics": False,
        }
    )


def partition_counts(c, topics):
    md = c.list_topics(timeout=10)
    out = {}
    for t in topics:
        meta = md.topics.get(t)
        out[t] = None if meta is None or meta.error is not None else len(meta.partitions)
    return out


def watermarks(c, tps):
    return {tp: c.get_watermark_offsets(TopicPartition(*tp), timeout=10) for tp in tps}


def read_all(c, marks, deadline):
    """{(topic, partition): [(offset, record tuple)]} from low to high watermark."""
    out = {tp: [] for tp in marks}
    pending = {tp for tp, (lo, hi) in marks.items() if hi > lo}
    c.assign([TopicPartition(t, p, marks[(t, p)][0]) for (t, p) in pending])
    while pending:
        if time.time() > deadline:
            raise SystemExit(f"reading timed out; still pending: {sorted(pending)[:5]}")
        for msg in c.consume(num_messages=10_000, timeout=1.0):
            if msg.error():
                raise KafkaException(msg.error())
            tp = (msg.topic(), msg.partition())
            hi = marks[tp][1]
            if msg.offset() >= hi:
                continue
            out[tp].append(
                (
                    msg.offset(),
                    (
                        msg.key(),
                        msg.value(),
                        msg.headers(),
                        msg.timestamp()[0],
                        msg.timestamp()[1],
                    ),
                )
            )
            if msg.offset() == hi - 1:
                pending.discard(tp)
    c.unassign()
    return out


FIELDS = ["key", "value", "headers", "timestamp_type", "timestamp"]


def short(v, n=120):
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--topics", required=True)
    ap.add_argument("--rename", default="{topic}")
    ap.add_argument("--expected", type=int, required=True)
    ap.add_argument("--wait", type=float, default=120)
    ap.add_argument(
        "--append-time-as-create-time",
        action="store_true",
        help="a source LogAppendTime record matches a target CreateTime record with the same "
        "timestamp (a CreateTime target topic cannot show LogAppendTime)",
    )
    args = ap.parse_args()

    topics = args.topics.split(",")
    rename = {t: args.rename.replace("{topic}", t) for t in topics}
    src = consumer(args.source)
    dst = consumer(args.target)

    src_parts = partition_counts(src, topics)
    src_tps = [(t, p) for t in topics for p in range(src_parts[t] or 0)]
    src_marks = watermarks(src, src_tps)
    src_total = sum(hi - lo for lo, hi in src_marks.values())
    print(f"source: partitions={src_parts} records={src_total}")
    ok = True
    if src_total != args.expected:
        print(f"MISMATCH source holds {src_total} records, producer wrote {args.expected}")
        ok = False

    # Wait until the target caught up with the source, partition by partition.
    deadline = time.time() + args.wait
    while True:
        dst_parts = partition_counts(dst, list(rename.values()))
        ready = all(dst_parts[rename[t]] == src_parts[t] for t in topics)
        if ready:
            dst_marks = watermarks(dst, [(rename[t], p) for (t, p) in src_tps])
            behind = [
                (t, p)
                for (t, p) in src_tps
                if dst_marks[(rename[t], p)][1] - dst_marks[(rename[t], p)][0]
                < src_marks[(t, p)][1] - src_marks[(t, p)][0]
            ]
            if not behind:
                break
        if time.time() > deadline:
            print(f"TIMEOUT target partitions={dst_parts}")
            if ready:
                dst_total = sum(hi - lo for lo, hi in dst_marks.values())
                print(f"TIMEOUT target records={dst_total} behind={behind[:10]}")
            print("RESULT mismatch")
            sys.exit(1)
        time.sleep(0.5)

    read_deadline = time.time() + 300
    src_records = read_all(src, src_marks, read_deadline)
    dst_records = read_all(dst, dst_marks, read_deadline)

    total_compared = 0
    for t in topics:
        topic_src = topic_dst = 0
        for p in range(src_parts[t]):
            s = src_records[(t, p)]
            d = dst_records[(rename[t], p)]
            topic_src += len(s)
            topic_dst += len(d)
            if len(s) != len(d):
                ok = False
                print(f"MISMATCH {t}[{p}] -> {rename[t]}[{p}]: source {len(s)} records, target {len(d)}")
            shown = 0
            for idx, ((so, sr), (do, dr)) in enumerate(zip(s, d)):
                if args.append_time_as_create_time and sr[3] == TIMESTAMP_LOG_APPEND_TIME:
                    sr = sr[:3] + (TIMESTAMP_CREATE_TIME,) + sr[4:]
                if sr == dr:
                    continue
                ok = False
                if shown < 3:
                    for name, a, b in zip(FIELDS, sr, dr):
                        if a != b:
                            print(
                                f"MISMATCH {t}[{p}] record #{idx} (source offset {so}, "
                                f"target offset {do}) {name}: source {short(a)} target {short(b)}"
                            )
                shown += 1
            if shown:
                print(f"MISMATCH {t}[{p}]: {shown} differing records")
            total_compared += min(len(s), len(d))
            if [o for o, _ in s] != [o for o, _ in d]:
                print(f"NOTE {t}[{p}]: target offsets differ from source offsets")
        print(f"topic {t} -> {rename[t]}: source={topic_src} target={topic_dst}")

    with_headers = sum(
        1 for recs in src_records.values() for _, r in recs if r[2] is not None
    )
    types = [r[3] for recs in src_records.values() for _, r in recs]
    print(
        f"compared={total_compared} source_with_headers={with_headers} "
        f"create_time={types.count(TIMESTAMP_CREATE_TIME)} "
        f"log_append_time={types.count(TIMESTAMP_LOG_APPEND_TIME)} "
        f"null_keys={sum(1 for recs in src_records.values() for _, r in recs if r[0] is None)} "
        f"null_values={sum(1 for recs in src_records.values() for _, r in recs if r[1] is None)}"
    )
    print("RESULT ok" if ok else "RESULT mismatch")
    src.close()
    dst.close()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
