"""Waits until the partitions of `--topic` on `--bootstrap` hold at least `--min` records
in total (sum of high watermarks, polled every `--interval` seconds with confluent-kafka),
then prints `REACHED records=<n> at=<unix time in seconds>`. Exits 1 after `--timeout`.

Used by the limits tests to time mirroring: started before the daemon, it notices the
last record within one polling interval.
"""

import argparse
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--min", type=int, required=True)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "kmirror-limits-wait",
            "allow.auto.create.topics": False,
        }
    )
    deadline = time.time() + args.timeout
    total = 0
    while time.time() < deadline:
        total = 0
        for p in range(args.partitions):
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(args.topic, p), timeout=5, cached=False
                )
            except KafkaException:
                high = 0
            total += max(high, 0)
        if total >= args.min:
            print(f"REACHED records={total} at={time.time():.3f}")
            consumer.close()
            return
        time.sleep(args.interval)
    print(f"TIMEOUT records={total}")
    sys.exit(1)


if __name__ == "__main__":
    main()
