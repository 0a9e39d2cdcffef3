//! Unit tests of the topic registry: topic names, and what a create or grow that fails
//! midway leaves on disk.

use std::path::Path;

use super::*;

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_create_or_grow_failing_midway_leaves_no_partition_directories() {
    let dir = tempfile::tempdir().unwrap();
    let defaults = crate::BrokerConfig::default().topic_defaults();
    let reg = TopicRegistry::open(Some(dir.path().to_path_buf()), defaults).unwrap();
    // A file where partition 5's directory goes: opening partition 5 fails.
    std::fs::write(dir.path().join("t-5"), b"").unwrap();
    let e = reg.create("t", 8, TopicConfigs::new(), &[]).unwrap_err();
    assert!(matches!(e, TopicError::Log(_)), "{e}");
    assert!(reg.get("t").is_none());
    assert_eq!(entries(dir.path()), ["t-5"]);

    reg.create("g", 1, TopicConfigs::new(), &[]).unwrap();
    std::fs::write(dir.path().join("g-3"), b"").unwrap();
    let e = reg
        .add_partitions("g", 6, false, 10, |_, _| Ok::<_, TopicError>(()))
        .unwrap_err();
    assert!(matches!(e, TopicError::Log(_)), "{e}");
    assert_eq!(reg.get("g").unwrap().partition_count(), 1);
    assert_eq!(entries(dir.path()), ["g-0", "g-3", "t-5", "topics.json"]);
    std::fs::remove_file(dir.path().join("t-5")).unwrap();
    std::fs::remove_file(dir.path().join("g-3")).unwrap();

    // The partitions open but the topic list cannot be written: they go again.
    let blocker = dir.path().join("topics.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    let e = reg.create("t", 8, TopicConfigs::new(), &[]).unwrap_err();
    assert!(matches!(e, TopicError::Persist { .. }), "{e}");
    let e = reg
        .add_partitions("g", 6, false, 10, |_, _| Ok::<_, TopicError>(()))
        .unwrap_err();
    assert!(matches!(e, TopicError::Persist { .. }), "{e}");
    assert_eq!(reg.get("g").unwrap().partition_count(), 1);
    assert_eq!(
        entries(dir.path()),
        ["g-0", "topics.json", "topics.json.tmp"]
    );
    std::fs::remove_dir(&blocker).unwrap();

    // Once the way is clear, both work.
    reg.create("t", 8, TopicConfigs::new(), &[]).unwrap();
    reg.add_partitions("g", 6, false, 10, |_, _| Ok::<_, TopicError>(()))
        .unwrap();
    assert_eq!(entries(dir.path()).len(), 8 + 6 + 1);
}

#[test]
fn topic_names_follow_kafka_rules() {
    assert!(validate_name("orders.v1_eu-west").is_ok());
    for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
        assert!(validate_name(bad).is_err(), "{bad:?}");
    }
    // Kafka counts a name's length in UTF-16 units (String.length()), so 200 'ü' (400
    // bytes) are refused for their characters, not their length.
    let why = validate_name(&"ü".repeat(200)).unwrap_err().to_string();
    assert!(why.contains("characters other than ASCII"), "{why}");
}
