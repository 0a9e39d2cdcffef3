//! Limits end to end, with the daemon and both brokers as real processes:
//! - `bytes_per_sec` and `records_per_sec`: the limiter starts empty, so mirroring N bytes
//!   (records) takes at least N / limit seconds. Only that lower bound is asserted (with
//!   10 % margin for where the clock starts), so a slow machine cannot fail it;
//! - `max_in_flight_bytes`: with the target stopped (SIGSTOP) while a large backlog waits
//!   on the source, the daemon's resident memory stays bounded by the limit, not by the
//!   backlog; after SIGCONT everything arrives.
//!
//! Records are written by `tests/clients/crash_produce.py` (uncompressed, values
//! `<partition>:<seq>:` plus padding), timed on the target with
//! `tests/clients/limits_wait.py` and checked with `tests/clients/crash_verify.py`.

mod support;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::records::{self, join_producer};
use support::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// The tests time things and sample memory; one at a time on a two-core machine.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Setup {
    _dir: tempfile::TempDir,
    source: BrokerProcess,
    target: BrokerProcess,
    config: PathBuf,
    acked: PathBuf,
    topic: &'static str,
    partitions: u32,
}

/// Two brokers, `topic` with `partitions` on the source, and a flow with `limits`.
fn setup(topic: &'static str, partitions: u32, limits: &str) -> Setup {
    setup_with_round_trip(topic, partitions, limits, (None, None), &[])
}

/// [`setup`], with the daemon reaching the source and the target through proxies adding
/// these round trips, where given, and brokers started with `broker_args`.
fn setup_with_round_trip(
    topic: &'static str,
    partitions: u32,
    limits: &str,
    (source_rtt, target_rtt): (Option<Duration>, Option<Duration>),
    broker_args: &[&str],
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (source, source_addr) =
        BrokerProcess::start_behind(&dir.path().join("source"), broker_args, source_rtt);
    let (target, target_addr) =
        BrokerProcess::start_behind(&dir.path().join("target"), broker_args, target_rtt);
    run_python(
        "crash_produce.py",
        &[
            "--bootstrap",
            &source.addr(),
            "--topic",
            topic,
            "--partitions",
            &partitions.to_string(),
            "--records",
            "0",
            "--create",
        ],
    );
    let flow = format!(
        "  - name: limits\n    source: east\n    target: west\n    topics: {{ include: [\"{topic}\"] }}\n    rename: \"{{topic}}\"\n    discovery_interval: 1s\n    limits: {limits}\n"
    );
    let config = write_topology(
        dir.path(),
        &[("east", &source_addr), ("west", &target_addr)],
        &flow,
    );
    let acked = dir.path().join("acked.json");
    Setup {
        _dir: dir,
        source,
        target,
        config,
        acked,
        topic,
        partitions,
    }
}

impl Setup {
    /// Produces `records` per partition with values of `value_bytes`, as fast as the
    /// source takes them, in the background.
    fn produce(&self, records: u32, value_bytes: u32, linger_ms: u32) -> JoinHandle<String> {
        let args = produce_args(
            &self.source.addr(),
            (self.topic, self.partitions),
            (records, value_bytes),
            (linger_ms, 1_000_000),
            &self.acked,
        );
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_python("crash_produce.py", &args)
        })
    }

    /// In the background: waits until the target topic holds `min` records; returns the
    /// Unix time (seconds) at which it saw them, and how many it saw.
    fn wait_target(&self, min: u64) -> JoinHandle<(f64, u64)> {
        let args: Vec<String> = [
            "--bootstrap",
            &self.target.addr(),
            "--topic",
            self.topic,
            "--partitions",
            &self.partitions.to_string(),
            "--min",
            &min.to_string(),
            "--timeout",
            "150",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = run_python("limits_wait.py", &args);
            let line = out
                .lines()
                .find_map(|l| l.strip_prefix("REACHED "))
                .unwrap_or_else(|| panic!("limits_wait.py: {out}"));
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(name))
                    .unwrap_or_else(|| panic!("limits_wait.py: {out}"))
                    .to_string()
            };
            (
                field("at=").parse().unwrap(),
                field("records=").parse().unwrap(),
            )
        })
    }

    /// Runs the verifier once; returns (lost, duplicated, reordered, the report).
    fn verify(&self) -> (u64, u64, u64, String) {
        let v = records::verify(
            &self.target.addr(),
            self.topic,
            self.partitions as usize,
            &self.acked,
            None,
        );
        (v.lost, v.duplicated, v.reordered, v.report)
    }
}

