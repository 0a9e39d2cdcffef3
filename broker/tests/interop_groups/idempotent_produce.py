#!/usr/bin/env python3
"""confluent-kafka idempotent producer across a broker crash.

--mode produce: creates a 1-partition topic, then produces --count messages whose value
is their sequence number ("seq:N") with enable.idempotence=true and acks=all, at a steady
pace, printing "progress N" every 500 delivery reports. The test harness SIGKILLs the
broker meanwhile and restarts it on the same address and data dir; librdkafka keeps
retrying (message.timeout.ms is long). Every message must be reported delivered, and
message N at offset N (a retried batch the broker had already appended must be answered
with its original offset, not appended again). Prints "RESULT delivered=.. failed=..".

--mode verify: reads the partition from the beginning to its end offset: values must be
seq:0, seq:1, ... seq:count-1 at offsets 0.. count-1 (each message exactly once, in
order: no duplicates, no gaps).
"""

import argparse
import logging
import time

from common import check, ck_create_topic, fail, log, main_wrapper


def produce(args):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    ck_create_topic(admin, args.topic, 1)
    state = {"delivered": 0, "failed": [], "wrong_offset": [], "fatal": None}

    def cb(err, msg):
        if err is not None:
            state["failed"].append((msg.value().decode(), str(err)))
            return
        seq = int(msg.value().decode().split(":")[1])
        if msg.offset() != seq:
            state["wrong_offset"].append((seq, msg.offset()))
        state["delivered"] += 1
        if state["delivered"] % 500 == 0:
            log("progress %d" % state["delivered"])

    def on_error(err):
        # Transport errors while the broker is down are expected; fatal ones are not.
        if err.fatal():
            state["fatal"] = str(err)
        log("client error: %s" % err)

    class RetryCounter(logging.Handler):
        """Counts librdkafka's "MsgPossiblyPersisted" retries (from debug=msg logs):
        batches in flight when the broker died, resent with their original sequence
        numbers. Whether the broker had appended them is up to timing; reported only."""

        def __init__(self):
            super().__init__()
            self.retried = 0

        def emit(self, record):
            if "MsgPossiblyPersisted" in record.getMessage():
                self.retried += 1

    counter = RetryCounter()
    rdlog = logging.getLogger("librdkafka")
    rdlog.setLevel(logging.DEBUG)
    rdlog.addHandler(counter)
    rdlog.propagate = False
    p = Producer(
        {
            "debug": "msg",
            "logger": rdlog,
            "bootstrap.servers": args.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.num.messages": 200,
            "message.timeout.ms": 180000,
            "reconnect.backoff.ms": 100,
            "reconnect.backoff.max.ms": 1000,
            "error_cb": on_error,
        }
    )
    for i in range(args.count):
        while True:
            try:
                p.produce(args.topic, value=b"seq:%d" % i, partition=0, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if i % 100 == 99:
            # Paced, so that the kill lands mid-stream.
            time.sleep(0.02)
    left = p.flush(240)
    check(left == 0, "%d messages still undelivered after flush(240)" % left)
    log(
        "RESULT delivered=%d failed=%d wrong_offset=%d possibly_persisted_retries=%d"
        % (state["delivered"], len(state["failed"]), len(state["wrong_offset"]), counter.retried)
    )
    check(state["fatal"] is None, "fatal producer error: %s" % state["fatal"])
    check(not state["failed"], "%d deliveries failed, first: %s" % (len(state["failed"]), state["failed"][:5]))
    check(
        not state["wrong_offset"],
        "%d messages reported at an offset other than their sequence number (seq, offset): %s"
        % (len(state["wrong_offset"]), state["wrong_offset"][:10]),
    )
    check(state["delivered"] == args.count, "delivered %d of %d" % (state["delivered"], args.count))


def verify(args):
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "verify-unused",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    lo, hi = c.get_watermark_offsets(TopicPartition(args.topic, 0), timeout=30)
    log("watermarks: low %d high %d" % (lo, hi))
    c.assign([TopicPartition(args.topic, 0, 0)])
    expect = 0
    dups = []
    gaps = []
    deadline = time.monotonic() + 120
    done = False
    while not done:
        if time.monotonic() > deadline:
            fail("reading %s: stuck at offset %d of %d" % (args.topic, expect, hi))
        for m in c.consume(num_messages=1000, timeout=1.0):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    done = True
                    continue
                fail("consume: %s" % m.error())
            seq = int(m.value().decode().split(":")[1])
            if m.offset() != expect:
                fail("offset %d follows offset %d" % (m.offset(), expect - 1))
            if seq < m.offset():
                dups.append((m.offset(), seq))
            elif seq > m.offset():
                gaps.append((m.offset(), seq))
            if dups or gaps:
                fail(
                    "offset %d holds seq %d: %s"
                    % (m.offset(), seq, "a duplicate" if dups else "a gap (messages lost)")
                )
            expect += 1
    c.close()
    check(hi == args.count, "the partition holds %d messages, want %d (duplicates?)" % (hi, args.count))
    check(expect == args.count, "read %d messages, want %d" % (expect, args.count))
    log("OK: %d messages, each exactly once and in order" % expect)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--mode", choices=["produce", "verify"], required=True)
    args = ap.parse_args()
    if args.mode == "produce":
        produce(args)
    else:
        verify(args)


if __name__ == "__main__":
    main_wrapper(main)
