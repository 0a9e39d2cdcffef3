use super::*;

#[test]
fn validates_types_ranges_and_choices() {
    assert!(validate("retention.ms", "1000").is_ok());
    assert!(validate("retention.ms", "-1").is_ok());
    assert!(validate("retention.ms", "-5").is_err());
    assert!(validate("retention.ms", "soon").is_err());
    assert!(validate("segment.bytes", "99999999999").is_err());
    let at = |release, value| validate_in("segment.bytes", value, release).is_ok();
    assert!(at(KafkaRelease::V4_0, "1048576") && !at(KafkaRelease::V4_0, "1048575"));
    assert!(at(KafkaRelease::V3_9, "14") && !at(KafkaRelease::V3_9, "13"));
    assert!(at(KafkaRelease::V2_8, "102400"));
    assert!(validate("cleanup.policy", "compact,delete").is_ok());
    assert!(validate("cleanup.policy", "shred").is_err());
    assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
    assert!(validate("preallocate", "yes").is_err());
    assert_eq!(
        validate("no.such.key", "1"),
        Err(ConfigError::UnknownKey("no.such.key".into()))
    );
}

#[test]
fn values_are_kept_as_kafka_parses_them() {
    let parsed = |name: &str, value: &str| validate(name, value).unwrap();
    assert_eq!(parsed("retention.ms", " 0061000 "), "61000");
    assert_eq!(parsed("preallocate", " TRUE"), "true");
    assert_eq!(
        parsed("cleanup.policy", " compact , delete "),
        "compact,delete"
    );
    assert_eq!(parsed("cleanup.policy", " "), "");
    assert_eq!(
        parsed("message.timestamp.type", "LogAppendTime "),
        "LogAppendTime"
    );
    assert_eq!(parsed("min.cleanable.dirty.ratio", " 0.25"), "0.25");
    assert_eq!(parsed("min.cleanable.dirty.ratio", "1"), "1.0");
    assert_eq!(parsed("min.cleanable.dirty.ratio", "0"), "0.0");
    assert_eq!(parsed("min.cleanable.dirty.ratio", "0.0001"), "1.0E-4");
    assert_eq!(parsed("min.cleanable.dirty.ratio", "0.00025"), "2.5E-4");
}

#[test]
fn configs_stored_as_sent_are_read_back_parsed() {
    let stored: TopicConfigs = [
        ("retention.ms".to_string(), " 1000 ".to_string()),
        ("cleanup.policy".to_string(), "compact , delete".to_string()),
        ("no.such.key".to_string(), " x ".to_string()),
    ]
    .into();
    let got = parsed(stored);
    assert_eq!(got["retention.ms"], "1000");
    assert_eq!(got["cleanup.policy"], "compact,delete");
    assert_eq!(got["no.such.key"], " x ");
}

#[test]
fn refusals_read_as_kafkas_config_exceptions() {
    let said = |name: &str, value: &str| validate(name, value).unwrap_err().to_string();
    assert_eq!(
        said("retention.ms", "abc"),
        "Invalid value abc for configuration retention.ms: Not a number of type LONG"
    );
    assert_eq!(
        said("segment.bytes", "99999999999"),
        "Invalid value 99999999999 for configuration segment.bytes: Not a number of type INT"
    );
    assert_eq!(
        said("cleanup.policy", "compact,shred"),
        "Invalid value shred for configuration cleanup.policy: String must be one of: compact, delete"
    );
    assert_eq!(
        said("preallocate", "yes"),
        "Invalid value yes for configuration preallocate: Expected value to be either true or false"
    );
    assert_eq!(
        said("no.such.key", "1"),
        "Unknown topic config name: no.such.key"
    );
}

#[test]
fn effective_values_prefer_topic_then_broker_then_static_default() {
    let mut d = BrokerDefaults {
        log: LogConfig {
            retention_ms: 5000,
            ..LogConfig::default()
        },
        max_message_bytes: 2000,
        timestamp_before_max_ms: DEFAULT_TIMESTAMP_BEFORE_MAX_MS,
        timestamp_after_max_ms: DEFAULT_TIMESTAMP_AFTER_MAX_MS,
        release: KafkaRelease::default(),
        dynamic: BTreeMap::new(),
    };
    assert_eq!(d.timestamp_after_max_ms(&TopicConfigs::new()), 3_600_000);
    assert!(d
        .set_broker_config("log.message.timestamp.after.max.ms", 5)
        .is_ok());
    assert_eq!(
        d.set_broker_config("log.message.timestamp.after.max.ms", -5),
        Err("Value must be at least 0".to_string())
    );
    assert_eq!(d.timestamp_after_max_ms(&TopicConfigs::new()), 5);
    assert_eq!(
        d.effective(&TopicConfigs::new(), "message.timestamp.after.max.ms")
            .unwrap()
            .1,
        ConfigSource::BrokerDefault
    );
    let mut set = TopicConfigs::new();
    assert_eq!(d.log_config(&set).retention_ms, 5000);
    set.insert("retention.ms".into(), "7".into());
    assert_eq!(d.log_config(&set).retention_ms, 7);
    assert_eq!(
        d.effective(&set, "retention.ms").unwrap().1,
        ConfigSource::TopicOverride
    );
    assert_eq!(d.max_message_bytes(&set), 2000);
    assert_eq!(
        d.effective(&set, "min.insync.replicas").unwrap(),
        ("1".to_string(), ConfigSource::Default)
    );
    set.insert("cleanup.policy".into(), "compact".into());
    assert_eq!(d.log_config(&set).retention_ms, -1);
}
