"""Produces records to a TLS listener and reads them back with confluent-kafka
(librdkafka), with a client certificate, or SASL credentials, when given:

  ssl_roundtrip.py BOOTSTRAP TOPIC CA [CERT KEY | sasl MECHANISM USER PASSWORD]

prints `ROUNDTRIP sent=<n> received=<n> equal=<true|false>`; exits 1 on any error.
"""

import sys
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition


def main():
    bootstrap, topic, ca = sys.argv[1:4]
    config = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SSL",
        "ssl.ca.location": ca,
    }
    if len(sys.argv) > 4 and sys.argv[4] == "sasl":
        config["security.protocol"] = "SASL_SSL"
        config["sasl.mechanisms"] = sys.argv[5]
        config["sasl.username"] = sys.argv[6]
        config["sasl.password"] = sys.argv[7]
    elif len(sys.argv) > 5:
        config["ssl.certificate.location"] = sys.argv[4]
        config["ssl.key.location"] = sys.argv[5]
    roundtrip(config, topic, 200)


def roundtrip(config, topic, count):
    """Produces `count` records to partition 0 of the new `topic` (idempotent), reads them
    back from offset 0 and prints the ROUNDTRIP line; exits 1 on any error. Also used by
    scram_admin.py."""
    sent = [(f"k{i}".encode(), f"value {i} \u00e9\u4e2d".encode("utf-8")) for i in range(count)]
    errors = []
    producer = Producer({**config, "enable.idempotence": True})
    for key, value in sent:
        producer.produce(topic, value, key, partition=0,
                         on_delivery=lambda err, _msg: err and errors.append(err))
    producer.flush(30)
    if errors or len(producer) > 0:
        sys.exit(f"ERROR delivery failed: {errors[:3]}")
    consumer = Consumer({**config, "group.id": f"ssl-{uuid.uuid4()}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    received = []
    while len(received) < len(sent):
        m = consumer.poll(10)
        if m is None:
            break
        if m.error():
            sys.exit(f"ERROR {m.error()}")
        received.append((m.key(), m.value()))
    consumer.close()
    print(f"ROUNDTRIP sent={len(sent)} received={len(received)} "
          f"equal={'true' if received == sent else 'false'}")


if __name__ == "__main__":
    main()
