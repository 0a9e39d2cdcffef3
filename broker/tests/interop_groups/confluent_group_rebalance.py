#!/usr/bin/env python3
"""confluent-kafka consumer group over a 6-partition topic, across rebalances.

The controller (this script without --member) creates the topic and runs group members
as child processes (this script with --member NAME), reading what they print:

  1. members a, b, c join: every partition must end up assigned to exactly one of them
     (seen through their on_assign / on_revoke callbacks);
  2. a producer thread starts writing --count messages (value = sequence number, to
     partition seq % 6) and keeps going through the following steps;
  3. a close()s (LeaveGroup): its partitions move to b and c;
  4. d joins: the 6 partitions are spread over b, c, d;
  5. b is killed with SIGKILL (no LeaveGroup): after the session timeout its partitions
     move to c and d;
  6. once everything is produced and consumed, c and d close.

Members consume with enable.auto.commit=false and commit synchronously after each
processed batch. At the end every produced message must have been consumed at least once
(nothing lost across the rebalances), each (partition, offset) must always carry the same
message, and the group's committed offsets must equal the end offsets. Duplicates
(messages re-delivered after a rebalance or the kill) are counted and reported.
"""

import argparse
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid

from common import check, ck_create_topic, fail, log, main_wrapper

PARTITIONS = 6


def member_main(args):
    from confluent_kafka import Consumer, KafkaError, KafkaException

    name = args.member
    out_lock = threading.Lock()

    def out(line):
        with out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def fmt(parts):
        return ",".join(str(tp.partition) for tp in sorted(parts, key=lambda t: t.partition)) or "-"

    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "client.id": "member-" + name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": args.session_timeout_ms,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 60000,
        }
    )

    def on_assign(consumer, parts):
        out("ASSIGN %s %s" % (name, fmt(parts)))

    def on_revoke(consumer, parts):
        out("REVOKE %s %s" % (name, fmt(parts)))

    def on_lost(consumer, parts):
        out("LOST %s %s" % (name, fmt(parts)))

    c.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    stop = threading.Event()

    def read_stdin():
        for line in sys.stdin:
            if line.strip() == "close":
                break
        stop.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    commits = failed_commits = 0
    while not stop.is_set():
        msgs = c.consume(num_messages=50, timeout=0.5)
        processed = 0
        for m in msgs:
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                out("ERROR %s %s" % (name, m.error()))
                continue
            out("MSG %s %d %d %s" % (name, m.partition(), m.offset(), m.value().decode()))
            processed += 1
        if processed:
            try:
                c.commit(asynchronous=False)
                commits += 1
            except KafkaException as e:
                # Expected now and then: a commit racing a rebalance is refused
                # (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, ...); the messages are
                # then delivered again to the partition's next owner.
                failed_commits += 1
                out("COMMITFAIL %s %s" % (name, e.args[0]))
    out("STATS %s commits=%d failed_commits=%d" % (name, commits, failed_commits))
    c.close()
    out("CLOSED %s" % name)


