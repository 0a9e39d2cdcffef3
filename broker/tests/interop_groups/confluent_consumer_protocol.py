#!/usr/bin/env python3
"""A KIP-848 consumer (group.protocol=consumer) against a broker without the consumer
protocol enabled: as with Kafka 3.9+ before group.version is raised, librdkafka is told
(ConsumerGroupHeartbeat answered UNSUPPORTED_VERSION) and reports a fatal error, instead
of looking for a coordinator forever. A classic consumer of the same group id then
consumes normally.
"""

import argparse
import time

from common import check, ck_create_topic, log, main_wrapper

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

TOPIC = "kip848"


def first_error(consumer, errors, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            msg = consumer.poll(0.5)
        except KafkaException as e:
            return e.args[0]
        if msg is not None and msg.error():
            return msg.error()
        if errors:
            return errors[0]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    args = ap.parse_args()
    ck_create_topic(AdminClient({"bootstrap.servers": args.bootstrap}), TOPIC, 1)
    p = Producer({"bootstrap.servers": args.bootstrap})
    p.produce(TOPIC, value=b"one")
    check(p.flush(60) == 0, "produce: undelivered message")

    errors = []
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "kip848",
        "group.protocol": "consumer",
        "error_cb": errors.append,
    })
    c.subscribe([TOPIC])
    err = first_error(c, errors, 60)
    check(err is not None, "group.protocol=consumer: no error within 60 s")
    text = str(err)
    fatal = err.fatal() or err.code() == KafkaError._FATAL
    check(fatal and "not supported" in text and "ConsumerGroupHeartbeat" in text,
          f"group.protocol=consumer: expected a fatal 'not supported' error, got {text}")
    log(f"consumer protocol refused: {text}")
    c.close()

    classic = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "kip848",
        "auto.offset.reset": "earliest",
    })
    classic.subscribe([TOPIC])
    deadline = time.time() + 60
    got = None
    while got is None and time.time() < deadline:
        msg = classic.poll(0.5)
        if msg is not None:
            check(not msg.error(), f"classic consumer: {msg.error()}")
            got = msg.value()
    classic.close()
    check(got == b"one", f"classic consumer got {got!r}")
    log("OK: group.protocol=consumer is refused at once; the classic protocol consumes")


if __name__ == "__main__":
    main_wrapper(main)
