#!/usr/bin/env python3
"""confluent-kafka (librdkafka) round trip against a kmirror broker.

For each compression codec (none, gzip, snappy, lz4, zstd): create a 3-partition topic
with the AdminClient, produce messages with keys (including null and empty keys), null
and empty values, headers (a repeated key with two values, a null-valued header, an empty
one) and explicit timestamps, then read everything back with a manually assigned
consumer and compare byte for byte: key, value, headers (order and duplicates),
timestamp (type and value), partition, offset and per-partition order. Also checks the
watermarks, and that a consumer assigned to an offset inside a stored batch gets exactly
that offset first (for an uncompressed and a compressed batch).

Consumer groups, idempotence and config APIs are deliberately not used.

Exits 0 and prints a summary on success; exits 1 with a message on the first mismatch.
"""

import argparse
import os
import sys
import time
import uuid

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
import confluent_kafka

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3
# Recent, so that retention (7 days by default) never deletes the test data.
TS_BASE = int(time.time() * 1000) - 3_600_000


class Mismatch(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Mismatch(msg)


def message(i):
    """The i-th test message: (partition, key, value, headers, timestamp)."""
    partition = i % PARTITIONS
    if i % 11 == 0:
        key = None
    elif i % 13 == 0:
        key = b""
    else:
        key = b"key-%d" % i
    if i % 10 == 3:
        value = None
    elif i % 29 == 0:
        value = b""
    elif i % 250 == 7:
        # A large, compressible value with every byte value in it.
        value = bytes(range(256)) * 200 + b"big-%d" % i
    else:
        value = (b"value-%d|" % i) * (1 + i % 7) + bytes([i % 256, 0, 255])
    headers = [("seq", b"%d" % i)]
    if i % 3 == 0:
        headers.append(("dup", b"first-%d" % i))
        headers.append(("dup", b"second-%d" % i))
    if i % 4 == 1:
        headers.append(("nullh", None))
    if i % 5 == 2:
        headers.append(("empty", b""))
    # Not monotonic within a partition, on purpose.
    timestamp = TS_BASE + (i * 7919) % 100_000
    return partition, key, value, headers, timestamp


def create_topics(admin, names, partitions):
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
        request_timeout=30,
    )
    for name, fut in futures.items():
        try:
            fut.result(timeout=60)
        except Exception as e:  # noqa: BLE001 - report whatever the admin client raised
            raise Mismatch(f"CreateTopics {name!r} failed: {e}")


def wait_for_metadata(admin, names, partitions):
    deadline = time.time() + 60
    while True:
        md = admin.list_topics(timeout=10)
        ok = all(
            n in md.topics and md.topics[n].error is None and len(md.topics[n].partitions) == partitions
            for n in names
        )
        if ok:
            return
        check(time.time() < deadline, f"topics {names} not visible in metadata: {md.topics}")
        time.sleep(0.2)


def produce(bootstrap, topic, codec, msgs, extra_conf=None):
    """Produces msgs [(partition, key, value, headers, ts)]; returns their offsets."""
    conf = {
        "bootstrap.servers": bootstrap,
        "compression.type": codec,
        "enable.idempotence": False,
        "acks": "all",
        "linger.ms": 20,
        "message.timeout.ms": 60000,
    }
    conf.update(extra_conf or {})
    p = Producer(conf)
    offsets = [None] * len(msgs)
    errors = []

    def on_delivery(idx):
        def cb(err, msg):
            if err is not None:
                errors.append(f"message {idx}: {err}")
            else:
                offsets[idx] = (msg.partition(), msg.offset())

        return cb

    for idx, (part, key, value, headers, ts) in enumerate(msgs):
        while True:
            try:
                p.produce(
                    topic,
                    value=value,
                    key=key,
                    partition=part,
                    headers=headers,
                    timestamp=ts,
                    on_delivery=on_delivery(idx),
                )
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(60)
    check(remaining == 0, f"{topic}: {remaining} messages still undelivered after flush(60)")
    check(not errors, f"{topic}: delivery failed: {errors[:5]} ({len(errors)} total)")
    check(all(o is not None for o in offsets), f"{topic}: some messages got no delivery report")
    return offsets