class Group:
    """The controller's view of the members, built from their output lines."""

    def __init__(self, args):
        self.args = args
        self.procs = {}
        self.alive = set()
        self.assigned = {}
        self.events = queue.Queue()
        self.consumed = {}  # seq -> times consumed
        self.at = {}  # (partition, offset) -> seq
        self.history = []  # assignment log lines
        self.commit_failures = 0
        self.stats = []

    def spawn(self, name):
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--bootstrap", self.args.bootstrap,
            "--topic", self.args.topic,
            "--group", self.args.group,
            "--session-timeout-ms", str(self.args.session_timeout_ms),
            "--member", name,
        ]
        p = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.procs[name] = p
        self.alive.add(name)
        self.assigned[name] = set()

        def reader():
            for line in p.stdout:
                self.events.put(line.rstrip("\n"))
            self.events.put("EXIT %s %s" % (name, p.wait()))

        threading.Thread(target=reader, daemon=True).start()
        log("spawned member %s (pid %d)" % (name, p.pid))

    def handle(self, line):
        f = line.split(" ")
        kind, name = f[0], f[1]
        if kind == "MSG":
            p, o, seq = int(f[2]), int(f[3]), int(f[4])
            check(seq % PARTITIONS == p, "member %s got seq %d from partition %d" % (name, seq, p))
            prev = self.at.setdefault((p, o), seq)
            check(prev == seq, "partition %d offset %d was seq %d, now seq %d" % (p, o, prev, seq))
            self.consumed[seq] = self.consumed.get(seq, 0) + 1
        elif kind in ("ASSIGN", "REVOKE", "LOST"):
            parts = set() if f[2] == "-" else {int(x) for x in f[2].split(",")}
            if kind == "ASSIGN":
                self.assigned[name] = parts
            else:
                self.assigned[name] = self.assigned[name] - parts
            self.history.append(line)
            log(line)
        elif kind == "COMMITFAIL":
            self.commit_failures += 1
            log(line)
        elif kind == "EXIT":
            log(line)
            if name in self.alive:
                self.alive.discard(name)
                self.assigned[name] = set()
                if name not in getattr(self, "may_exit", set()):
                    fail("member %s exited unexpectedly (status %s)" % (name, f[2]))
        elif kind == "ERROR":
            fail(line)
        elif kind == "STATS":
            self.stats.append(line)
            log(line)
        else:
            log(line)

    def pump(self, timeout):
        """Handles member output for up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                line = self.events.get(timeout=left)
            except queue.Empty:
                return
            self.handle(line)

    def stable(self, members):
        """True when exactly `members` hold partitions, each partition exactly once."""
        if set(members) != self.alive:
            return False
        seen = []
        for m in members:
            if not self.assigned[m]:
                return False
            seen.extend(self.assigned[m])
        return sorted(seen) == list(range(PARTITIONS))

    def await_stable(self, members, timeout, what):
        deadline = time.monotonic() + timeout
        while not self.stable(members):
            if time.monotonic() > deadline:
                fail(
                    "%s: the partitions were not assigned exactly once over %s within %ss; "
                    "now %s" % (what, sorted(members), timeout, self.describe())
                )
            self.pump(0.2)
        log("stable after %s: %s" % (what, self.describe()))
        # Stays so for a moment (no second rebalance pending that moves them again)?
        self.pump(1.0)
        if not self.stable(members):
            log("assignment changed right after %s; waiting again" % what)
            return self.await_stable(members, timeout, what)

    def describe(self):
        return ", ".join(
            "%s=%s" % (m, sorted(self.assigned[m])) for m in sorted(self.alive)
        ) or "(no members)"

    def close(self, name):
        self.may_exit = getattr(self, "may_exit", set()) | {name}
        self.procs[name].stdin.write("close\n")
        self.procs[name].stdin.flush()

    def await_exit(self, name, timeout, what):
        deadline = time.monotonic() + timeout
        while name in self.alive:
            if time.monotonic() > deadline:
                fail("%s: member %s did not exit within %ss" % (what, name, timeout))
            self.pump(0.2)
        rc = self.procs[name].wait()
        check(rc == 0, "member %s exited with status %s after close" % (name, rc))

    def kill(self, name):
        self.may_exit = getattr(self, "may_exit", set()) | {name}
        os.kill(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()
        # Its EXIT line follows; whatever it printed before the kill was processed.

    def kill_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()


def controller_main(args):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    ck_create_topic(admin, args.topic, PARTITIONS)
    log("topic %s created with %d partitions, group %s" % (args.topic, PARTITIONS, args.group))

    g = Group(args)
    try:
        for name in "abc":
            g.spawn(name)
        g.await_stable("abc", 90, "a, b and c joined")

        produced = {"acked": 0, "failed": []}

        def produce():
            p = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5, "acks": "all"})

            def cb(err, msg):
                if err is not None:
                    produced["failed"].append(str(err))
                else:
                    produced["acked"] += 1

            for i in range(args.count):
                while True:
                    try:
                        p.produce(args.topic, value=b"%d" % i, partition=i % PARTITIONS, on_delivery=cb)
                        break
                    except BufferError:
                        p.poll(0.1)
                p.poll(0)
                if i % 20 == 19:
                    # A trickle, so that production spans the rebalances below.
                    time.sleep(0.05)
            p.flush(120)
            produced["done"] = True

        prod = threading.Thread(target=produce, daemon=True)
        prod.start()

        def wait_consumed(n, what):
            deadline = time.monotonic() + 120
            while len(g.consumed) < n:
                if time.monotonic() > deadline:
                    fail("%s: only %d distinct messages consumed" % (what, len(g.consumed)))
                g.pump(0.2)

        wait_consumed(min(300, args.count), "before closing a")
        g.close("a")
        g.await_exit("a", 60, "a.close()")
        g.await_stable("bc", 90, "a closed (LeaveGroup)")

        wait_consumed(min(len(g.consumed) + 300, args.count), "before d joins")
        g.spawn("d")
        g.await_stable("bcd", 90, "d joined")

        wait_consumed(min(len(g.consumed) + 300, args.count), "before killing b")
        before = {m: sorted(g.assigned[m]) for m in g.alive}
        t_kill = time.monotonic()
        g.kill("b")
        log("SIGKILLed member b, which held %s" % before["b"])
        g.await_stable("cd", 120, "b killed (session timeout %d ms)" % args.session_timeout_ms)
        log("b's partitions moved %.1fs after the kill" % (time.monotonic() - t_kill))

        prod.join(180)
        check(not prod.is_alive(), "the producer did not finish")
        check(not produced["failed"], "failed deliveries: %s" % produced["failed"][:5])
        check(produced["acked"] == args.count, "acked %d of %d" % (produced["acked"], args.count))
        deadline = time.monotonic() + 120
        while len(g.consumed) < args.count:
            if time.monotonic() > deadline:
                missing = sorted(set(range(args.count)) - set(g.consumed))
                fail(
                    "%d of %d produced messages were never consumed (lost across rebalances?); "
                    "first missing: %s; assignment: %s"
                    % (len(missing), args.count, missing[:20], g.describe())
                )
            g.pump(0.2)
        # Let the last commits land, then stop the group.
        g.pump(2.0)
        for name in "cd":
            g.close(name)
        for name in "cd":
            g.await_exit(name, 60, "%s.close()" % name)
        g.pump(0.5)
    finally:
        g.kill_all()

    check(set(g.consumed) == set(range(args.count)), "consumed unexpected sequence numbers")
    dups = sum(n - 1 for n in g.consumed.values())
    # The group's committed offsets: every partition consumed and committed to its end.
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group, "enable.auto.commit": False})
    tps = [TopicPartition(args.topic, p) for p in range(PARTITIONS)]
    committed = c.committed(tps, timeout=30)
    for tp in committed:
        check(tp.error is None, "committed(%d): %s" % (tp.partition, tp.error))
        lo, hi = c.get_watermark_offsets(TopicPartition(args.topic, tp.partition), timeout=30)
        check(
            tp.offset == hi,
            "partition %d: committed offset %d, end offset %d" % (tp.partition, tp.offset, hi),
        )
    c.close()
    log(
        "OK: %d messages produced, all consumed by a group that went a,b,c -> b,c -> b,c,d -> c,d; "
        "%d duplicate deliveries; %d commits refused during rebalances; committed offsets at "
        "the end offsets; %d assignment callbacks"
        % (args.count, dups, g.commit_failures, len(g.history))
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="grp-" + uuid.uuid4().hex[:8])
    ap.add_argument("--group", default="g-" + uuid.uuid4().hex[:8])
    ap.add_argument("--count", type=int, default=6000)
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    ap.add_argument("--member")
    args = ap.parse_args()
    if args.member:
        member_main(args)
    else:
        controller_main(args)


if __name__ == "__main__":
    main_wrapper(main)
