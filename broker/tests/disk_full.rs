//! A full disk through the real server: the broker runs in its own user and mount
//! namespace (`unshare`, no root needed) with a 4 MiB tmpfs as its data directory. Filling
//! it makes Produce answer KAFKA_STORAGE_ERROR, never crash; every acknowledged record
//! stays readable and the broker keeps serving; an offset commit it cannot store gets
//! NOT_COORDINATOR, as Kafka's group coordinator answers a storage error.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, MetadataRequest, OffsetCommitRequest};
use kmirror_wire::messenger::Messenger;

struct Namespaced(Child);

impl Drop for Namespaced {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts kmirror-broker on a fresh 4 MiB tmpfs; returns the process and its address.
fn start_on_tmpfs(dir: &std::path::Path) -> (Namespaced, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg("mount -t tmpfs -o size=4m tmpfs \"$1\" && exec \"$2\" --listen \"$3\" --data-dir \"$1\"")
        .arg("sh")
        .arg(dir)
        .arg(env!("CARGO_BIN_EXE_kmirror-broker"))
        .arg(format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) runs");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("accepting connections") => break,
            Ok(line) => seen.push(line),
            Err(_) => panic!("broker on tmpfs did not start:\n{}", seen.join("\n")),
        }
    }
    std::thread::spawn(move || for _ in rx {});
    (Namespaced(child), format!("127.0.0.1:{port}"))
}

#[tokio::test]
async fn a_full_disk_fails_produce_with_storage_error_and_keeps_serving_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, addr) = start_on_tmpfs(dir.path());
    let m = Messenger::connect(&addr, Default::default()).await.unwrap();
    create_topic(&m, "fill", 1).await;
    create_topic(&m, "other", 1).await;

    // 64 KiB-ish batches until the disk refuses one.
    let mut acked = 0i64;
    let mut refused = None;
    for i in 0..200 {
        let mut r = record(0, 1_700_000_000_000 + i);
        r.value = Some(bytes::Bytes::from(vec![b'x'; 64 * 1024]));
        let batch = kmirror_wire::records::encode(&[r], kafka_protocol::records::Compression::None)
            .unwrap();
        let resp = produce(&m, "fill", 0, batch).await;
        if resp.error_code != 0 {
            refused = Some(resp.error_code);
            break;
        }
        assert_eq!(resp.base_offset, acked);
        acked += 1;
    }
    assert_eq!(
        refused,
        Some(ResponseError::KafkaStorageError.code()),
        "a full disk must refuse the produce"
    );
    assert!(
        acked > 10,
        "only {acked} batches fit before the disk was full"
    );

    // The process is alive, the connection works, and every acknowledged record is there.
    assert!(broker.0.try_wait().unwrap().is_none(), "the broker exited");
    m.send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    let mut offset = 0;
    while offset < acked {
        let p = fetch(&m, "fill", 0, offset).await;
        assert_eq!(p.error_code, 0);
        assert_eq!(
            p.high_watermark, acked,
            "a refused append left nothing behind"
        );
        let recs = records_of(&p);
        assert!(!recs.is_empty());
        for r in &recs {
            assert_eq!(r.offset, offset);
            assert_eq!(r.value.as_ref().map(|v| v.len()), Some(64 * 1024));
            offset += 1;
        }
    }
    // Another partition's produce gets the same clear error, not a hang.
    let mut r = record(0, 1);
    r.value = Some(bytes::Bytes::from(vec![b'y'; 64 * 1024]));
    let batch =
        kmirror_wire::records::encode(&[r], kafka_protocol::records::Compression::None).unwrap();
    assert_eq!(
        produce(&m, "other", 0, batch).await.error_code,
        ResponseError::KafkaStorageError.code()
    );
    // An offset commit the coordinator cannot store: NOT_COORDINATOR, which makes a client
    // look the coordinator up again (Kafka: CoordinatorOperationExceptionHelper.
    // handleOperationException maps KAFKA_STORAGE_ERROR so).
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(
            kafka_protocol::protocol::StrBytes::from_static_str("full-disk"),
        ))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name("fill"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(acked)])]);
    let mut committed = 0;
    let code = loop {
        let r = m.send_at(&commit, 8).await.expect("OffsetCommit answered");
        match r.topics[0].partitions[0].error_code {
            // The offsets log may still take a few records on the full disk.
            0 if committed < 10_000 => committed += 1,
            code => break code,
        }
    };
    assert_eq!(
        code,
        ResponseError::NotCoordinator.code(),
        "after {committed} commits stored"
    );
    assert!(broker.0.try_wait().unwrap().is_none(), "the broker exited");
}