/// `crash_produce.py`'s arguments: `records` per partition of `topic` with values of
/// `value_bytes`, lingering `linger_ms` for batches of up to `batch_bytes`, the acknowledged
/// ones listed in `acked`.
fn produce_args(
    bootstrap: &str,
    (topic, partitions): (&str, u32),
    (records, value_bytes): (u32, u32),
    (linger_ms, batch_bytes): (u32, u32),
    acked: &std::path::Path,
) -> Vec<String> {
    let args = [
        ("--bootstrap", bootstrap.to_string()),
        ("--topic", topic.to_string()),
        ("--partitions", partitions.to_string()),
        ("--records", records.to_string()),
        ("--value-bytes", value_bytes.to_string()),
        ("--linger-ms", linger_ms.to_string()),
        ("--batch-bytes", batch_bytes.to_string()),
        ("--acked", acked.to_string_lossy().into_owned()),
    ];
    args.into_iter()
        .flat_map(|(name, value)| [name.to_string(), value])
        .collect()
}

/// Runs `crash_produce.py` to the end with [`produce_args`]; asserts nothing failed.
fn produce_all(
    bootstrap: &str,
    topic: (&str, u32),
    records: (u32, u32),
    batching: (u32, u32),
    acked: &std::path::Path,
) {
    let args = produce_args(bootstrap, topic, records, batching, acked);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let produced = run_python("crash_produce.py", &args);
    assert!(produced.contains("failed=0"), "{produced}");
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Starts the daemon on a backlog of `records` and returns the seconds from "Flow
/// started" (seen in its log) until the target holds every record, and from the process
/// start. The limits are asserted on the second: the limiter is created, empty, after the
/// process starts and before the flow's setup (which it refills during, up to its burst),
/// so from the spawn on it passes at most the limit times the time, with no margin needed.
fn time_mirroring(s: &Setup, records: u64) -> (f64, f64) {
    let done = s.wait_target(records);
    // Let the watcher connect before the clock starts.
    std::thread::sleep(Duration::from_secs(2));
    let spawned = unix_now();
    let daemon = DaemonProcess::start(&s.config);
    assert!(
        daemon.log.wait_for("Flow started", Duration::from_secs(60)),
        "{}",
        daemon.log.tail(40)
    );
    let started = unix_now();
    let (at, _) = done.join().unwrap_or_else(|_| {
        panic!(
            "the target did not get every record; daemon log:\n{}",
            daemon.log.tail(60)
        )
    });
    let (lost, duplicated, reordered, report) = s.verify();
    eprintln!("{report}");
    assert_eq!((lost, duplicated, reordered), (0, 0, 0), "{report}");
    (at - started, at - spawned)
}

#[test]
fn bytes_per_sec_holds_mirroring_to_the_limit() {
    let _serial = serial();
    const LIMIT: u64 = 1 << 20;
    let s = setup("limits.bytes", 2, "{ bytes_per_sec: 1MiB }");
    // 2 x 3,000 records of 1 KiB values, uncompressed: the record batches the limiter
    // counts hold more than these 6,144,000 value bytes (keys, record and batch headers),
    // so N / limit computed from the values alone is a lower bound of the true minimum.
    let acked = join_producer(s.produce(3_000, 1024, 5));
    let payload = acked * 1024;
    let minimum = payload as f64 / LIMIT as f64;
    let (elapsed, since_spawn) = time_mirroring(&s, acked);
    eprintln!(
        "bytes_per_sec 1MiB: {payload} value bytes mirrored in {elapsed:.2} s after \"Flow started\" ({since_spawn:.2} s after spawn); N / limit = {minimum:.2} s, {:.2} MiB/s of values",
        payload as f64 / elapsed / (1 << 20) as f64
    );
    assert!(
        since_spawn >= minimum,
        "{payload} bytes at {LIMIT} B/s were mirrored {since_spawn:.2} s after the daemon was spawned, faster than the limit allows ({minimum:.2} s)"
    );
}

#[test]
fn records_per_sec_holds_mirroring_to_the_limit() {
    let _serial = serial();
    const LIMIT: u64 = 2_000;
    let s = setup(
        "limits.records",
        2,
        &format!("{{ records_per_sec: {LIMIT} }}"),
    );
    let acked = join_producer(s.produce(6_000, 100, 5));
    let minimum = acked as f64 / LIMIT as f64;
    let (elapsed, since_spawn) = time_mirroring(&s, acked);
    eprintln!(
        "records_per_sec {LIMIT}: {acked} records mirrored in {elapsed:.2} s after \"Flow started\" ({since_spawn:.2} s after spawn); N / limit = {minimum:.2} s, {:.0} records/s",
        acked as f64 / elapsed
    );
    assert!(
        since_spawn >= minimum,
        "{acked} records at {LIMIT}/s were mirrored {since_spawn:.2} s after the daemon was spawned, faster than the limit allows ({minimum:.2} s)"
    );
}

/// Samples the daemon's RSS every 50 ms until `until` says stop; returns the peak in KiB.
fn sample_rss(daemon: &DaemonProcess, mut until: impl FnMut() -> bool) -> u64 {
    let mut peak = 0;
    loop {
        if let Some(kib) = daemon.rss_kib() {
            peak = peak.max(kib);
        }
        if until() {
            return peak;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn memory_stays_bounded_by_max_in_flight_bytes_while_the_target_is_stopped() {
    memory_stays_bounded(&[]);
}

/// The same against brokers emulating Kafka 2.8 (Fetch v12, Produce v9).
#[test]
fn memory_stays_bounded_by_max_in_flight_bytes_emulating_kafka_2_8() {
    memory_stays_bounded(&["--emulate-kafka", "2.8"]);
}

fn memory_stays_bounded(broker_args: &[&str]) {
    let _serial = serial();
    const MAX_IN_FLIGHT: u64 = 8 << 20;
    // Many partitions: each one may also hold up to 4 queued chunks and 5 requests of up to
    // 1 MiB, so with few partitions those per-partition bounds, not max_in_flight_bytes,
    // would be what limits memory. 32 x 6.25 MiB: only the flow's limit keeps the daemon
    // from holding the whole backlog.
    const PARTITIONS: u32 = 32;
    const RECORDS: u32 = 64;
    const VALUE: u32 = 100 * 1024;
    let s = setup_with_round_trip(
        "limits.bulk",
        PARTITIONS,
        "{ max_in_flight_bytes: 8MiB }",
        (None, None),
        broker_args,
    );
    let daemon = DaemonProcess::start(&s.config);
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(40)
    );
    // Baseline: the running daemon with its connections and partitions, before any data.
    let t = Instant::now();
    let baseline = sample_rss(&daemon, || t.elapsed() > Duration::from_secs(3));

    // 32 x 64 records of 100 KiB = 200 MiB, uncompressed, in large batches.
    let producer = s.produce(RECORDS, VALUE, 50);
    // Let mirroring get going (5 MiB on the target), then stop the target.
    let started = s.wait_target(50);
    let before = sample_rss(&daemon, || started.is_finished());
    let (_, mirrored) = started.join().expect("watcher");
    s.target.pause();
    let paused_at = Instant::now();
    let paused = sample_rss(&daemon, || paused_at.elapsed() > Duration::from_secs(10));
    s.target.resume();
    let acked = join_producer(producer);
    let done = s.wait_target(acked);
    let after = sample_rss(&daemon, || done.is_finished());
    done.join().expect("watcher");

    // What the daemon may hold beyond the idle process: max_in_flight_bytes of record data
    // (src/mirror/memory.rs: fetch responses from the request on, then each partition's
    // batches until acked; produce requests reference the batches), plus a fixed
    // overhead: a response's partitions being copied out of it, socket buffers and what
    // the allocator keeps of freed buffers. FIXED_OVERHEAD states it; without the bound
    // the daemon would hold the backlog, up to 200 MiB. Measured (ten runs, one worker
    // thread): 3.4-8.7 MiB over max_in_flight_bytes at the peak, after the target comes
    // back; 1.2-3.9 MiB with glibc's mmap threshold fixed (MALLOC_MMAP_THRESHOLD_=131072),
    // so the rest is what glibc's heap keeps of freed fetch buffers.
    const FIXED_OVERHEAD: u64 = 12 << 20;
    let bound = baseline + (MAX_IN_FLIGHT + FIXED_OVERHEAD) / 1024;
    eprintln!(
        "RSS KiB: baseline {baseline}, before the pause {before}, while the target was stopped (10 s) {paused}, after resuming {after}; bound {bound} (baseline + 8 MiB max_in_flight_bytes + 12 MiB fixed)"
    );
    eprintln!(
        "the target was stopped with {mirrored} of {} records mirrored",
        PARTITIONS * RECORDS
    );
    // A quarter of the records left is 50 MiB, six times max_in_flight_bytes: a backlog the
    // bound must hold back. (An idle machine once mirrored just over half before the
    // watcher saw its first 50.)
    assert!(
        mirrored < u64::from(PARTITIONS * RECORDS) * 3 / 4,
        "test setup: the daemon had mirrored {mirrored} records before the target was stopped, too many for a backlog"
    );
    let (lost, duplicated, reordered, report) = s.verify();
    eprintln!("{report}");
    assert_eq!(lost, 0, "{report}");
    assert_eq!(reordered, 0, "{report}");
    eprintln!("duplicates after the stopped target: {duplicated}");
    assert!(
        paused <= bound,
        "peak RSS {paused} KiB while the target was stopped exceeds {bound} KiB"
    );
    assert!(
        before.max(after) <= bound,
        "peak RSS {} KiB while mirroring exceeds {bound} KiB",
        before.max(after)
    );
}

/// Batches larger than what is left of a partition's share are read from the source once
/// each. Kafka returns the first batch whole however small the Fetch's limit (KIP-74), so
/// a Fetch for a partition with 150 KB of its share left brings a whole 300 KB batch; when
/// no memory had been reserved for all of it, the batch was dropped and read again later,
/// so the daemon read up to twice what it mirrored (916 of 1,088 batches read twice in the
/// catch-up bench's large/direct copy). `kmirror_fetched_bytes` counts what was read. The
/// target is 20 ms away, so the memory stays in use while batches wait for their acks.
/// Kafka also cuts a response at its limit, inside a batch, and that batch's head is read
/// again by the next Fetch: a partition whose batches are this large asks for each by its
/// exact size and the 12 bytes that tell the next one's, so only its first, shared Fetch
/// brings a cut batch. Asking for a whole number of them by the last one's size plus
/// 1/64, it read 1.5-1.8% more than it mirrored.
#[test]
fn large_batches_are_read_from_the_source_once_each() {
    let copy = mirror_large_batches("limits.large", None, Some(Duration::from_millis(20)), 4);
    let (fetched, mirrored) = (copy.fetched_bytes, copy.mirrored_bytes);
    // Read twice in bulk, batches were more than half of what was mirrored; cut tails
    // read twice, 1.5-1.8%. What is read twice now is the cut end of each partition's
    // first Fetch (0.2-0.3% here).
    assert!(
        fetched <= mirrored + mirrored / 100,
        "the daemon read {fetched} bytes from the source to mirror {mirrored}"
    );
}

/// From a distant leader a partition asks for as many batches as fit its limit, not one
/// batch per Fetch: a partition is in one Fetch at a time, so one batch per Fetch would
/// cap it at a batch per round trip (half the rate 50 ms away, in the catch-up bench).
/// Whether a leader is near is its last answer's time. And with the target near, it
/// waits for the acks of its last response's batches before asking, rather than ask for
/// what they left of its share. Here (a 1 MiB share, batches of 295 KB): 119-120 Fetch
/// requests; asking at once, two batches then one in turn, 226-227; one batch per Fetch,
/// 331.
#[test]
fn large_batches_come_several_per_fetch_from_a_distant_source() {
    let copy = mirror_large_batches("limits.distant", Some(Duration::from_millis(50)), None, 4);
    assert!(
        copy.fetch_requests <= LARGE_BATCHES_AT_LEAST / 2,
        "{} Fetch requests for at least {LARGE_BATCHES_AT_LEAST} batches",
        copy.fetch_requests
    );
}

/// From a distant leader a partition fetched alone asks for more than Kafka's default
/// 1 MiB per partition when its share allows (up to a quarter of the budget): it is in one
/// Fetch at a time, so 1 MiB per 50 ms round trip would cap it at 21 MB/s. Here (a 4 MiB
/// share, batches of 295 KB, 4 x 24 MB): 49-59 Fetch requests, the copy done 1.7-1.9 s
/// after the daemon's start; at 1 MiB each, 119 and 2.3 s.
#[test]
fn a_partition_asks_beyond_one_mib_from_a_distant_source() {
    let copy = mirror_large_batches(
        "limits.distant.more",
        Some(Duration::from_millis(50)),
        None,
        16,
    );
    assert!(
        copy.fetch_requests <= LARGE_BATCHES_AT_LEAST / 4,
        "{} Fetch requests for at least {LARGE_BATCHES_AT_LEAST} batches",
        copy.fetch_requests
    );
}

/// What [`mirror_large_batches`] wrote, at the least: 4 partitions x 2,400 records of
/// 10 KB in batches of up to 300 KB.
const LARGE_BATCHES_AT_LEAST: u64 = 4 * 2_400 * 10_000 / 300_000;

/// Counters of one copy, from the daemon's `/status`.
struct Copy {
    fetched_bytes: u64,
    mirrored_bytes: u64,
    fetch_requests: u64,
}

/// Mirrors 4 x 2,400 records of 10 KB, uncompressed, in batches of up to 300 KB, under a
/// budget of `budget_mib` (4 MiB: 1 MiB per partition, three batches and 150 KB to spare),
/// with the source and the target behind these round trips; checks nothing is lost,
/// duplicated or reordered.
fn mirror_large_batches(
    topic: &'static str,
    source_rtt: Option<Duration>,
    target_rtt: Option<Duration>,
    budget_mib: u32,
) -> Copy {
    let _serial = serial();
    const PARTITIONS: u32 = 4;
    const RECORDS: u32 = 2_400;
    let s = setup_with_round_trip(
        topic,
        PARTITIONS,
        &format!("{{ max_in_flight_bytes: {budget_mib}MiB }}"),
        (source_rtt, target_rtt),
        &[],
    );
    let listen = add_telemetry_listener(&s.config);
    produce_all(
        &s.source.addr(),
        (s.topic, PARTITIONS),
        (RECORDS, 10_000),
        (200, 300_000),
        &s.acked,
    );
    let daemon = DaemonProcess::start(&s.config);
    let all = u64::from(PARTITIONS * RECORDS);
    s.wait_target(all).join().expect("watcher");
    let status = support::discovery::wait_until("every batch acknowledged", &daemon, || {
        let (_, body) = http_get(&listen, "/status")?;
        let status: serde_json::Value = serde_json::from_str(&body).ok()?;
        let flow = status["flows"][0].clone();
        (flow["mirrored_records"].as_u64() == Some(all)).then_some(flow)
    });
    let (lost, duplicated, reordered, report) = s.verify();
    assert_eq!((lost, duplicated, reordered), (0, 0, 0), "{report}");
    let copy = Copy {
        fetched_bytes: status["fetched_bytes"].as_u64().unwrap(),
        mirrored_bytes: status["mirrored_bytes"].as_u64().unwrap(),
        fetch_requests: status["fetch_requests"].as_u64().unwrap(),
    };
    eprintln!(
        "fetched {} bytes from the source in {} Fetch requests for {} mirrored",
        copy.fetched_bytes, copy.fetch_requests, copy.mirrored_bytes
    );
    assert!(
        copy.mirrored_bytes >= all * 10_000,
        "mirrored_bytes {}",
        copy.mirrored_bytes
    );
    copy
}

/// A 3 MB batch behind small ones, under a 4 MiB budget: the Fetch that brings the small
/// batches ends inside the large one (Kafka cuts a response at its limit), which tells its
/// size; the partition is then fetched alone, with memory for the whole batch once it is
/// free. A partition expecting a large batch had been left in the shared Fetch, which then
/// waited for twice that batch free at once, and never fetched again.
#[test]
fn a_large_batch_behind_small_ones_is_mirrored_under_a_small_budget() {
    mirror_a_large_batch_behind_small_ones(&[], "4MiB", |daemon| {
        assert!(
            !daemon
                .log
                .contains("larger than the flow's max_in_flight_bytes"),
            "{}",
            daemon.log.tail(40)
        );
    });
}

/// The same 3 MB batch under a 1 MiB budget: it cannot fit, so it is mirrored with the
/// whole budget, and the daemon says so once, with the batch's offset and size.
#[test]
fn a_batch_larger_than_the_budget_is_mirrored_and_reported_with_its_offset_and_size() {
    mirror_a_large_batch_behind_small_ones(&[], "1MiB", reported_once);
}

/// The same against brokers emulating Kafka 2.8.
#[test]
fn a_batch_larger_than_the_budget_is_reported_emulating_kafka_2_8() {
    mirror_a_large_batch_behind_small_ones(&["--emulate-kafka", "2.8"], "1MiB", reported_once);
}

/// The WARN of a batch larger than the budget: once, with the batch's offset and size.
fn reported_once(daemon: &DaemonProcess) {
    let warned = daemon
        .log
        .lines_containing("larger than the flow's max_in_flight_bytes");
    assert_eq!(warned.len(), 1, "{warned:?}");
    let line = &warned[0];
    assert!(
        line.contains(" WARN ")
            && line.contains("topic=limits.mixed partition=0 offset=40 ")
            && line.contains("max_in_flight_bytes=1048576"),
        "{line}"
    );
    let size = Log::field(line, "size_bytes").unwrap_or_else(|| panic!("{line}"));
    assert!((3_000_000..3_100_000).contains(&size), "{line}");
}

/// 40 records of 1 KB, one of 3 MB, 40 of 1 KB, mirrored under `budget`; once all 81
/// arrived, without an ERROR, `check` reads the daemon (its brokers still up), and the
/// daemon is stopped.
fn mirror_a_large_batch_behind_small_ones(
    broker_args: &[&str],
    budget: &str,
    check: impl FnOnce(&DaemonProcess),
) {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), broker_args);
    let target = BrokerProcess::start(&dir.path().join("target"), broker_args);
    let topic = "limits.mixed";
    support::topics::create(&source.addr(), topic, 1, &["max.message.bytes=8000000"]);
    for (i, records) in [(40, 1_000), (1, 3_000_000), (40, 1_000)]
        .into_iter()
        .enumerate()
    {
        let acked = dir.path().join(format!("acked-{i}.json"));
        produce_all(&source.addr(), (topic, 1), records, (0, 4_000_000), &acked);
    }
    let flow = format!(
        "  - name: limits\n    source: east\n    target: west\n    topics: {{ include: [\"{topic}\"] }}\n    rename: \"{{topic}}\"\n    limits: {{ max_in_flight_bytes: {budget} }}\n"
    );
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow,
    );
    let mut daemon = DaemonProcess::start(&config);
    let mirrored = support::discovery::wait_mirrored(&daemon, &source, topic, &target, topic);
    assert_eq!(support::topics::total(&mirrored), 81);
    assert!(!daemon.log.contains(" ERROR "), "{}", daemon.log.tail(40));
    check(&daemon);
    daemon.terminate_ok();
}

