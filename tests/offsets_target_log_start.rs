//! A translated offset the target no longer holds: the target deleted the mirrored copy
//! (its own retention, which may be shorter than the source's; here DeleteRecords). The
//! group sync, `kmirror offsets` and `kmirror failover` all go on from the target's log
//! start there, where a consumer resetting to the earliest offset would: committed at the
//! translation, the offset is out of range and a consumer with Kafka's default
//! `auto.offset.reset=latest` skips to the end, past every record the target still holds.

mod support;

use serde_json::Value;
use support::discovery::wait_until;
use support::groups::*;
use support::records::Produce;
use support::*;

const FLOW: &str = GROUP_SYNC_FLOW;

#[test]
fn offsets_below_the_targets_log_start_go_on_from_it() {
    let (dir, [source, target]) = brokers();
    let produced = Produce {
        records: 50,
        create: true,
        linger_ms: 20,
        ..Produce::new(&source.addr(), TOPIC, PARTITIONS, &dir.path().join("acked"))
    }
    .run();
    assert_eq!(produced, 100);
    let config = group_sync_topology(dir.path(), &source, &target, "app");
    let config = config.to_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let daemon = DaemonProcess::start(std::path::Path::new(&config));
    support::cluster::wait_for_records(&rt, &target.addr(), TOPIC, 100, &daemon);

    // The group read 10 of each partition; the group sync commits that on the target.
    commit(&source.addr(), TOPIC, "app", "0:10,1:10");
    wait_until("the group synced to the target", &daemon, || {
        let got = committed(&target.addr(), TOPIC, "app");
        (got.get("0") == Some(&10) && got.get("1") == Some(&10)).then_some(())
    });
    // Then the target drops partition 0's copy below offset 30 (its retention, say): the
    // group sync moves the group, already in step, to the target's log start.
    let deleted = groups("delete", &target.addr(), TOPIC, None, &["--before", "0:30"]);
    assert!(deleted.contains("DELETED 0 low_watermark=30"), "{deleted}");
    wait_until("the group moved to the target's log start", &daemon, || {
        let got = committed(&target.addr(), TOPIC, "app");
        (got.get("0") == Some(&30)).then_some(())
    });
    assert_eq!(committed(&target.addr(), TOPIC, "app").get("1"), Some(&10));

    // `kmirror offsets` says why, with the offset to go on from.
    let out = kmirror_ok(&[
        "offsets", &config, "--flow", FLOW, "--group", "app", "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let row = |p: i64| {
        v["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["partition"] == p)
            .cloned()
            .unwrap()
    };
    assert_eq!(row(0)["state"], "below_target_log_start", "{v}");
    assert_eq!(
        (
            row(0)["target_offset"].clone(),
            row(0)["translated"].clone()
        ),
        (Value::from(30), Value::from(10)),
        "{v}"
    );
    assert_eq!(row(1)["state"], "exact", "{v}");

    // A failover (the source is up; the group has no members on the target) commits the
    // same and says so.
    let out = kmirror_ok(&["failover", &config, "--flow", FLOW, "--group", "app"]);
    assert!(
        out.contains("the target no longer holds the records from the translated offset"),
        "{out}"
    );
    // The group's consumer on the target reads what the target still holds from there:
    // 20 records of partition 0, 40 of partition 1.
    let read = consume(&target.addr(), TOPIC, "app");
    assert_eq!(
        (partition(&read, 0).len(), partition(&read, 1).len()),
        (20, 40)
    );
}
