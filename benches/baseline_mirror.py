#!/usr/bin/env python3
"""Baseline for benches/catchup/: the consume -> produce loop a user might write with
confluent-kafka (librdkafka) instead of kmirror. Keeps partitions, keys, headers and
timestamps; commits nothing (a best case for the baseline). The producer is tuned for
throughput (lz4, linger 50 ms, 1 MiB batches) whatever the source batches look like.
Prints the records copied, the seconds it took, and its own CPU seconds and peak RSS
(librdkafka's threads included)."""
import argparse
import resource
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--target-topic", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--records", type=int, required=True)
    args = ap.parse_args()

    consumer = Consumer({
        "bootstrap.servers": args.source,
        "group.id": "baseline-mirror",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "fetch.max.bytes": 64 << 20,
        "max.partition.fetch.bytes": 1 << 20,
    })
    consumer.assign([TopicPartition(args.topic, p, 0) for p in range(args.partitions)])
    producer = Producer({
        "bootstrap.servers": args.target,
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "lz4",
        "linger.ms": 50,
        "batch.size": 1 << 20,
        "queue.buffering.max.kbytes": 256 * 1024,
    })
    copied = 0
    start = time.monotonic()
    while copied < args.records:
        msgs = consumer.consume(num_messages=10000, timeout=1.0)
        for m in msgs:
            if m.error():
                print(f"consume error: {m.error()}", file=sys.stderr)
                return 1
            ts_type, ts = m.timestamp()
            while True:
                try:
                    producer.produce(args.target_topic, value=m.value(), key=m.key(), partition=m.partition(),
                                     headers=m.headers(), timestamp=ts)
                    break
                except BufferError:
                    producer.poll(0.05)
            copied += 1
        producer.poll(0)
    producer.flush(120)
    elapsed = time.monotonic() - start
    consumer.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"copied={copied} seconds={elapsed:.3f} cpu_seconds={usage.ru_utime + usage.ru_stime:.3f} "
          f"maxrss_kib={usage.ru_maxrss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
