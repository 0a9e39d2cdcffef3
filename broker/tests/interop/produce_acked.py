#!/usr/bin/env python3
"""Produce with confluent-kafka (acks=all) and report exactly what the broker acknowledged.

Message i has key `k{i}`, value `v{i}-{payload}` (no tabs or newlines), partition
`i % partitions` and, with --timestamp-base, timestamp `base + i * step`.

While running, prints `progress N` (N = delivery-confirmed messages so far) every
--progress-every confirmations, so a test can kill the broker mid-stream. At the end
prints one line `RESULT {json}` with:
  acked:   number of delivery-confirmed messages
  failed:  number of messages whose delivery failed (e.g. the broker was killed)
  records: [[partition, offset, key, value, timestamp], ...] for every confirmed message

Exits 0 unless --require-all is given and some message failed, or arguments/topic
creation are wrong. Idempotence is off (the broker's InitProducerId is not tested here).
"""

import argparse
import json
import sys
import time

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--create", action="store_true", help="create the topic first (AdminClient)")
    ap.add_argument("--timestamp-base", type=int, help="explicit timestamps: base + i * step")
    ap.add_argument("--timestamp-step", type=int, default=1)
    ap.add_argument("--value-bytes", type=int, default=100, help="approximate value size")
    ap.add_argument("--message-timeout-ms", type=int, default=60000)
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--progress-every", type=int, default=0, help="print `progress N` lines")
    ap.add_argument("--require-all", action="store_true", help="exit 1 if any message failed")
    args = ap.parse_args()

    if args.create:
        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        fut = admin.create_topics(
            [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)], request_timeout=30
        )[args.topic]
        try:
            fut.result(timeout=60)
        except KafkaException as e:
            print(f"produce_acked: FAILED: creating {args.topic}: {e}", file=sys.stderr)
            sys.exit(1)

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": args.linger_ms,
            "message.timeout.ms": args.message_timeout_ms,
            # Keep retries from reordering within a partition.
            "max.in.flight.requests.per.connection": 1,
        }
    )
    records = []
    errors = []

    def on_delivery(i, ts):
        def cb(err, msg):
            if err is not None:
                errors.append(f"k{i}: {err}")
                return
            records.append([msg.partition(), msg.offset(), msg.key().decode(), msg.value().decode(), ts])
            if args.progress_every and len(records) % args.progress_every == 0:
                print(f"progress {len(records)}", flush=True)

        return cb

    pad = "x" * max(0, args.value_bytes - 10)
    for i in range(args.count):
        ts = None if args.timestamp_base is None else args.timestamp_base + i * args.timestamp_step
        kwargs = {"timestamp": ts} if ts is not None else {}
        while True:
            try:
                producer.produce(
                    args.topic,
                    key=f"k{i}",
                    value=f"v{i}-{pad}",
                    partition=i % args.partitions,
                    on_delivery=on_delivery(i, ts),
                    **kwargs,
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    deadline = time.time() + args.message_timeout_ms / 1000 + 60
    while len(producer) > 0 and time.time() < deadline:
        producer.flush(1)
    records.sort()
    print(
        "RESULT " + json.dumps({"acked": len(records), "failed": len(errors), "unresolved": len(producer), "records": records}),
        flush=True,
    )
    print(
        f"produce_acked: {len(records)} acknowledged, {len(errors)} failed"
        + (f" (first error: {errors[0]})" if errors else ""),
        file=sys.stderr,
    )
    if args.require_all and (errors or len(records) != args.count):
        print(f"produce_acked: FAILED: only {len(records)} of {args.count} acknowledged", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
