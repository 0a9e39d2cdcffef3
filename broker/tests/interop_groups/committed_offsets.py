#!/usr/bin/env python3
"""Committed offsets across broker crashes (confluent-kafka, checked with kafka-python too).

--phase commit --round R: (round 1 creates a 3-partition topic with 50 messages per
partition) a subscribed group member of group "members" commits round R's offsets (with
metadata), synchronously, and a standalone consumer of group "standalone" (assign(), no
group membership: generation -1) commits its own. Prints "COMMITTED" and then stays
alive, in the group, until killed: the harness SIGKILLs the broker right after.

--phase check --round R: consumer.committed() of both groups returns round R's offsets
and metadata; kafka-python's KafkaAdminClient.list_group_offsets agrees.
"""

import argparse

from common import check, ck_create_topic, log, main_wrapper, wait_until

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

TOPIC = "committed"
PER_PARTITION = 50


def member_offsets(r):
    return {0: 10 * r, 1: 25 + r, 2: 50}


def standalone_offsets(r):
    return {1: 3 * r}


def commit(args):
    if args.round == 1:
        ck_create_topic(AdminClient({"bootstrap.servers": args.bootstrap}), TOPIC, 3)
        p = Producer({"bootstrap.servers": args.bootstrap, "acks": "all"})
        for i in range(PER_PARTITION):
            for part in range(3):
                p.produce(TOPIC, value=b"%d" % i, partition=part)
        check(p.flush(60) == 0, "produce: undelivered messages")
    want = member_offsets(args.round)
    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "members",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
        }
    )
    c.subscribe([TOPIC])
    wait_until("members: 3 partitions assigned", 60, lambda: (c.poll(0.2), len(c.assignment()) == 3)[1], interval=0)
    # Commit through the member: explicit offsets with metadata.
    tps = [TopicPartition(TOPIC, p, o, metadata="round%d-p%d" % (args.round, p)) for p, o in want.items()]
    res = c.commit(offsets=tps, asynchronous=False)
    for tp in res:
        check(tp.error is None, "commit %s: %s" % (tp, tp.error))
    s = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "standalone", "enable.auto.commit": False})
    s.assign([TopicPartition(TOPIC, p, 0) for p in standalone_offsets(args.round)])
    res = s.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in standalone_offsets(args.round).items()], asynchronous=False)
    for tp in res:
        check(tp.error is None, "standalone commit %s: %s" % (tp, tp.error))
    log("COMMITTED round %d: members %s, standalone %s" % (args.round, want, standalone_offsets(args.round)))
    # Stay in the group until killed.
    while True:
        c.poll(0.5)


def check_phase(args):
    want = member_offsets(args.round)
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "members", "enable.auto.commit": False})
    got = c.committed([TopicPartition(TOPIC, p) for p in range(3)], timeout=30)
    for tp in got:
        check(tp.error is None, "committed %s: %s" % (tp, tp.error))
        check(
            tp.offset == want[tp.partition],
            "group members, partition %d: committed %d after the restart, want %d"
            % (tp.partition, tp.offset, want[tp.partition]),
        )
        meta = "round%d-p%d" % (args.round, tp.partition)
        check(tp.metadata == meta, "partition %d: metadata %r, want %r" % (tp.partition, tp.metadata, meta))
    c.close()
    s = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "standalone", "enable.auto.commit": False})
    got = s.committed([TopicPartition(TOPIC, p) for p in range(3)], timeout=30)
    sw = standalone_offsets(args.round)
    for tp in got:
        w = sw.get(tp.partition, -1001)  # OFFSET_INVALID: nothing committed
        check(tp.offset == w, "group standalone, partition %d: committed %d, want %d" % (tp.partition, tp.offset, w))
    s.close()

    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    res = admin.list_group_offsets({"members": None, "standalone": None})
    kp = {g: {tp.partition: om.offset for tp, om in offs.items() if om.offset >= 0} for g, offs in res.items()}
    check(kp == {"members": want, "standalone": sw}, "kafka-python list_group_offsets: %s" % kp)
    admin.close()
    log("OK: round %d offsets survived the crash: members %s, standalone %s" % (args.round, want, sw))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--phase", choices=["commit", "check"], required=True)
    ap.add_argument("--round", type=int, default=1)
    args = ap.parse_args()
    if args.phase == "commit":
        commit(args)
    else:
        check_phase(args)


if __name__ == "__main__":
    main_wrapper(main)
