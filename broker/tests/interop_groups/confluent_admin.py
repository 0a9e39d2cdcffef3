#!/usr/bin/env python3
"""confluent-kafka AdminClient against a kmirror broker: configs, groups, records.

1. Topic configs: describe_configs; incremental_alter_configs SET / DELETE of
   retention.ms; the legacy alter_configs; an unknown key and a bad value are rejected
   with an error and change nothing. The broker resource is described too.
2. Groups: a consumer group consumes and commits; list_consumer_groups,
   describe_consumer_groups (state, member, assignment), list_consumer_group_offsets;
   delete_consumer_groups is refused while the member is in the group; after it closed,
   alter_consumer_group_offsets commits into the empty group, and delete_consumer_groups
   succeeds (then the group and its offsets are gone).
3. delete_records: the low watermark moves (returned and via get_watermark_offsets), and
   a consumer from the beginning starts there.
4. Retention: a topic with segment.bytes=1024 holding records timestamped two days ago
   (many segments) keeps them under the default 7-day retention; altering retention.ms to
   one hour makes the broker delete the old segments: the low watermark advances.
"""

import argparse
import glob
import os
import time
import uuid

from common import check, ck_create_topic, fail, log, main_wrapper, wait_until

from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)

T = 30  # seconds for each admin call