def new_consumer(bootstrap):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            # Required by confluent-kafka, unused with assign() and no commits.
            "group.id": "unused-" + uuid.uuid4().hex,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
        }
    )


def consume(consumer, want, label):
    """Consumes until `want` messages arrived; fails on errors or a 60 s stall."""
    got = []
    deadline = time.time() + 60
    while len(got) < want:
        check(time.time() < deadline, f"{label}: got only {len(got)} of {want} messages within 60 s")
        for m in consumer.consume(num_messages=1000, timeout=1.0):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise Mismatch(f"{label}: consumer error: {m.error()}")
            got.append(m)
            deadline = time.time() + 60
    return got


def headers_of(m):
    h = m.headers()
    return [] if h is None else [(k, v) for k, v in h]


def roundtrip(bootstrap, topic, codec, count):
    msgs = [message(i) for i in range(count)]
    offsets = produce(bootstrap, topic, codec, msgs)

    expected = {}  # partition -> [(offset, msg)]
    for idx, (part, off) in enumerate(offsets):
        check(part == msgs[idx][0], f"{topic}: message {idx} went to partition {part}, asked for {msgs[idx][0]}")
        expected.setdefault(part, []).append((off, msgs[idx]))
    for part, rows in expected.items():
        offs = [o for o, _ in rows]
        check(
            offs == list(range(len(rows))),
            f"{topic}[{part}]: delivery offsets are not 0..{len(rows) - 1} in send order: {offs[:20]}...",
        )

    c = new_consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        got = consume(c, count, topic)
        check(len(got) == count, f"{topic}: expected {count} messages, got {len(got)}")
        per_part = {}
        for m in got:
            check(m.topic() == topic, f"{topic}: message from topic {m.topic()!r}")
            per_part.setdefault(m.partition(), []).append(m)
        for part in range(PARTITIONS):
            rows = expected.get(part, [])
            ms = per_part.get(part, [])
            check(len(ms) == len(rows), f"{topic}[{part}]: expected {len(rows)} messages, got {len(ms)}")
            for (off, (_, key, value, headers, ts)), m in zip(rows, ms):
                where = f"{topic}[{part}]@{off}"
                check(m.offset() == off, f"{where}: consumed offset {m.offset()} (order broken)")
                check(m.key() == key, f"{where}: key {m.key()!r} != {key!r}")
                check(m.value() == value, f"{where}: value {short(m.value())} != {short(value)}")
                check(headers_of(m) == headers, f"{where}: headers {headers_of(m)!r} != {headers!r}")
                check(
                    m.timestamp() == (TIMESTAMP_CREATE_TIME, ts),
                    f"{where}: timestamp {m.timestamp()} != (CreateTime, {ts})",
                )
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
            check(
                (lo, hi) == (0, len(rows)),
                f"{topic}[{part}]: watermarks ({lo}, {hi}) != (0, {len(rows)})",
            )
        # Nothing more arrives.
        extra = [m for m in c.consume(num_messages=10, timeout=1.0) if not m.error()]
        check(not extra, f"{topic}: unexpected extra messages at {[(m.partition(), m.offset()) for m in extra]}")
    finally:
        c.close()
    return {p: len(r) for p, r in expected.items()}


def short(v):
    if v is None or len(v) <= 40:
        return repr(v)
    return f"<{len(v)} bytes {v[:24]!r}...>"


def log_bytes(data_dir, topic, partitions):
    total = 0
    for p in range(partitions):
        d = os.path.join(data_dir, f"{topic}-{p}")
        for name in os.listdir(d):
            if name.endswith(".log"):
                total += os.path.getsize(os.path.join(d, name))
    return total


def batch_layout(data_dir, topic):
    """(base offset, last offset) of every record batch stored in partition 0."""
    d = os.path.join(data_dir, f"{topic}-0")
    spans = []
    for name in sorted(os.listdir(d)):
        if not name.endswith(".log"):
            continue
        with open(os.path.join(d, name), "rb") as f:
            data = f.read()
        pos = 0
        while pos + 27 <= len(data):
            base = int.from_bytes(data[pos : pos + 8], "big", signed=True)
            length = int.from_bytes(data[pos + 8 : pos + 12], "big")
            last_delta = int.from_bytes(data[pos + 23 : pos + 27], "big", signed=True)
            spans.append((base, base + last_delta))
            pos += 12 + length
    return spans


