//! Client quotas of a kmirror-broker process: set and read with kafka-python's
//! AlterClientQuotas / DescribeClientQuotas, kept across a restart, refused with Kafka's
//! errors; and felt by librdkafka (confluent-kafka) producers and consumers, whose
//! `throttle_cb` reports the broker's `throttle_time_ms` (`tests/clients/client_quotas.py`).

use kmirror_testkit::{run_python, BrokerProcess};

fn quotas(args: &[&str]) -> String {
    run_python("client_quotas.py", args)
}

/// `DONE records=<n> throttled_ms=<ms> throttles=<n>` as (records, largest ms, count).
fn done(out: &str) -> (u64, u64, u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with("DONE "))
        .unwrap_or_else(|| panic!("{out}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line}"))
    };
    (
        field("records="),
        field("throttled_ms="),
        field("throttles="),
    )
}

#[test]
fn quotas_are_described_as_set_kept_across_a_restart_and_refused_as_kafka_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(&dir.path().join("data"), &[]);
    let addr = broker.addr();
    for (entity, ops) in [
        ("client-id=mirror", vec!["consumer_byte_rate=1048576"]),
        ("user=<default>", vec!["producer_byte_rate=2048"]),
        (
            "user=alice,client-id=<default>",
            vec!["consumer_byte_rate=4096", "producer_byte_rate=8192"],
        ),
    ] {
        let mut args = vec![addr.as_str(), "alter", entity];
        args.extend(ops);
        assert_eq!(quotas(&args).trim(), "ALTERED", "{entity}");
    }
    let all =
        "ENTRY client-id=<default>,user=alice consumer_byte_rate=4096 producer_byte_rate=8192\n\
               ENTRY client-id=mirror consumer_byte_rate=1048576\n\
               ENTRY user=<default> producer_byte_rate=2048";
    assert_eq!(quotas(&[&addr, "describe"]).trim(), all);
    // Kafka: ClientQuotasImage.matches (exact names, <default>, any name, strict).
    assert_eq!(
        quotas(&[&addr, "describe", "client-id=mirror"]).trim(),
        "ENTRY client-id=mirror consumer_byte_rate=1048576"
    );
    assert_eq!(
        quotas(&[&addr, "describe", "user=*"]).lines().count(),
        2,
        "user=* matches both user entities"
    );
    assert_eq!(
        quotas(&[&addr, "describe", "--strict", "user=<default>"]).trim(),
        "ENTRY user=<default> producer_byte_rate=2048"
    );
    assert_eq!(
        quotas(&[&addr, "describe", "client-id=<default>"]).trim(),
        "ENTRY client-id=<default>,user=alice consumer_byte_rate=4096 producer_byte_rate=8192"
    );

    // Kafka's refusals: 42 INVALID_REQUEST, 35 UNSUPPORTED_VERSION, with Kafka's messages.
    for (args, expected) in [
        (
            vec!["alter", "client-id=x", "consumer_byte_rat=10"],
            "ALTER-ERROR 42 Invalid configuration key consumer_byte_rat",
        ),
        (
            vec!["alter", "client-id=x", "producer_byte_rate=1.5"],
            "ALTER-ERROR 42 producer_byte_rate cannot be a fractional value.",
        ),
        (
            vec!["alter", "client-id=x", "producer_byte_rate=0"],
            "ALTER-ERROR 42 Quota producer_byte_rate must be greater than 0",
        ),
        (
            vec!["alter", "client-id=", "producer_byte_rate=10"],
            "ALTER-ERROR 42 Empty client-id not supported",
        ),
        (
            vec!["describe", "group=x"],
            "DESCRIBE-ERROR 35 Unsupported entity type group",
        ),
    ] {
        let mut full = vec![addr.as_str()];
        full.extend(args);
        assert_eq!(quotas(&full).trim(), expected);
    }
    // Parsed but not enforced here: refused, never silently accepted.
    let unenforced = quotas(&[&addr, "alter", "client-id=x", "request_percentage=50"]);
    assert!(
        unenforced.contains("ALTER-ERROR 42") && unenforced.contains("not enforced"),
        "{unenforced}"
    );
    let checked = quotas(&[
        &addr,
        "alter",
        "--validate-only",
        "client-id=x",
        "consumer_byte_rate=10",
    ]);
    assert_eq!(checked.trim(), "ALTERED");
    assert_eq!(quotas(&[&addr, "describe", "client-id=x"]).trim(), "");

    broker.terminate_ok();
    broker.restart();
    assert_eq!(quotas(&[&addr, "describe"]).trim(), all);
    assert_eq!(
        quotas(&[&addr, "alter", "client-id=mirror", "consumer_byte_rate="]).trim(),
        "ALTERED"
    );
    assert_eq!(quotas(&[&addr, "describe", "client-id=mirror"]).trim(), "");
}

/// 100 KB/s for client `slow`: its first ~1 MB is within the quota (measured over ten
/// one-second windows, as Kafka measures), the rest is throttled; client `fast` is not.
#[test]
fn librdkafka_clients_over_their_quota_are_throttled_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]);
    let addr = broker.addr();
    let set = quotas(&[
        &addr,
        "alter",
        "client-id=slow",
        "producer_byte_rate=100000",
        "consumer_byte_rate=100000",
    ]);
    assert_eq!(set.trim(), "ALTERED");
    run_python("discovery_admin.py", &[&addr, "create", "quota", "1"]);

    let (records, _, throttles) = done(&quotas(&[
        &addr, "produce", "quota", "fast", "1500", "1000",
    ]));
    assert_eq!((records, throttles), (1500, 0));
    let (records, produce_ms, throttles) = done(&quotas(&[
        &addr, "produce", "quota", "slow", "1500", "1000",
    ]));
    assert_eq!(records, 1500);
    assert!(throttles > 0 && produce_ms > 0, "producer never throttled");

    let (records, _, throttles) = done(&quotas(&[&addr, "consume", "quota", "fast", "3000"]));
    assert_eq!((records, throttles), (3000, 0));
    let (records, fetch_ms, throttles) =
        done(&quotas(&[&addr, "consume", "quota", "slow", "1300"]));
    assert_eq!(records, 1300);
    assert!(throttles > 0 && fetch_ms > 0, "consumer never throttled");
}