def describe_topic(admin, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([res], request_timeout=T)[res].result(T)


def incr(admin, topic, entries):
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    return admin.incremental_alter_configs([res], request_timeout=T)[res].result(T)


def expect_error(what, fn, codes=None):
    try:
        fn()
    except KafkaException as e:
        err = e.args[0]
        if codes is not None and err.code() not in codes:
            fail("%s: failed with %s, want one of %s" % (what, err, codes))
        log("%s: refused as expected: %s" % (what, err))
        return err
    fail("%s: succeeded, want an error" % what)


def configs(admin, args):
    topic = "cfg-" + uuid.uuid4().hex[:6]
    ck_create_topic(admin, topic, 3)
    d = describe_topic(admin, topic)
    for key in ("retention.ms", "segment.bytes", "cleanup.policy", "retention.bytes"):
        check(key in d, "describe_configs(%s) lacks %s; has %s" % (topic, key, sorted(d)))
    check(d["retention.ms"].value == "604800000", "default retention.ms is %r" % d["retention.ms"].value)
    check(
        d["retention.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
        "unset retention.ms reported as a topic override",
    )

    incr(admin, topic, [ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    d = describe_topic(admin, topic)
    check(d["retention.ms"].value == "3600000", "retention.ms after SET is %r" % d["retention.ms"].value)
    check(
        d["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
        "retention.ms after SET has source %r" % d["retention.ms"].source,
    )
    log("incremental_alter_configs SET retention.ms=3600000: read back")

    incr(admin, topic, [ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    d = describe_topic(admin, topic)
    check(d["retention.ms"].value == "604800000", "retention.ms after DELETE is %r" % d["retention.ms"].value)
    log("incremental_alter_configs DELETE retention.ms: back to the default")

    # Legacy AlterConfigs replaces the topic's whole override set.
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "7200000", "cleanup.policy": "delete"})
    admin.alter_configs([res], request_timeout=T)[res].result(T)
    d = describe_topic(admin, topic)
    check(d["retention.ms"].value == "7200000", "retention.ms after alter_configs is %r" % d["retention.ms"].value)
    log("alter_configs retention.ms=7200000: read back")

    bad = [
        ("unknown key", "no.such.config", "1"),
        ("bad value", "retention.ms", "soon"),
        ("value out of range", "retention.ms", "-5"),
        ("bad choice", "cleanup.policy", "shred"),
    ]
    for what, key, value in bad:
        expect_error(
            "incremental_alter_configs %s %s=%s" % (what, key, value),
            lambda: incr(admin, topic, [ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)]),
            codes=(KafkaError.INVALID_CONFIG, KafkaError.INVALID_REQUEST, KafkaError.UNKNOWN_TOPIC_OR_PART),
        )
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "soon"})
    expect_error(
        "alter_configs retention.ms=soon",
        lambda: admin.alter_configs([res], request_timeout=T)[res].result(T),
        codes=(KafkaError.INVALID_CONFIG, KafkaError.INVALID_REQUEST),
    )
    d = describe_topic(admin, topic)
    check(d["retention.ms"].value == "7200000", "a rejected change altered retention.ms: %r" % d["retention.ms"].value)
    check("no.such.config" not in d, "a rejected unknown key shows up in describe_configs")

    res = ConfigResource(ResourceType.BROKER, "0")
    b = admin.describe_configs([res], request_timeout=T)[res].result(T)
    check("log.retention.ms" in b, "broker configs lack log.retention.ms: %s" % sorted(b))
    log("configs OK (%d topic keys, %d broker keys)" % (len(d), len(b)))


def produce(bootstrap, topic, per_partition, partitions, timestamp=None, value_bytes=10):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    failed = []

    def cb(err, msg):
        if err is not None:
            failed.append(str(err))

    for i in range(per_partition):
        for part in range(partitions):
            kw = {"timestamp": timestamp} if timestamp is not None else {}
            p.produce(topic, value=(b"v%d-" % i).ljust(value_bytes, b"x"), partition=part, on_delivery=cb, **kw)
            p.poll(0)
    check(p.flush(60) == 0, "produce to %s: undelivered messages" % topic)
    check(not failed, "produce to %s: %s" % (topic, failed[:3]))


def groups(admin, args):
    topic = "grp-" + uuid.uuid4().hex[:6]
    group = "admin-g-" + uuid.uuid4().hex[:6]
    ck_create_topic(admin, topic, 3)
    produce(args.bootstrap, topic, 30, 3)
    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
        }
    )
    c.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 90
    while got < 90:
        if time.monotonic() > deadline:
            fail("group consumer got %d of 90 messages" % got)
        msgs = c.consume(num_messages=100, timeout=0.5)
        msgs = [m for m in msgs if not m.error()]
        got += len(msgs)
        if msgs:
            c.commit(asynchronous=False)
    log("group %s consumed and committed 90 messages" % group)

    def listed():
        res = admin.list_consumer_groups(request_timeout=T).result(T)
        check(not res.errors, "list_consumer_groups errors: %s" % res.errors)
        return {g.group_id: g for g in res.valid}

    groups_now = listed()
    check(group in groups_now, "list_consumer_groups lacks %s: %s" % (group, sorted(groups_now)))
    check(
        groups_now[group].state == ConsumerGroupState.STABLE,
        "list_consumer_groups state of %s: %s" % (group, groups_now[group].state),
    )
    check(not groups_now[group].is_simple_consumer_group, "%s listed as a simple group" % group)

    desc = admin.describe_consumer_groups([group], request_timeout=T)[group].result(T)
    check(desc.state == ConsumerGroupState.STABLE, "describe state %s" % desc.state)
    check(len(desc.members) == 1, "describe: %d members" % len(desc.members))
    parts = sorted(tp.partition for tp in desc.members[0].assignment.topic_partitions if tp.topic == topic)
    check(parts == [0, 1, 2], "describe: member assignment %s" % parts)
    check(desc.partition_assignor in ("range", "roundrobin"), "describe: assignor %r" % desc.partition_assignor)
    check(desc.coordinator is not None and desc.coordinator.id == 0, "describe: coordinator %s" % desc.coordinator)
    log("describe_consumer_groups: %s, member %s, assignor %s" % (desc.state, desc.members[0].client_id, desc.partition_assignor))

    def offsets():
        req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(3)])]
        r = admin.list_consumer_group_offsets(req, request_timeout=T)[group].result(T)
        return {tp.partition: tp.offset for tp in r.topic_partitions}

    off = offsets()
    check(off == {0: 30, 1: 30, 2: 30}, "list_consumer_group_offsets: %s" % off)
    log("list_consumer_group_offsets: %s" % off)

    expect_error(
        "delete_consumer_groups with a live member",
        lambda: admin.delete_consumer_groups([group], request_timeout=T)[group].result(T),
        codes=(KafkaError.NON_EMPTY_GROUP,),
    )
    c.close()
    desc = wait_until(
        "group %s empty after close" % group,
        30,
        lambda: (lambda d: d if d.state == ConsumerGroupState.EMPTY else None)(
            admin.describe_consumer_groups([group], request_timeout=T)[group].result(T)
        ),
    )
    check(not desc.members, "empty group has members: %s" % desc.members)
    # An admin commit (generation -1, no member) into the empty group.
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 5), TopicPartition(topic, 2, 12)])]
    res = admin.alter_consumer_group_offsets(req, request_timeout=T)[group].result(T)
    for tp in res.topic_partitions:
        check(tp.error is None, "alter_consumer_group_offsets %s: %s" % (tp, tp.error))
    off = offsets()
    check(off == {0: 5, 1: 30, 2: 12}, "list_consumer_group_offsets after alter: %s" % off)
    log("alter_consumer_group_offsets of the empty group: %s" % off)
    admin.delete_consumer_groups([group], request_timeout=T)[group].result(T)
    groups_now = listed()
    check(group not in groups_now, "%s still listed after delete_consumer_groups" % group)
    off = offsets()
    check(all(o < 0 for o in off.values()), "offsets after delete_consumer_groups: %s" % off)
    expect_error(
        "delete_consumer_groups of a deleted group",
        lambda: admin.delete_consumer_groups([group], request_timeout=T)[group].result(T),
        codes=(KafkaError.GROUP_ID_NOT_FOUND,),
    )
    log("groups OK")
    return topic


