#!/usr/bin/env python3
"""kafka-python consumer group: commit, broker restart, resume from the committed offsets.

--phase first: creates a 4-partition topic with KafkaAdminClient, produces 100 messages
to each partition, and runs a group of two KafkaConsumers (threads; group_id,
enable_auto_commit=False) that process each partition only up to a target offset and
commit exactly that with consumer.commit({tp: OffsetAndMetadata(...)}). Runs until the
two members share the four partitions and the group's committed offsets (read with
KafkaAdminClient.list_group_offsets) are the targets; then both close. Writes the topic,
group and targets to --state.

(The harness restarts the broker here: SIGTERM or SIGKILL.)

--phase resume: the committed offsets must still be the targets; produces 20 more
messages per partition; a new consumer in the same group must receive exactly the
messages from each target offset to the new end, in order, once each, and nothing
before the targets. Also checks KafkaAdminClient.describe_configs of the topic, and
list_groups, describe_groups (Empty), delete_group_offsets and delete_groups.
"""

import argparse
import json
import threading
import time
import uuid

from common import check, fail, log, main_wrapper, wait_until

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.structs import OffsetAndMetadata

PARTITIONS = 4
FIRST = 100
MORE = 20
# Partition -> committed offset after the first phase (2: everything; 3: one message).
TARGETS = {0: 40, 1: 75, 2: 100, 3: 1}
# How long a poll may block. kafka-python 3.0.12 leaves a member that finishes a rebalance
# after its poll() has timed out without heartbeats and without its assignment (the sync
# result is never applied, and the next poll finds nothing to rejoin), so the coordinator
# expires it and the group never settles. A rebalance here takes up to a heartbeat interval
# (1 s) plus the round trips: poll for longer than that.
POLL_MS = 3000


def value(p, i):
    return b"p%d-%d" % (p, i)


def produce(bootstrap, topic, start, count):
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futs = []
    for i in range(start, start + count):
        for p in range(PARTITIONS):
            futs.append((p, i, prod.send(topic, value=value(p, i), partition=p)))
    prod.flush(60)
    for p, i, f in futs:
        md = f.get(timeout=60)
        check(md.offset == i, "message %d of partition %d stored at offset %d" % (i, p, md.offset))
    prod.close()


def committed(admin, group, topic):
    res = admin.list_group_offsets({group: None})[group]
    return {tp.partition: om.offset for tp, om in res.items() if tp.topic == topic and om.offset >= 0}


