"""Produces records over SASL_SSL with PLAIN and reads them back with kafka-python:

  sasl_kafka_python.py BOOTSTRAP TOPIC CA USER PASSWORD

prints `ROUNDTRIP sent=<n> received=<n> equal=<true|false>`, or `REFUSED <error>` when
authentication fails.
"""

import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError


def main():
    bootstrap, topic, ca, user, password = sys.argv[1:6]
    security = {
        "bootstrap_servers": bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": user,
        "sasl_plain_password": password,
        "ssl_cafile": ca,
    }
    sent = [(f"k{i}".encode(), f"v{i} \u00fc".encode("utf-8")) for i in range(100)]
    try:
        producer = KafkaProducer(**security)
        for key, value in sent:
            producer.send(topic, value=value, key=key, partition=0)
        producer.flush(30)
        producer.close()
    except KafkaError as e:
        print(f"REFUSED {type(e).__name__}: {e}")
        return
    consumer = KafkaConsumer(**security, enable_auto_commit=False, consumer_timeout_ms=10000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    received = []
    for m in consumer:
        received.append((m.key, m.value))
        if len(received) == len(sent):
            break
    consumer.close()
    print(f"ROUNDTRIP sent={len(sent)} received={len(received)} "
          f"equal={'true' if received == sent else 'false'}")


if __name__ == "__main__":
    main()
