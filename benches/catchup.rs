//! Catch-up benchmark: 1 GiB of 1 KiB lz4 records over 8 partitions between two
//! kmirror-broker processes, mirrored by the `kmirror` daemon: wire MB/s, daemon CPU seconds
//! per GB and peak RSS. In the same run, the baseline a user might write instead — a
//! confluent-kafka (librdkafka) consume -> produce loop keeping partitions, keys, headers
//! and timestamps (`benches/baseline_mirror.py`) — on the same brokers and data, and the
//! ratio.
//!
//! `cargo bench -p kmirror --bench catchup` (needs `KMIRROR_PYTHON` with confluent-kafka for
//! the baseline; `scripts/test.sh` sets up `.venv`). `KMIRROR_BENCH_MIB` sets the volume.

#[path = "../broker/benches/data.rs"]
mod data;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kmirror_testkit as support;
use kmirror_wire::messenger::{Messenger, MessengerConfig};
use support::{BrokerProcess, DaemonProcess};

const PARTITIONS: i32 = 8;
const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 256;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn connect(addr: &str) -> Arc<Messenger> {
    Arc::new(
        Messenger::connect(addr, MessengerConfig::default())
            .await
            .unwrap(),
    )
}

async fn create(addr: &str, topic: &str) {
    let m = connect(addr).await;
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(PARTITIONS)
        .with_replication_factor(1)]);
    m.send(&req).await.unwrap();
}

/// Loads the source; returns (wire bytes, records).
async fn load(addr: &str, topic: &str, batches_per_partition: usize) -> (u64, u64) {
    let batches: Vec<Bytes> = (0..8)
        .map(|s| data::lz4_batch(s + 1, RECORDS_PER_BATCH, RECORD_BYTES, true))
        .collect();
    let m = connect(addr).await;
    let mut bytes = 0u64;
    let mut inflight = tokio::task::JoinSet::new();
    for r in 0..batches_per_partition {
        let partitions = (0..PARTITIONS)
            .map(|p| {
                let b = batches[(r + p as usize) % batches.len()].clone();
                bytes += b.len() as u64;
                PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(b))
            })
            .collect();
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(partitions)]);
        if inflight.len() >= 8 {
            inflight.join_next().await.unwrap().unwrap();
        }
        let m = m.clone();
        inflight.spawn(async move {
            let (resp, _) = m.send(&req).await.unwrap();
            assert!(resp.responses[0]
                .partition_responses
                .iter()
                .all(|p| p.error_code == 0));
        });
    }
    while inflight.join_next().await.is_some() {}
    (
        bytes,
        (batches_per_partition * RECORDS_PER_BATCH) as u64 * PARTITIONS as u64,
    )
}

/// Sum of the log end offsets of `topic` (0 if it does not exist yet).
async fn end_offsets(addr: &str, topic: &str) -> u64 {
    let m = connect(addr).await;
    let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(name(topic))
        .with_partitions(
            (0..PARTITIONS)
                .map(|p| {
                    ListOffsetsPartition::default()
                        .with_partition_index(p)
                        .with_timestamp(-1)
                })
                .collect(),
        )]);
    let (resp, _) = m.send(&req).await.unwrap();
    resp.topics[0]
        .partitions
        .iter()
        .filter(|p| p.error_code == 0)
        .map(|p| p.offset.max(0) as u64)
        .sum()
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    if f.len() < 13 {
        return 0.0;
    }
    (f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0)) / 100.0
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let mib: usize = std::env::var("KMIRROR_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let batches_per_partition =
        (mib << 20) / (RECORDS_PER_BATCH * RECORD_BYTES) / PARTITIONS as usize;
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create(&source.addr(), "events"));
    let (wire_bytes, records) = rt.block_on(load(&source.addr(), "events", batches_per_partition));
    println!("kmirror catch-up: {mib} MiB of {RECORD_BYTES}-byte records, lz4, {PARTITIONS} partitions: {records} records, {:.0} MB on the wire", wire_bytes as f64 / 1e6);

    let config = support::write_topology(
        dir.path(),
        &[("source", &source.addr()), ("target", &target.addr())],
        "  - name: catchup\n    source: source\n    target: target\n    topics: { include: [\"events\"] }\n    rename: \"{topic}\"\n    discovery_interval: 1s\n",
    );
    let start = Instant::now();
    let mut daemon = DaemonProcess::start(&config);
    let pid = daemon.pid().unwrap();
    let deadline = Instant::now() + Duration::from_secs(1800);
    while rt.block_on(end_offsets(&target.addr(), "events")) < records {
        assert!(
            Instant::now() < deadline,
            "catch-up did not finish:\n{}",
            daemon.log.tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid);
    let rss = peak_rss_mib(pid);
    daemon.terminate();
    let mb = wire_bytes as f64 / 1e6;
    println!(
        "kmirror:  {seconds:>7.2} s  {:>8.1} MB/s wire  {:>8.1} MB/s per daemon core  {:>6.2} CPU s/GB  peak RSS {rss:.1} MiB",
        mb / seconds,
        mb / cpu.max(0.01),
        cpu / (wire_bytes as f64 / 1e9)
    );

    rt.block_on(create(&target.addr(), "events-baseline"));
    let py = support::python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/baseline_mirror.py");
    let out = Command::new(&py)
        .args([
            script,
            "--source",
            &source.addr(),
            "--target",
            &target.addr(),
            "--topic",
            "events",
            "--target-topic",
            "events-baseline",
        ])
        .args([
            "--partitions",
            &PARTITIONS.to_string(),
            "--records",
            &records.to_string(),
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let base: f64 = text
                .split("seconds=")
                .nth(1)
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(f64::NAN);
            println!("baseline: {base:>7.2} s  {:>8.1} MB/s wire (confluent-kafka consume->produce loop)", mb / base);
            println!("kmirror is {:.1}x the baseline", base / seconds);
        }
        Ok(o) => println!("baseline failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            println!("baseline not run ({py}: {e}); run scripts/test.sh to install confluent-kafka")
        }
    }
}
