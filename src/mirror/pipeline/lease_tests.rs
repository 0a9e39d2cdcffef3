//! A pipeline of an exclusive flow's owner against a real broker: it sends nothing while
//! the ownership lease has lapsed ([`crate::mirror::ownership::lease`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::records::Compression;
use kmirror_testkit::BrokerProcess;
use tokio::sync::mpsc;

use super::{Chunk, Ended, Pipeline};
use crate::client::{ClientConfig, ClusterClient};
use crate::mirror::ownership::lease::Lease;
use crate::mirror::progress::{Position, Progress, SourcePartition};
use crate::telemetry::stats::FlowStats;
use crate::throttle::Throttle;

/// The log end offset of partition 0 of `topic`.
async fn log_end(target: &ClusterClient, topic: &str) -> i64 {
    target.list_offset(topic, 0, -1).await.expect("ListOffsets")
}

/// A paused owner runs again with batches it fetched before the pause, its lease lapsed:
/// it sends none of them until the lease is renewed (and, had another daemon taken the
/// flow over, its flow would end first and they would never be sent).
#[tokio::test]
async fn an_owner_whose_lease_lapsed_sends_nothing_until_it_is_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let target = Arc::new(ClusterClient::new(ClientConfig {
        cluster: "west".into(),
        bootstrap: vec![broker.addr()],
        messenger: Default::default(),
        backoff: Default::default(),
        replication_factor: None,
    }));
    target.refresh_metadata().await.expect("Metadata");
    target
        .create_topic("t", 1, &[])
        .await
        .expect("CreateTopics");
    let session = target.init_producer().await.expect("InitProducerId");
    let sp = SourcePartition {
        topic: "t".into(),
        partition: 0,
    };
    let progress = Arc::new(Progress::fresh("f"));
    progress.advance(
        &sp,
        Position {
            next_source_offset: 0,
            next_target_offset: -1,
            leader_epoch: None,
        },
    );
    let lease = Lease::default();
    lease.hold_until(Instant::now() - Duration::from_millis(1));
    progress.write_only_under(lease.clone());
    let flow_stats = Arc::new(FlowStats::new("f", ("east", "west"), None));
    let pipeline = Pipeline {
        flow: "f".into(),
        source: sp.clone(),
        target_topic: "t".into(),
        target: target.clone(),
        throttle: Arc::new(Throttle::new(None, None)),
        progress: progress.clone(),
        session,
        next_sequence: 0,
        session_acked: false,
        splits: 0,
        next_target_offset: -1,
        reported_mirrored_again: false,
        batch_bytes: 1 << 20,
        start_offset: 0,
        lane: target.assign_produce_lane(),
        flow_stats: flow_stats.clone(),
        stats: flow_stats.partition(&sp, 0),
        route: Default::default(),
        renew_session: false,
    };
    let (tx, rx) = mpsc::channel(4);
    let running = tokio::spawn(pipeline.run(rx));
    let records: Vec<_> = (0..3)
        .map(|i| kmirror_wire::records::record(i, 1_000, None, Some(vec![b'v'; 10].into())))
        .collect();
    let batch = kmirror_wire::records::encode(&records, Compression::None).unwrap();
    let chunk = Chunk {
        data: BytesMut::from(&batch[..]),
        records: 3,
        next_source_offset: 3,
        last_epoch: None,
        permit: None,
    };
    tx.send(chunk).await.unwrap();
    // Once the pipeline took the chunk, it goes on to send it without waiting for
    // anything but the lease; half a second more is ample to send three records to a
    // local broker.
    let taken = Instant::now() + Duration::from_secs(30);
    while tx.capacity() < 4 {
        assert!(Instant::now() < taken, "the pipeline never took the chunk");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        log_end(&target, "t").await,
        0,
        "sent while the lease lapsed"
    );
    lease.hold_until(Instant::now() + Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(30);
    while log_end(&target, "t").await != 3 {
        assert!(Instant::now() < deadline, "nothing sent after the renewal");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(tx);
    let ended = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the pipeline drains")
        .unwrap();
    assert!(matches!(ended, Ended::Drained), "{ended:?}");
}
