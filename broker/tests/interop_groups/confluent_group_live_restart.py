#!/usr/bin/env python3
"""A live confluent-kafka consumer group while the broker is SIGKILLed and restarted.

Two members (threads, enable.auto.commit=false, synchronous commit per batch) consume a
4-partition topic: 400 messages before the crash. The script then prints "CONSUMED" and
waits for --resume-file to appear: meanwhile the harness SIGKILLs the broker and restarts
it on the same address and data dir. The members keep running through the outage (their
client reconnects); 400 more messages are produced after the restart. All 800 must be
consumed (duplicates counted and reported), both members must still hold partitions
between them covering the topic, and the committed offsets must reach the end offsets.
"""

import argparse
import os
import threading
import time
import uuid

from common import check, ck_create_topic, fail, log, main_wrapper

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

PARTITIONS = 4


def produce(bootstrap, topic, start, count):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 60000})
    failed = []
    for i in range(start, start + count):
        p.produce(topic, value=b"%d" % i, partition=i % PARTITIONS, on_delivery=lambda e, m: e and failed.append(str(e)))
        p.poll(0)
    check(p.flush(90) == 0, "undelivered messages")
    check(not failed, "failed deliveries: %s" % failed[:5])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--resume-file", required=True)
    args = ap.parse_args()
    topic = "live-" + uuid.uuid4().hex[:6]
    group = "live-g-" + uuid.uuid4().hex[:6]
    ck_create_topic(AdminClient({"bootstrap.servers": args.bootstrap}), topic, PARTITIONS)
    produce(args.bootstrap, topic, 0, 400)

    lock = threading.Lock()
    seen = {}
    assigned = {}
    stop = threading.Event()
    errors = []
    commit_failures = [0]

    def member(name):
        try:
            c = Consumer(
                {
                    "bootstrap.servers": args.bootstrap,
                    "group.id": group,
                    "client.id": "live-" + name,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": 10000,
                    "heartbeat.interval.ms": 1000,
                }
            )

            def on_assign(cons, parts):
                with lock:
                    assigned[name] = sorted(p.partition for p in parts)
                log("%s assigned %s" % (name, assigned[name]))

            def on_revoke(cons, parts):
                with lock:
                    assigned[name] = []
                log("%s revoked %s" % (name, sorted(p.partition for p in parts)))

            c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
            while not stop.is_set():
                msgs = c.consume(num_messages=100, timeout=0.5)
                ok = []
                for m in msgs:
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            log("%s: consume error %s" % (name, m.error()))
                        continue
                    ok.append(m)
                with lock:
                    for m in ok:
                        i = int(m.value())
                        check(i % PARTITIONS == m.partition(), "seq %d from partition %d" % (i, m.partition()))
                        seen[i] = seen.get(i, 0) + 1
                if ok:
                    try:
                        c.commit(asynchronous=False)
                    except Exception as e:  # noqa: BLE001 - the broker is down or rebalancing
                        with lock:
                            commit_failures[0] += 1
                        log("%s: commit failed: %s" % (name, e))
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append("%s: %r" % (name, e))
            stop.set()

    threads = [threading.Thread(target=member, args=(n,), daemon=True) for n in "ab"]
    for t in threads:
        t.start()

    def wait_seen(n, what, timeout):
        deadline = time.monotonic() + timeout
        while True:
            check(not errors, "member failed: %s" % errors)
            with lock:
                have = len(seen)
                spread = sorted(assigned.get("a", []) + assigned.get("b", []))
                both = bool(assigned.get("a")) and bool(assigned.get("b"))
            if have >= n and both and spread == list(range(PARTITIONS)):
                return
            if time.monotonic() > deadline:
                fail("%s: %d of %d messages consumed; assignment %s" % (what, have, n, assigned))
            time.sleep(0.2)

    try:
        wait_seen(400, "before the crash", 90)
        log("CONSUMED 400; assignment %s" % assigned)
        deadline = time.monotonic() + 120
        while not os.path.exists(args.resume_file):
            check(time.monotonic() < deadline, "the harness did not restart the broker")
            time.sleep(0.1)
        log("broker restarted; producing 400 more")
        produce(args.bootstrap, topic, 400, 400)
        wait_seen(800, "after the restart", 120)
        # Let the last commits land.
        time.sleep(2)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    check(not errors, "member failed: %s" % errors)
    check(set(seen) == set(range(800)), "unexpected messages: %s" % sorted(set(seen) - set(range(800)))[:10])
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": group, "enable.auto.commit": False})
    for tp in c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30):
        check(tp.offset == 200, "partition %d: committed %d, want 200" % (tp.partition, tp.offset))
    c.close()
    dups = sum(n - 1 for n in seen.values())
    log("OK: 800 messages consumed by a live group across a broker SIGKILL; %d duplicates, %d failed commits" % (dups, commit_failures[0]))


if __name__ == "__main__":
    main_wrapper(main)