def first(args):
    topic = "kp-" + uuid.uuid4().hex[:6]
    group = "kp-g-" + uuid.uuid4().hex[:6]
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}}, wait_for_metadata=True)
    produce(args.bootstrap, topic, 0, FIRST)
    log("topic %s: %d messages in each of %d partitions" % (topic, FIRST, PARTITIONS))

    stop = threading.Event()
    errors = []
    assignments = {}
    processed = {"a": 0, "b": 0}

    def member(name):
        try:
            c = KafkaConsumer(
                topic,
                bootstrap_servers=args.bootstrap,
                group_id=group,
                client_id="kp-" + name,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=10000,
                heartbeat_interval_ms=1000,
            )
            while not stop.is_set():
                batch = c.poll(timeout_ms=POLL_MS)
                assignments[name] = sorted(tp.partition for tp in c.assignment())
                commit = {}
                for tp, records in batch.items():
                    for r in records:
                        check(r.value == value(tp.partition, r.offset), "%s: %s@%d holds %r" % (name, tp, r.offset, r.value))
                        if r.offset < TARGETS[tp.partition]:
                            processed[name] += 1
                            commit[tp] = OffsetAndMetadata(r.offset + 1, "", -1)
                if commit:
                    try:
                        c.commit(commit)
                    except Exception as e:  # noqa: BLE001 - a commit racing a rebalance
                        log("%s: commit refused (%r); the records come again" % (name, e))
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append("%s: %r" % (name, e))
            stop.set()

    threads = [threading.Thread(target=member, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    try:
        def done():
            check(not errors, "member failed: %s" % errors)
            a, b = assignments.get("a"), assignments.get("b")
            shared = bool(a) and bool(b) and sorted(a + b) == list(range(PARTITIONS))
            return shared and committed(admin, group, topic) == {p: o for p, o in TARGETS.items() if o > 0}

        wait_until("two members sharing 4 partitions with the targets committed", 90, done, interval=0.5)
        log("assignments %s; processed %s; committed %s" % (assignments, processed, committed(admin, group, topic)))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    check(not errors, "member failed: %s" % errors)
    admin.close()
    with open(args.state, "w") as f:
        json.dump({"topic": topic, "group": group}, f)
    log("OK: first phase, group %s committed %s" % (group, TARGETS))


def resume(args):
    with open(args.state) as f:
        st = json.load(f)
    topic, group = st["topic"], st["group"]
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    got = committed(admin, group, topic)
    check(got == TARGETS, "committed offsets after the restart: %s, want %s" % (got, TARGETS))
    log("committed offsets after the restart: %s" % got)

    produce(args.bootstrap, topic, FIRST, MORE)
    end = FIRST + MORE
    c = KafkaConsumer(
        topic,
        bootstrap_servers=args.bootstrap,
        group_id=group,
        client_id="kp-resume",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10000,
    )
    seen = {p: [] for p in range(PARTITIONS)}
    want = {p: list(range(TARGETS[p], end)) for p in range(PARTITIONS)}
    deadline = time.monotonic() + 90
    quiet_until = None
    while True:
        if time.monotonic() > deadline:
            fail("resume: got %s, want offsets %s" % ({p: (v[:1], len(v)) for p, v in seen.items()}, {p: (w[0], len(w)) for p, w in want.items()}))
        batch = c.poll(timeout_ms=POLL_MS)
        for tp, records in batch.items():
            for r in records:
                check(r.value == value(tp.partition, r.offset), "%s@%d holds %r" % (tp, r.offset, r.value))
                check(
                    r.offset >= TARGETS[tp.partition],
                    "partition %d offset %d re-delivered: the group had committed %d"
                    % (tp.partition, r.offset, TARGETS[tp.partition]),
                )
                seen[tp.partition].append(r.offset)
        if seen == want:
            # Everything arrived: anything more in the next seconds would be a repeat.
            if quiet_until is None:
                quiet_until = time.monotonic() + 3
            elif time.monotonic() > quiet_until:
                break
        for p in range(PARTITIONS):
            check(seen[p] == want[p][: len(seen[p])], "partition %d: got offsets %s..., want %s..." % (p, seen[p][:10], want[p][:10]))
    c.commit()
    c.close()
    got = committed(admin, group, topic)
    check(got == {p: end for p in range(PARTITIONS)}, "committed after resume: %s" % got)
    log("resumed: %s messages from the committed offsets, none repeated" % {p: len(v) for p, v in seen.items()})

    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    try:
        retention = res["topic"][topic]["retention.ms"]["value"]
    except (KeyError, TypeError):
        fail("describe_configs(%s) has no topic/%s/retention.ms: %s" % (topic, topic, str(res)[:2000]))
    check(retention == "604800000", "describe_configs(%s): retention.ms=%r" % (topic, retention))
    # Group admin through kafka-python: list, describe, delete offsets, delete the group.
    listed = admin.list_groups()
    check(group in str(listed), "list_groups lacks %s: %s" % (group, listed))
    desc = admin.describe_groups([group])
    check(group in str(desc) and "Empty" in str(desc), "describe_groups(%s): %s" % (group, str(desc)[:1000]))
    admin.delete_group_offsets(group, [TopicPartition(topic, 3)])
    got = committed(admin, group, topic)
    check(got == {p: end for p in range(3)}, "committed after delete_group_offsets(partition 3): %s" % got)
    admin.delete_groups([group])
    check(group not in str(admin.list_groups()), "%s listed after delete_groups" % group)
    admin.close()
    log("OK: resume after restart")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--phase", choices=["first", "resume"], required=True)
    args = ap.parse_args()
    if args.phase == "first":
        first(args)
    else:
        resume(args)


if __name__ == "__main__":
    main_wrapper(main)
