#!/usr/bin/env python3
"""confluent-kafka idempotent producer and consumer group while partition leaders move.

Produces --phases x --per-phase messages ("seq" values, partition = seq % partitions) with
enable.idempotence=true and acks=all, while one consumer-group member consumes and
commits. After each phase but the last it prints "phase K" and waits (still serving
both clients) until the file <sync-dir>/phase-K exists: the test harness moves leaders,
or stops or starts a node, in between, with messages still in flight.

Checks at the end: every message delivered once, without a fatal error; each partition's
log holds exactly the produced messages in production order (offsets contiguous, no
duplicates: the idempotent producer survived the leader changes); the group consumed
every message, in offset order per partition; the committed offsets reach the ends.
Prints "OK: ..." and exits 0, or "MISMATCH: ..." and exits 1.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop_groups"))
from common import check, ck_create_topic, fail, log, main_wrapper  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--phases", type=int, default=13)
    ap.add_argument("--per-phase", type=int, default=1000)
    ap.add_argument("--sync-dir", required=True)
    args = ap.parse_args()

    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    ck_create_topic(admin, args.topic, args.partitions)
    state = {"delivered": 0, "failed": [], "fatal": None, "delivered_at": {}}

    def on_error(err):
        if err.fatal():
            state["fatal"] = str(err)
        log("client error: %s" % err)

    def on_delivery(err, msg):
        if err is not None:
            state["failed"].append((msg.value().decode(), str(err)))
            return
        state["delivered"] += 1
        state["delivered_at"][int(msg.value().decode())] = (msg.partition(), msg.offset())

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 180000,
            "topic.metadata.refresh.interval.ms": 5000,
            "error_cb": on_error,
        }
    )
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "leader-moves",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 30000,
            "topic.metadata.refresh.interval.ms": 5000,
            "error_cb": on_error,
        }
    )
    consumer.subscribe([args.topic])
    consumed = {p: {} for p in range(args.partitions)}  # partition -> offset -> seq
    order_errors = []
    last_offset = {}

    def consume(timeout):
        msgs = consumer.consume(num_messages=1000, timeout=timeout)
        for m in msgs:
            if m.error():
                if m.error().fatal():
                    fail("fatal consumer error: %s" % m.error())
                if m.error().code() != KafkaError._PARTITION_EOF:
                    log("consumer error: %s" % m.error())
                continue
            p, o = m.partition(), m.offset()
            if p in last_offset and o != last_offset[p] + 1 and o > last_offset[p]:
                order_errors.append((p, last_offset[p], o))
            last_offset[p] = o
            consumed[p][o] = int(m.value().decode())
        if msgs:
            try:
                consumer.commit(asynchronous=False)
            except Exception as e:  # noqa: BLE001 - a retriable commit error during a move
                log("commit failed (retried with the next batch): %s" % e)

    def serve(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            producer.poll(0)
            consume(0.05)

    seq = 0
    for phase in range(1, args.phases + 1):
        for _ in range(args.per_phase):
            while True:
                try:
                    producer.produce(args.topic, value=b"%d" % seq, partition=seq % args.partitions, on_delivery=on_delivery)
                    break
                except BufferError:
                    serve(0.05)
            seq += 1
            if seq % 100 == 0:
                serve(0.01)
        if phase < args.phases:
            log("phase %d delivered=%d" % (phase, state["delivered"]))
            marker = os.path.join(args.sync_dir, "phase-%d" % phase)
            deadline = time.monotonic() + 300
            while not os.path.exists(marker):
                check(time.monotonic() < deadline, "no %s within 300 s" % marker)
                serve(0.05)
    left = producer.flush(240)
    check(left == 0, "%d messages still undelivered after flush(240)" % left)
    check(state["fatal"] is None, "fatal client error: %s" % state["fatal"])
    check(not state["failed"], "%d deliveries failed, first: %s" % (len(state["failed"]), state["failed"][:5]))
    check(state["delivered"] == seq, "delivered %d of %d" % (state["delivered"], seq))

    # The log: per partition exactly the produced messages, in production order.
    per_partition = {p: [s for s in range(seq) if s % args.partitions == p] for p in range(args.partitions)}
    for p, seqs in per_partition.items():
        offsets = [state["delivered_at"][s] for s in seqs]
        check(all(po[0] == p for po in offsets), "partition %d: a message landed elsewhere" % p)
        want = list(range(len(seqs)))
        got = [po[1] for po in offsets]
        check(got == want, "partition %d: delivered at offsets %s..., want 0..%d in order" % (p, got[:10], len(seqs) - 1))
        lo, hi = consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=30)
        check((lo, hi) == (0, len(seqs)), "partition %d: watermarks %s, want (0, %d): duplicates?" % (p, (lo, hi), len(seqs)))

    # The group: everything consumed, in offset order, then committed.
    deadline = time.monotonic() + 180
    while sum(len(c) for c in consumed.values()) < seq:
        check(time.monotonic() < deadline, "consumed %d of %d" % (sum(len(c) for c in consumed.values()), seq))
        consume(0.5)
    check(not order_errors, "offsets skipped while consuming (partition, previous, next): %s" % order_errors[:10])
    for p, seqs in per_partition.items():
        got = [consumed[p][o] for o in sorted(consumed[p])]
        check(got == seqs, "partition %d: consumed %s..., want %s..." % (p, got[:10], seqs[:10]))
    final = [TopicPartition(args.topic, p, len(seqs)) for p, seqs in per_partition.items()]
    deadline = time.monotonic() + 60
    while True:
        try:
            consumer.commit(offsets=final, asynchronous=False)
            break
        except Exception as e:  # noqa: BLE001 - retriable while the coordinator moves
            check(time.monotonic() < deadline, "final commit: %s" % e)
            consume(0.2)
    committed = consumer.committed([TopicPartition(args.topic, p) for p in range(args.partitions)], timeout=30)
    for tp in committed:
        check(tp.offset == len(per_partition[tp.partition]), "partition %d: committed %d, want %d" % (tp.partition, tp.offset, len(per_partition[tp.partition])))
    consumer.close()
    log("OK: %d messages over %d partitions in %d phases, each delivered once, consumed in order, committed" % (seq, args.partitions, args.phases))


if __name__ == "__main__":
    main_wrapper(main)