/// Under a low rate limit the daemon has fetched far more than it may send yet. SIGTERM
/// drains in time: acknowledgements are taken while batches wait for the limit, and the
/// batches still waiting are not sent, so the drain does not run out of time with batches
/// in flight, and the next start mirrors nothing twice.
#[test]
fn a_drain_under_a_low_rate_limit_ends_in_time_and_mirrors_nothing_twice() {
    let _serial = serial();
    let s = setup("limits.drain", 3, "{ bytes_per_sec: 256KiB }");
    // 3 x 1,000 records of 1 KiB: about 12 s at the limit, all fetched in the first second.
    let acked = join_producer(s.produce(1_000, 1024, 5));
    let some = s.wait_target(300);
    let mut daemon = DaemonProcess::start_with(&s.config, &["--drain-timeout", "3s"], &[]);
    some.join().expect("some records mirrored");
    daemon.terminate_ok();
    assert!(
        !daemon.log.contains("Drain deadline passed"),
        "{}",
        daemon.log.tail(30)
    );
    daemon.restart();
    s.wait_target(acked).join().expect("every record mirrored");
    let (lost, duplicated, reordered, report) = s.verify();
    assert_eq!((lost, duplicated, reordered), (0, 0, 0), "{report}");
    daemon.terminate_ok();
}
