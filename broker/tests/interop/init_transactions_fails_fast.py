#!/usr/bin/env python3
"""confluent-kafka's init_transactions() against kmirror-broker, which has no transaction
coordinator: it must fail with a fatal or non-retriable error, not time out.

Prints one line `RESULT {json}` with the error name, fatal, retriable and the seconds it
took. Exits 0 if init_transactions() raised an error other than _TIMED_OUT that is fatal or
not retriable; 1 otherwise (including success, which would mean transactions work).
"""

import argparse
import json
import sys
import time

from confluent_kafka import KafkaError, KafkaException, Producer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    ap.add_argument("--timeout", type=float, default=30.0, help="init_transactions timeout, seconds")
    args = ap.parse_args()

    producer = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": "kmirror-interop-txn"})
    started = time.monotonic()
    try:
        producer.init_transactions(args.timeout)
    except KafkaException as e:
        err = e.args[0]
        result = {
            "error": err.name(),
            "message": err.str(),
            "fatal": err.fatal(),
            "retriable": err.retriable(),
            "seconds": round(time.monotonic() - started, 3),
        }
        print("RESULT " + json.dumps(result))
        ok = err.code() != KafkaError._TIMED_OUT and (err.fatal() or not err.retriable())
        return 0 if ok else 1
    print("RESULT " + json.dumps({"error": None}))
    return 1


if __name__ == "__main__":
    sys.exit(main())
