//! Broker throughput: produce and fetch MB/s of 1 KiB records over 8 partitions, lz4,
//! against a `kmirror-broker` process on loopback, with `--flush never` and `always`.
//!
//! Run with `cargo bench -p kmirror-broker --bench throughput`. Reports wire MB/s (wall
//! clock) and MB/s per broker core (wire bytes / CPU seconds the broker process used), so
//! the client's share of the 2-core machine does not hide the broker's cost, and the same
//! per core in the records' uncompressed value bytes (lz4 halves them on the wire).
//! `KMIRROR_BENCH_MIB` sets the uncompressed volume (default 1024); `KMIRROR_BENCH_BROKER`
//! names another broker executable to measure instead of this build's.

mod data;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kmirror_wire::messenger::{Messenger, MessengerConfig};

const PARTITIONS: i32 = 8;
const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 64;
const CONNECTIONS: usize = 4;
const IN_FLIGHT_PER_CONNECTION: usize = 8;

struct BrokerProcess {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl BrokerProcess {
    fn start(flush: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // `KMIRROR_BENCH_BROKER` runs another build of the broker (e.g. main's, to compare
        // before and after a change in one session).
        let exe = std::env::var("KMIRROR_BENCH_BROKER")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_kmirror-broker").to_string());
        let mut child = Command::new(exe)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--flush",
                flush,
                "--log-level",
                "warn,kmirror_broker::server=info",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("broker exited").unwrap();
            if let Some(rest) = line.split("listen=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    /// CPU seconds (user + system) the broker has used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn connect(addr: &str) -> Arc<Messenger> {
    let config = MessengerConfig {
        write_queue_frames: 64,
        ..MessengerConfig::default()
    };
    Arc::new(Messenger::connect(addr, config).await.unwrap())
}

struct Figures {
    wire_bytes: u64,
    wall_seconds: f64,
    broker_cpu_seconds: f64,
}

impl Figures {
    /// `value_bytes`: the records' values, uncompressed (what the records carry).
    fn print(&self, what: &str, value_bytes: u64) {
        let mb = self.wire_bytes as f64 / 1e6;
        let cpu = self.broker_cpu_seconds.max(0.01);
        println!(
            "{what:<24} {:>8.0} MB wire  {:>8.1} MB/s  {:>8.1} MB/s per broker core  {:>8.1} MB/s of values per broker core  (broker CPU {:.2} s)",
            mb,
            mb / self.wall_seconds,
            mb / cpu,
            value_bytes as f64 / 1e6 / cpu,
            self.broker_cpu_seconds
        );
    }
}

async fn produce(broker: &BrokerProcess, topic: &str, batches_per_partition: usize) -> Figures {
    let batches: Arc<Vec<Bytes>> = Arc::new(
        (0..16)
            .map(|s| data::lz4_batch(s + 1, RECORDS_PER_BATCH, RECORD_BYTES, false))
            .collect(),
    );
    let requests = batches_per_partition; // one batch per partition per request
    let cpu0 = broker.cpu_seconds();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let m = connect(&broker.addr).await;
        let batches = batches.clone();
        let topic = topic.to_string();
        tasks.push(tokio::spawn(async move {
            let mut bytes = 0u64;
            let mut inflight = tokio::task::JoinSet::new();
            for r in (c..requests).step_by(CONNECTIONS) {
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
                        .with_name(name(&topic))
                        .with_partition_data(partitions)]);
                if inflight.len() >= IN_FLIGHT_PER_CONNECTION {
                    inflight.join_next().await.unwrap().unwrap();
                }
                let m = m.clone();
                inflight.spawn(async move {
                    // v12: v13 addresses topics by id only.
                    let resp = m.send_at(&req, 12).await.unwrap();
                    for p in &resp.responses[0].partition_responses {
                        assert_eq!(p.error_code, 0, "produce failed");
                    }
                });
            }
            while let Some(r) = inflight.join_next().await {
                r.unwrap();
            }
            bytes
        }));
    }
    let mut wire_bytes = 0;
    for t in tasks {
        wire_bytes += t.await.unwrap();
    }
    Figures {
        wire_bytes,
        wall_seconds: start.elapsed().as_secs_f64(),
        broker_cpu_seconds: broker.cpu_seconds() - cpu0,
    }
}

