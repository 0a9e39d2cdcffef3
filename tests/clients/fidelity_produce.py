"""Producer for the mirror fidelity test (confluent-kafka).

Creates `--topics` (comma-separated) with `--partitions` partitions each on `--bootstrap`
and writes `--records` records in total, spread over every partition of every topic with
explicit partition numbers. The records exercise what a mirror must keep byte-equal:

- keys: bytes, binary, empty (b"") and null;
- values: text, binary, compressible padding, empty (b"") and null;
- headers: none, a repeated key with different values, a repeated key with the same
  value, a header whose value is None, an empty header value, an empty header name,
  non-ASCII names and binary values; order matters;
- timestamps: explicit CreateTime values in the past, not monotonic within a partition.

Five producers share the work, one per compression codec (none, gzip, snappy, lz4,
zstd). They take turns in small rounds, so the batches of one partition alternate
between codecs. `--topic-config name=value` sets configs of the created topics (e.g.
message.timestamp.type=LogAppendTime). After the first rounds every producer is flushed and `--started-file`
is written; if `--continue-file` is given, production then waits (up to 120 s) for that
file to exist, so the caller can start the mirror while records are still being written.

Prints one line: `PRODUCED records=<n> acked=<n> failed=<n> seconds=<s>`.
"""

import argparse
import os
import random
import sys
import time

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def create_topics(bootstrap, topics, partitions, config):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [
            NewTopic(t, num_partitions=partitions, replication_factor=1, config=config)
            for t in topics
        ],
        operation_timeout=30,
    )
    for f in futures.values():
        try:
            f.result(60)
        except KafkaException as e:
            if e.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS
                raise
    deadline = time.time() + 60
    while time.time() < deadline:
        md = admin.list_topics(timeout=10)
        if all(
            t in md.topics
            and md.topics[t].error is None
            and len(md.topics[t].partitions) == partitions
            for t in topics
        ):
            return
        time.sleep(0.1)
    sys.exit(f"topics {topics} did not get {partitions} partitions")


def make_record(rng, i, now_ms):
    """The i-th record: (key, value, headers or None, timestamp)."""
    k = i % 10
    if k == 0:
        key = None
    elif k == 1:
        key = b""
    elif k == 2:
        key = rng.randbytes(rng.randint(1, 40))
    else:
        key = f"key-{i % 97}".encode()

    v = i % 13
    if v == 0:
        value = None
    elif v == 1:
        value = b""
    elif v == 2:
        value = rng.randbytes(rng.randint(1, 300))
    else:
        # Text plus padding: compressible, so the codecs have something to do.
        value = (f"value {i} " + "abcdefgh" * rng.randint(0, 60)).encode()

    h = i % 7
    if h == 0:
        headers = None
    elif h == 1:
        headers = [("dup", b"first"), ("other", b"x"), ("dup", b"second")]
    elif h == 2:
        headers = [("nullv", None), ("dup", b"same"), ("dup", b"same")]
    elif h == 3:
        headers = [
            ("bin", rng.randbytes(rng.randint(0, 64))),
            ("", b"empty-name"),
            ("emptyv", b""),
        ]
    elif h == 4:
        headers = [("ключ", "значение".encode()), ("seq", str(i).encode())]
    elif h == 5:
        headers = [("only-null", None)]
    else:
        headers = [(f"h{j}", str(j).encode()) for j in range(rng.randint(1, 6))]

    # Explicit CreateTime timestamps within the last two days, in no particular order
    # (well inside the broker's retention and timestamp-skew limits).
    timestamp = now_ms - rng.randint(60_000, 2 * 24 * 3600 * 1000)
    return key, value, headers, timestamp


def wait_for_file(path, timeout):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            sys.exit(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topics", required=True)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--records", type=int, default=100_000, help="in total")
    ap.add_argument("--round", type=int, default=300, help="records per producer turn")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--started-file")
    ap.add_argument("--continue-file")
    ap.add_argument(
        "--topic-config", action="append", default=[], help="name=value for new topics"
    )
    args = ap.parse_args()

    topics = args.topics.split(",")
    config = dict(c.split("=", 1) for c in args.topic_config)
    create_topics(args.bootstrap, topics, args.partitions, config)
    targets = [(t, p) for t in topics for p in range(args.partitions)]

    producers = [
        Producer(
            {
                "bootstrap.servers": args.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "compression.type": codec,
                "linger.ms": 5,
                "batch.num.messages": 100,
                "message.timeout.ms": 120_000,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
            }
        )
        for codec in CODECS
    ]
    acked = [0]
    failed = []

    def on_delivery(err, msg):
        if err is None:
            acked[0] += 1
        else:
            failed.append(str(err))

    rng = random.Random(args.seed)
    now_ms = int(time.time() * 1000)
    start = time.time()
    started_at = args.records // 10
    i = 0
    turn = 0
    while i < args.records:
        producer = producers[turn % len(producers)]
        turn += 1
        for _ in range(min(args.round, args.records - i)):
            topic, partition = targets[(i * 7 + i // len(targets)) % len(targets)]
            key, value, headers, ts = make_record(rng, i, now_ms)
            kwargs = {"timestamp": ts, "on_delivery": on_delivery}
            if headers is not None:
                kwargs["headers"] = headers
            while True:
                try:
                    producer.produce(
                        topic, value=value, key=key, partition=partition, **kwargs
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            i += 1
        producer.poll(0)
        if turn % len(producers) == 0:
            # Let the batches of this round go out before the next codec's: batches of
            # different codecs then alternate within each partition.
            for p in producers:
                p.flush(60)
        if args.started_file and i >= started_at and not os.path.exists(args.started_file):
            for p in producers:
                p.flush(60)
            with open(args.started_file, "w") as f:
                f.write(str(i))
            if args.continue_file:
                wait_for_file(args.continue_file, 120)
    remaining = sum(p.flush(120) for p in producers)
    seconds = time.time() - start
    for err in failed[:10]:
        print(f"FAILED {err}", file=sys.stderr)
    print(
        f"PRODUCED records={args.records} acked={acked[0]} failed={len(failed)} "
        f"unflushed={remaining} seconds={seconds:.2f}"
    )
    if acked[0] != args.records:
        sys.exit(1)


if __name__ == "__main__":
    main()