def seek_into_batches(bootstrap, topic, codec, data_dir):
    """Two rounds of 100 messages (linger, so they form one or a few batches), then
    consumers assigned at offsets inside stored batches must start exactly there."""
    for batch in range(2):
        msgs = [
            (0, b"k%d" % (batch * 100 + i), b"v%d" % (batch * 100 + i), [("i", b"%d" % i)], TS_BASE + batch * 100 + i)
            for i in range(100)
        ]
        offsets = produce(
            bootstrap,
            topic,
            codec,
            msgs,
            {"linger.ms": 2000, "batch.num.messages": 10000, "batch.size": 10_000_000},
        )
        check(
            [o for _, o in offsets] == list(range(batch * 100, batch * 100 + 100)),
            f"{topic}: batch {batch} offsets {offsets[:3]}...",
        )
    starts = {0, 1, 37, 99, 100, 150, 199}
    batches = None
    if data_dir:
        # How librdkafka split the messages into batches is its business (under load it
        # may send several per linger); what matters is starting inside stored batches.
        batches = batch_layout(data_dir, topic)
        inside = [(b, l) for b, l in batches if l > b]
        check(inside, f"{topic}: no stored batch holds more than one record: {batches}")
        for b, l in inside:
            starts |= {b + 1, (b + l + 1) // 2, l}
    for start in sorted(starts):
        c = new_consumer(bootstrap)
        try:
            c.assign([TopicPartition(topic, 0, start)])
            got = consume(c, 200 - start, f"{topic} from {start}")
            offs = [m.offset() for m in got]
            check(
                offs == list(range(start, 200)),
                f"{topic}: assigned at offset {start} ({codec}) but got offsets {offs[:5]}...",
            )
            for m in got:
                check(
                    m.key() == b"k%d" % m.offset() and m.value() == b"v%d" % m.offset(),
                    f"{topic}@{m.offset()}: key/value {m.key()!r}/{m.value()!r}",
                )
        finally:
            c.close()
    return batches


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    ap.add_argument("--count", type=int, default=2000, help="messages per codec")
    ap.add_argument("--prefix", default="confluent-" + uuid.uuid4().hex[:8], help="topic name prefix")
    ap.add_argument(
        "--data-dir",
        help="the broker's data dir: if given, also check compressed topics take less disk, and "
        "seek to offsets inside the batches actually stored",
    )
    args = ap.parse_args()

    print(f"confluent-kafka {confluent_kafka.version()[0]}, librdkafka {confluent_kafka.libversion()[0]}")
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topics = {codec: f"{args.prefix}-{codec}" for codec in CODECS}
    seek_topics = {codec: f"{args.prefix}-seek-{codec}" for codec in ["none", "lz4"]}
    create_topics(admin, list(topics.values()), PARTITIONS)
    create_topics(admin, list(seek_topics.values()), 1)
    wait_for_metadata(admin, list(topics.values()), PARTITIONS)
    wait_for_metadata(admin, list(seek_topics.values()), 1)

    sizes = {}
    for codec, topic in topics.items():
        t0 = time.time()
        per_part = roundtrip(args.bootstrap, topic, codec, args.count)
        extra = ""
        if args.data_dir:
            sizes[codec] = log_bytes(args.data_dir, topic, PARTITIONS)
            extra = f", {sizes[codec]} bytes on disk"
        print(f"  {codec:6} {args.count} messages round-tripped, per partition {per_part}{extra} ({time.time() - t0:.1f} s)")
    if args.data_dir:
        for codec in CODECS[1:]:
            check(
                sizes[codec] < sizes["none"] * 0.8,
                f"{codec} topic takes {sizes[codec]} bytes vs {sizes['none']} uncompressed: was it compressed?",
            )

    for codec, topic in seek_topics.items():
        batches = seek_into_batches(args.bootstrap, topic, codec, args.data_dir)
        extra = f" (stored batches: {batches})" if batches is not None else ""
        print(f"  {codec:6} assign inside a batch: every start offset returned exactly from there{extra}")
    print("confluent_roundtrip: OK")


if __name__ == "__main__":
    try:
        main()
    except Mismatch as e:
        print(f"confluent_roundtrip: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