async fn fetch_all(broker: &BrokerProcess, topic: &str) -> Figures {
    let cpu0 = broker.cpu_seconds();
    let start = Instant::now();
    let mut tasks = Vec::new();
    // Two connections, each reading half of the partitions to the end.
    for half in 0..2 {
        let m = connect(&broker.addr).await;
        let topic = topic.to_string();
        tasks.push(tokio::spawn(async move {
            let mut offsets: Vec<(i32, i64)> = (0..PARTITIONS)
                .filter(|p| p % 2 == half)
                .map(|p| (p, 0))
                .collect();
            let mut bytes = 0u64;
            loop {
                let req = FetchRequest::default()
                    .with_max_wait_ms(0)
                    .with_min_bytes(1)
                    .with_max_bytes(16 << 20)
                    .with_isolation_level(1)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(name(&topic))
                        .with_partitions(
                            offsets
                                .iter()
                                .map(|(p, o)| {
                                    FetchPartition::default()
                                        .with_partition(*p)
                                        .with_fetch_offset(*o)
                                        .with_partition_max_bytes(4 << 20)
                                })
                                .collect(),
                        )]);
                // v12 names topics; v13+ would need the topic id.
                let resp = m.send_at(&req, 12).await.unwrap();
                let mut progressed = false;
                for part in &resp.responses[0].partitions {
                    let data = part.records.clone().unwrap_or_default();
                    bytes += data.len() as u64;
                    let mut last = None;
                    for b in kmirror_wire::batch::Batches::new(&data) {
                        last = Some(b.unwrap().next_offset());
                    }
                    if let Some(next) = last {
                        let slot = offsets
                            .iter_mut()
                            .find(|(p, _)| *p == part.partition_index)
                            .unwrap();
                        slot.1 = next;
                        progressed = true;
                    }
                }
                if !progressed {
                    return bytes;
                }
            }
        }));
    }
    let mut wire_bytes = 0;
    for t in tasks {
        wire_bytes += t.await.unwrap();
    }
    Figures {
        wire_bytes,
        wall_seconds: start.elapsed().as_secs_f64(),
        broker_cpu_seconds: broker.cpu_seconds() - cpu0,
    }
}

fn main() {
    let mib: usize = std::env::var("KMIRROR_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let batch_uncompressed = RECORDS_PER_BATCH * RECORD_BYTES;
    let batches_per_partition = (mib << 20) / batch_uncompressed / PARTITIONS as usize;
    let value_bytes = (batches_per_partition * PARTITIONS as usize * batch_uncompressed) as u64;
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "kmirror-broker throughput: {mib} MiB of {RECORD_BYTES}-byte records, lz4, {PARTITIONS} partitions, {RECORDS_PER_BATCH} records per batch"
    );
    for flush in ["never", "always"] {
        let broker = BrokerProcess::start(flush);
        rt.block_on(async {
            let m = connect(&broker.addr).await;
            let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name("bench"))
                .with_num_partitions(PARTITIONS)
                .with_replication_factor(1)]);
            m.send(&req).await.unwrap();
            produce(&broker, "bench", batches_per_partition)
                .await
                .print(&format!("produce, flush {flush}"), value_bytes);
            // Let the kernel finish writing back what was produced, so the fetch measures
            // reads from the page cache rather than competing with writeback.
            let _ = std::process::Command::new("sync").status();
            fetch_all(&broker, "bench")
                .await
                .print(&format!("fetch, flush {flush}"), value_bytes);
        });
    }
}
