"""Manages SCRAM credentials with confluent-kafka's AdminClient and checks who can
authenticate, over SASL_PLAINTEXT:

  scram_admin.py upsert   BOOTSTRAP ADMIN ADMIN_PW USER PASSWORD MECHANISM ITERATIONS
  scram_admin.py delete   BOOTSTRAP ADMIN ADMIN_PW USER MECHANISM
  scram_admin.py describe BOOTSTRAP ADMIN ADMIN_PW [USER ...]
  scram_admin.py roundtrip BOOTSTRAP USER PASSWORD MECHANISM TOPIC
  scram_admin.py refused  BOOTSTRAP USER PASSWORD MECHANISM

The admin connects as ADMIN with SCRAM-SHA-256. Prints `ALTERED USER` or
`ALTER-ERROR USER CODE MESSAGE`; one `DESCRIBED USER MECHANISM:ITERATIONS ...` or
`DESCRIBE-ERROR USER CODE MESSAGE` line per user; `ROUNDTRIP sent=<n> received=<n>
equal=<true|false>` (ssl_roundtrip.py's, on a new topic named TOPIC-<uuid>); or
`REFUSED <error>`. Exits 1 on any other outcome.
"""

import sys
import time
import uuid

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion,
                                   UserScramCredentialUpsertion)

import ssl_roundtrip


def config(bootstrap, user, password, mechanism):
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def admin(bootstrap, user, password):
    return AdminClient(config(bootstrap, user, password, "SCRAM-SHA-256"))


def alter(client, alteration):
    for user, future in client.alter_user_scram_credentials([alteration]).items():
        try:
            future.result(30)
        except KafkaException as e:
            err = e.args[0]
            print(f"ALTER-ERROR {user} {err.name()} {err.str()}")
            continue
        print(f"ALTERED {user}")


def describe(client, users):
    if users:
        futures = client.describe_user_scram_credentials(users)
    else:
        futures = {None: client.describe_user_scram_credentials()}
    for named, future in futures.items():
        try:
            found = future.result(30)
        except KafkaException as e:
            err = e.args[0]
            print(f"DESCRIBE-ERROR {named} {err.name()} {err.str()}")
            continue
        # Describing everyone answers {user: description}; one user, its description.
        descriptions = found.values() if isinstance(found, dict) else [found]
        for d in descriptions:
            infos = " ".join(f"{i.mechanism.name}:{i.iterations}"
                             for i in d.scram_credential_infos)
            print(f"DESCRIBED {d.user} {infos}")


def roundtrip(bootstrap, user, password, mechanism, topic):
    # A topic of its own for each run, so that the records read back are this run's.
    ssl_roundtrip.roundtrip(config(bootstrap, user, password, mechanism),
                            f"{topic}-{uuid.uuid4()}", 50)


def refused(bootstrap, user, password, mechanism):
    failures = []
    # error_cb reports the authentication failure (served by poll); log_level 2 keeps
    # librdkafka's reconnect attempts out of the output.
    client = AdminClient({**config(bootstrap, user, password, mechanism),
                          "error_cb": failures.append, "log_level": 2})
    deadline = time.monotonic() + 20
    auth = []
    while not auth and time.monotonic() < deadline:
        client.poll(0.5)
        auth = [f for f in failures if f.code() == KafkaError._AUTHENTICATION]
    if not auth:
        sys.exit(f"ERROR not refused: {failures}")
    print(f"REFUSED {auth[0].str()}")


def main():
    command, bootstrap, *args = sys.argv[1:]
    if command == "upsert":
        user, password, target, target_password, mechanism, iterations = args
        info = ScramCredentialInfo(mechanism_of(mechanism), int(iterations))
        alter(admin(bootstrap, user, password),
              UserScramCredentialUpsertion(target, info, target_password.encode()))
    elif command == "delete":
        user, password, target, mechanism = args
        alter(admin(bootstrap, user, password),
              UserScramCredentialDeletion(target, mechanism_of(mechanism)))
    elif command == "describe":
        describe(admin(bootstrap, args[0], args[1]), args[2:])
    elif command == "roundtrip":
        roundtrip(bootstrap, *args)
    elif command == "refused":
        refused(bootstrap, *args)
    else:
        sys.exit(f"ERROR unknown command {command}")


def mechanism_of(name):
    """SCRAM-SHA-512 -> ScramMechanism.SCRAM_SHA_512."""
    return ScramMechanism[name.replace("-", "_")]


if __name__ == "__main__":
    main()
