"""Verifier for the crash and limits tests (confluent-kafka, manual assign, from the
beginning up to the high watermark of each partition).

Reads every record of `--topic` on `--bootstrap` (the target), whose values are
`<partition>:<seq>:...` as written by crash_produce.py, and compares them with the
acknowledged sequences in `--acked`. Per partition it reports:
  lost        acknowledged on the source but absent from the target
  duplicated  target records whose sequence already appeared earlier in the partition
  reordered   first occurrences that are not increasing (a sequence appearing for the
              first time after a higher one)
  runs        lengths of the maximal runs of consecutive duplicate records (each run is
              one replay, e.g. after a restart); max_dup_run is the longest
  misplaced   records in the wrong partition, or with the wrong key
  unexpected  sequences on the target that were never acknowledged (e.g. failed sends)
With `--source` the source topic is read too, and `lost_vs_source` counts sequences on the
source that are missing on the target.

Prints one line per partition, a summary line, and `RESULT <json>` with the totals.
"""

import argparse
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition


def read_all(bootstrap, topic, partitions, timeout):
    """Returns {partition: [(seq, value_partition, key_ok), ...]} in offset order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "kmirror-crash-verifier",
            "enable.auto.commit": False,
            "allow.auto.create.topics": False,
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 10_485_760,
        }
    )
    highs = {}
    for p in range(partitions):
        try:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        except KafkaException:
            high = 0
        highs[p] = max(high, 0)
    out = {p: [] for p in range(partitions)}
    pending = {p for p in range(partitions) if highs[p] > 0}
    if pending:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
    deadline = time.time() + timeout
    while pending and time.time() < deadline:
        for msg in consumer.consume(num_messages=10_000, timeout=1.0):
            if msg.error():
                continue
            p = msg.partition()
            value = msg.value() or b""
            parts = value.split(b":", 2)
            try:
                vp, seq = int(parts[0]), int(parts[1])
            except (ValueError, IndexError):
                vp, seq = -1, -1
            key_ok = msg.key() == f"p{vp}".encode()
            out[p].append((seq, vp, key_ok))
            if msg.offset() + 1 >= highs[p]:
                pending.discard(p)
    consumer.close()
    if pending:
        sys.exit(f"could not read partitions {sorted(pending)} of {topic} up to {highs}")
    return out


def analyse(records, acked):
    seen = set()
    duplicated = 0
    reordered = 0
    misplaced = 0
    runs = []
    run = 0
    last_first = -1
    for seq, vp, key_ok in records:
        if not key_ok:
            misplaced += 1
        if seq in seen:
            duplicated += 1
            run += 1
            continue
        if run:
            runs.append(run)
            run = 0
        seen.add(seq)
        if seq < last_first:
            reordered += 1
        last_first = max(last_first, seq)
    if run:
        runs.append(run)
    lost = sorted(set(acked) - seen)
    unexpected = len(seen - set(acked))
    return {
        "records": len(records),
        "distinct": len(seen),
        "lost": len(lost),
        "lost_first": lost[:5],
        "duplicated": duplicated,
        "reordered": reordered,
        "runs": runs,
        "max_dup_run": max(runs, default=0),
        "misplaced": misplaced,
        "unexpected": unexpected,
    }, seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--acked", required=True)
    ap.add_argument("--source", help="source bootstrap, to compare with the source's content")
    ap.add_argument("--source-topic")
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()

    with open(args.acked) as f:
        acked = {int(p): s for p, s in json.load(f).items()}
    target = read_all(args.bootstrap, args.topic, args.partitions, args.timeout)
    source = None
    if args.source:
        source = read_all(
            args.source, args.source_topic or args.topic, args.partitions, args.timeout
        )
    totals = {
        "records": 0,
        "acked": 0,
        "lost": 0,
        "duplicated": 0,
        "reordered": 0,
        "max_dup_run": 0,
        "misplaced": 0,
        "unexpected": 0,
        "lost_vs_source": 0,
        "source_duplicated": 0,
        "runs": {},
    }
    for p in range(args.partitions):
        stats, seen = analyse(target[p], acked.get(p, []))
        line = (
            f"partition={p} records={stats['records']} acked={len(acked.get(p, []))} "
            f"lost={stats['lost']} duplicated={stats['duplicated']} "
            f"reordered={stats['reordered']} max_dup_run={stats['max_dup_run']} "
            f"runs={stats['runs']} misplaced={stats['misplaced']} "
            f"unexpected={stats['unexpected']}"
        )
        if stats["lost"]:
            line += f" lost_first={stats['lost_first']}"
        if source is not None:
            src_seqs = [s for s, _, _ in source[p]]
            missing = set(src_seqs) - seen
            totals["lost_vs_source"] += len(missing)
            totals["source_duplicated"] += len(src_seqs) - len(set(src_seqs))
            line += f" source_records={len(src_seqs)} lost_vs_source={len(missing)}"
        print(line)
        totals["acked"] += len(acked.get(p, []))
        totals["runs"][str(p)] = stats["runs"]
        for k in ("records", "lost", "duplicated", "reordered", "misplaced", "unexpected"):
            totals[k] += stats[k]
        totals["max_dup_run"] = max(totals["max_dup_run"], stats["max_dup_run"])
    print(
        "SUMMARY "
        + " ".join(f"{k}={v}" for k, v in totals.items() if k != "runs")
    )
    print("RESULT " + json.dumps(totals))


if __name__ == "__main__":
    main()
