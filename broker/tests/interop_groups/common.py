"""Helpers shared by the group / offset / idempotence / admin interop scripts.

Each script exits 0 with a summary on success, and non-zero with a message saying what
differed on the first mismatch (`fail`).
"""

import sys
import time


class Mismatch(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Mismatch(msg)


def fail(msg):
    raise Mismatch(msg)


def log(*args):
    print(*args, flush=True)


def main_wrapper(main):
    """Runs main(); a Mismatch exits 1 with its message (other exceptions: a traceback)."""
    try:
        main()
    except Mismatch as e:
        print("MISMATCH: %s" % e, file=sys.stderr, flush=True)
        print("MISMATCH: %s" % e, flush=True)
        sys.exit(1)


def wait_until(what, timeout, fn, interval=0.2):
    """Calls fn() until it returns a truthy value (returned) or `timeout` s pass (fail)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
        except Mismatch:
            raise
        except Exception as e:  # noqa: BLE001 - report the last error on timeout
            last = e
            if time.monotonic() > deadline:
                fail("%s: not within %ss (last error: %r)" % (what, timeout, e))
            time.sleep(interval)
            continue
        if last:
            return last
        if time.monotonic() > deadline:
            fail("%s: not within %ss (last result: %r)" % (what, timeout, last))
        time.sleep(interval)


def ck_create_topic(admin, name, partitions, config=None, timeout=60):
    """confluent-kafka AdminClient: creates a topic and waits for its metadata."""
    from confluent_kafka.admin import NewTopic

    fs = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=30,
    )
    fs[name].result(timeout)

    def ready():
        md = admin.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        return t is not None and t.error is None and len(t.partitions) == partitions

    wait_until("metadata of new topic %s" % name, timeout, ready)
