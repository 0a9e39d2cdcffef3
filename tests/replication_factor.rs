//! `clusters.<name>.replication_factor`: the topics kmirror creates on a cluster (the
//! mirrored topic, its progress topic) get that many replicas instead of the cluster's
//! `default.replication.factor` (Kafka's default is 1, one broker's loss from losing
//! them), and `kmirror plan` says so.

mod support;

use support::cluster::{replica_counts, wait_for_records};
use support::records::Produce;
use support::*;

#[test]
fn topics_created_on_the_target_get_the_clusters_replication_factor() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = ThreeNodes::start(
        &dir.path().join("target"),
        &["--default-replication-factor", "1"],
    );
    let produced = Produce {
        records: 200,
        create: true,
        ..Produce::new(&source.addr(), "orders", 2, &dir.path().join("acked.json"))
    }
    .run();
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        "  - name: f\n    source: east\n    target: west\n    topics: { include: [\"orders\"] }\n    rename: \"{topic}\"\n    discovery_interval: 1s\n",
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("  west:\n", "  west:\n    replication_factor: 2\n"),
    )
    .unwrap();
    let plan = kmirror_ok(&["plan", config.to_str().unwrap()]);
    assert!(
        plan.contains("orders -> orders: create with 2 partitions, replication factor 2"),
        "{plan}"
    );

    let daemon = DaemonProcess::start(&config);
    let rt = tokio::runtime::Runtime::new().unwrap();
    wait_for_records(&rt, &target.addr(), "orders", produced as i64, &daemon);
    assert_eq!(
        rt.block_on(replica_counts(&target.addr(), "orders")),
        [2, 2]
    );
    assert_eq!(
        rt.block_on(replica_counts(&target.addr(), "__kmirror_progress")),
        [2]
    );
}
