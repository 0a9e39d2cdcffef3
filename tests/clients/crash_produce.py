"""Producer for the crash and limits tests (confluent-kafka, acks=all, idempotent).

Writes `--records` records to each of `--partitions` partitions of `--topic`, keyed per
partition, whose value is `<partition>:<seq>:` followed by padding up to `--value-bytes`
(`x`s, or with `--compression` other than none, hex digits that compress about 2:1).
`--rate` paces the whole run in records per second (0: as fast as possible). Every record
the source acknowledged is written to `--acked` as JSON `{partition: [seq, ...]}` so the
verifier can tell a lost record from one that was never acknowledged. `--create` first
creates the topic with `--partitions` partitions (`--records 0` only creates it).

Prints one line: `PRODUCED records=<n> acked=<n> failed=<n> seconds=<s>`.
"""

import argparse
import json
import sys
import random
import time

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=30,
    )
    for f in futures.values():
        try:
            f.result(60)
        except KafkaException as e:
            if e.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS
                raise
    # Wait until the metadata shows every partition.
    deadline = time.time() + 60
    while time.time() < deadline:
        md = admin.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            return
        time.sleep(0.1)
    sys.exit(f"topic {topic} did not get {partitions} partitions")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--records", type=int, required=True, help="per partition")
    ap.add_argument("--rate", type=float, default=0.0, help="records/s over all partitions")
    ap.add_argument("--value-bytes", type=int, default=100)
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--batch-bytes", type=int, default=1_000_000)
    ap.add_argument("--acked")
    ap.add_argument("--create", action="store_true")
    ap.add_argument("--compression", default="none", help="librdkafka's compression.type")
    args = ap.parse_args()

    if args.create:
        create_topic(args.bootstrap, args.topic, args.partitions)
    if args.records == 0:
        print("PRODUCED records=0 acked=0 failed=0 seconds=0")
        return

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": args.compression,
            "linger.ms": args.linger_ms,
            "batch.size": args.batch_bytes,
            "message.max.bytes": max(1_000_000, args.batch_bytes + 100_000),
            # A source broker may be killed and restarted while we produce: keep trying.
            "message.timeout.ms": 300_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    acked = {p: [] for p in range(args.partitions)}
    failed = []

    def on_delivery(err, msg):
        p, seq = msg.value().split(b":", 2)[:2]
        if err is None:
            acked[int(p)].append(int(seq))
        else:
            failed.append((int(p), int(seq), str(err)))

    start = time.time()
    total = args.records * args.partitions
    sent = 0
    for seq in range(args.records):
        for p in range(args.partitions):
            head = f"{p}:{seq}:".encode()
            pad = max(0, args.value_bytes - len(head))
            if args.compression == "none":
                value = head + b"x" * pad
            else:
                value = head + random.randbytes((pad + 1) // 2).hex().encode()[:pad]
            while True:
                try:
                    producer.produce(
                        args.topic,
                        value=value,
                        key=f"p{p}".encode(),
                        partition=p,
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            sent += 1
            producer.poll(0)
            if args.rate > 0:
                ahead = start + sent / args.rate - time.time()
                if ahead > 0:
                    time.sleep(ahead)
    remaining = producer.flush(300)
    seconds = time.time() - start
    if args.acked:
        with open(args.acked, "w") as f:
            json.dump({str(p): s for p, s in acked.items()}, f)
    n_acked = sum(len(s) for s in acked.values())
    for p, seq, err in failed[:10]:
        print(f"FAILED partition={p} seq={seq} error={err}", file=sys.stderr)
    print(
        f"PRODUCED records={total} acked={n_acked} failed={len(failed)} "
        f"unflushed={remaining} seconds={seconds:.2f}"
    )


if __name__ == "__main__":
    main()
