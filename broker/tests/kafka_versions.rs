//! The per-release version tables (`broker/src/versions/kafka_*.rs`) against Apache
//! Kafka's own message JSON, read from a bare clone of apache/kafka (`KMIRROR_KAFKA_REPO`,
//! default `/work/.mirror/apache+kafka/repo`). Without that clone the test fails and says
//! so: the tables cannot be checked without their source.

use std::process::Command;

use kmirror_broker::versions::KafkaRelease;

const MSG: &str = "clients/src/main/resources/common/message";

fn repo() -> String {
    std::env::var("KMIRROR_KAFKA_REPO").unwrap_or_else(|_| "/work/.mirror/apache+kafka/repo".into())
}

/// `validVersions` of `<name>Request.json` at `git_ref` (the unstable latest version
/// dropped), or `None` if the file does not exist there.
fn json_range(git_ref: &str, name: &str) -> Option<(i16, i16)> {
    let out = Command::new("git")
        .args(["--git-dir", &repo(), "show"])
        .arg(format!("{git_ref}:{MSG}/{name}Request.json"))
        .output()
        .unwrap_or_else(|e| panic!("git show in {} failed: {e}", repo()));
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("does not exist") || err.contains("exists on disk, but not in"),
            "cannot read Kafka's message JSON from {} (set KMIRROR_KAFKA_REPO): {err}",
            repo()
        );
        return None;
    }
    let text: String = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    // Like Jackson, read the first value only (2.8.0 has stray brackets after one file).
    let spec: serde_json::Value = serde_json::Deserializer::from_str(&text)
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    let valid = spec["validVersions"].as_str().unwrap();
    let (lo, hi) = valid.split_once('-').unwrap_or((valid, valid));
    let (lo, mut hi): (i16, i16) = (lo.parse().unwrap(), hi.parse().unwrap());
    if spec["latestVersionUnstable"].as_bool() == Some(true) {
        hi -= 1;
    }
    Some((lo, hi))
}

#[test]
fn tables_of_tagged_releases_match_the_message_json() {
    for (release, git_ref) in [
        (KafkaRelease::V2_8, "2.8.0"),
        (KafkaRelease::V3_0, "3.0.0"),
        (KafkaRelease::V3_6, "3.6.0"),
        (KafkaRelease::V3_9, "3.9.0-rc3"),
    ] {
        for api in release.apis() {
            assert_eq!(
                json_range(git_ref, api.name),
                Some((api.min, api.max)),
                "Kafka {release}: {} (key {})",
                api.name,
                api.key
            );
        }
    }
    // An API a release did not have is not in its table.
    assert_eq!(json_range("3.6.0", "DescribeTopicPartitions"), None);
    assert_eq!(KafkaRelease::V3_6.range(75), None);
}

#[test]
fn kafka_4_0_maxima_match_trunk_where_nothing_was_bumped_later() {
    // trunk 1eb7644 (2024-10-25) is 4.0-dev; Produce 12, DescribeGroups 6 and
    // DescribeCluster 2 came after it (see kafka_4_0.rs).
    for name in [
        "Fetch",
        "ListOffsets",
        "Metadata",
        "OffsetCommit",
        "ApiVersions",
    ] {
        let api = KafkaRelease::V4_0
            .apis()
            .iter()
            .find(|a| a.name == name)
            .unwrap();
        assert_eq!(
            json_range("HEAD", name).map(|r| r.1),
            Some(api.max),
            "{name}"
        );
    }
}