def delete_records(admin, args, topic):
    # topic: 3 partitions x 30 records.
    req = [TopicPartition(topic, 0, 10), TopicPartition(topic, 1, -1)]
    res = admin.delete_records(req, request_timeout=T, operation_timeout=T)
    lows = {}
    for tp, fut in res.items():
        lows[tp.partition] = fut.result(T).low_watermark
    check(lows == {0: 10, 1: 30}, "delete_records low watermarks: %s" % lows)
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=T) for p in range(3)}
    check(marks == {0: (10, 30), 1: (30, 30), 2: (0, 30)}, "watermarks after delete_records: %s" % marks)
    c.assign([TopicPartition(topic, 0, -2)])  # OFFSET_BEGINNING
    first = None
    deadline = time.monotonic() + 30
    while first is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            first = m.offset()
    c.close()
    check(first == 10, "consuming partition 0 from the beginning starts at %s, want 10" % first)
    expect_error(
        "delete_records beyond the end offset",
        lambda: admin.delete_records([TopicPartition(topic, 2, 31)], request_timeout=T)[TopicPartition(topic, 2, 31)].result(T),
        codes=(KafkaError.OFFSET_OUT_OF_RANGE,),
    )
    log("delete_records OK: %s" % marks)


SEGMENT_BYTES = 1 << 20
OLD = 120


def retention(admin, args):
    topic = "ret-" + uuid.uuid4().hex[:6]
    ck_create_topic(admin, topic, 1, config={"segment.bytes": str(SEGMENT_BYTES)})
    two_days_ago = int(time.time() * 1000) - 2 * 86400 * 1000
    # One message per produce call is not guaranteed to be one batch; 100 KiB values and
    # 1 MiB segments (Kafka 4's minimum, KIP-1030) still make many segments.
    p = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 0, "batch.num.messages": 5, "acks": "all"})
    for i in range(OLD):
        p.produce(topic, value=(b"old-%d-" % i).ljust(100 * 1024, b"o"), partition=0, timestamp=two_days_ago + i)
        if i % 5 == 4:
            p.flush(30)
    check(p.flush(60) == 0, "old messages undelivered")
    # A few recent ones, which must stay.
    for i in range(5):
        p.produce(topic, value=b"new-%d" % i, partition=0)
    check(p.flush(60) == 0, "new messages undelivered")

    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=T)
    check((lo, hi) == (0, OLD + 5), "watermarks before lowering retention: %s" % ((lo, hi),))
    if args.data_dir:
        segs = glob.glob(os.path.join(args.data_dir, topic + "-0", "*.log"))
        log("%s: %d segments on disk" % (topic, len(segs)))
        check(len(segs) >= 10, "only %d segments with segment.bytes=1 MiB" % len(segs))
    # Seconds pass under the default retention (7 days): nothing may go.
    time.sleep(2)
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=T)
    check(lo == 0, "low watermark %d under the default 7-day retention" % lo)

    incr(admin, topic, [ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])

    def advanced():
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=T)
        return (lo, hi) if lo > 0 else None

    lo, hi = wait_until("low watermark advance after retention.ms=3600000", 30, advanced, interval=0.5)
    check(hi == OLD + 5, "end offset %d after retention, want %d" % (hi, OLD + 5))
    check(lo <= OLD, "retention deleted recent records: low watermark %d" % lo)
    # The recent records are still readable.
    c.assign([TopicPartition(topic, 0, OLD)])
    vals = []
    deadline = time.monotonic() + 30
    while len(vals) < 5 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            vals.append(m.value())
    c.close()
    check(vals == [b"new-%d" % i for i in range(5)], "recent records after retention: %s" % vals)
    if args.data_dir:
        segs = glob.glob(os.path.join(args.data_dir, topic + "-0", "*.log"))
        log("%s: %d segments on disk after retention" % (topic, len(segs)))
    log("retention OK: low watermark %d, end offset %d" % (lo, hi))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    configs(admin, args)
    topic = groups(admin, args)
    delete_records(admin, args, topic)
    retention(admin, args)
    log("OK: admin configs, groups, delete_records and retention")


if __name__ == "__main__":
    main_wrapper(main)
