//! Third-party clients against a real `kmirror-broker` process: kcat (librdkafka 2.0.2 from
//! Debian), confluent-kafka and kafka-python (PyPI), plus crash and torn-tail durability
//! and SIGTERM. Each test starts its own broker on 127.0.0.1:0 with a fresh data dir
//! (`kmirror_testkit::BrokerProcess`; a restart keeps the data dir and address).
//!
//! The clients are installed by `scripts/test.sh` (kcat with apt, the Python packages in
//! `.venv/`, exported as `KMIRROR_PYTHON`). Without them these tests fail and say so.
//! The Python scripts live in `tests/interop/` and can be run by hand:
//! `python3 broker/tests/interop/confluent_roundtrip.py --bootstrap 127.0.0.1:9092`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kmirror_testkit::{kcat, python_command, run_ok, run_script_ok, BrokerProcess, Running};

const INTEROP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");
/// How long to wait for a client run. Generous on purpose: CI machines are slow and
/// shared; no test asserts on timing.
const WAIT: Duration = Duration::from_secs(60);
/// For whole Python scripts (several topics, codecs and consumers each).
const SCRIPT_WAIT: Duration = Duration::from_secs(600);

fn script(name: &str) -> String {
    format!("{INTEROP_DIR}/{name}")
}

/// Consumes a whole topic with kcat: partition -> [(offset, key, value)] in order.
/// Keys and values must not contain tabs or newlines.
fn kcat_consume_all(addr: &str, topic: &str) -> BTreeMap<i32, Vec<(i64, String, String)>> {
    let out = run_ok(
        kcat()
            .args(["-C", "-b", addr, "-t", topic, "-o", "beginning", "-e", "-q"])
            .args(["-f", "%p\t%o\t%k\t%s\n"]),
        None,
        WAIT * 2,
    );
    let mut parts: BTreeMap<i32, Vec<(i64, String, String)>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.splitn(4, '\t').collect();
        assert_eq!(f.len(), 4, "unexpected kcat output line {line:?}");
        parts.entry(f[0].parse().unwrap()).or_default().push((
            f[1].parse().unwrap(),
            f[2].to_string(),
            f[3].to_string(),
        ));
    }
    parts
}

/// Every partition's offsets must be 0, 1, 2, ... in consumption order.
fn assert_contiguous(topic: &str, parts: &BTreeMap<i32, Vec<(i64, String, String)>>) {
    for (p, rows) in parts {
        for (i, (off, _, _)) in rows.iter().enumerate() {
            assert_eq!(
                *off, i as i64,
                "{topic}[{p}]: record #{i} has offset {off} (holes or reordering)"
            );
        }
    }
}

/// `kcat -Q -t topic:partition:timestamp` → the offset it prints.
fn kcat_query(addr: &str, topic: &str, partition: i32, ts: i64) -> i64 {
    let out = run_ok(
        kcat().args(["-Q", "-b", addr, "-t", &format!("{topic}:{partition}:{ts}")]),
        None,
        WAIT,
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // "<topic> [<partition>] offset <n>"
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{topic} [{partition}]")))
        .unwrap_or_else(|| {
            panic!("no result line for {topic}:{partition} in kcat -Q output {text:?}")
        });
    line.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse kcat -Q line {line:?}"))
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

fn dir_log_bytes(dir: &Path) -> u64 {
    log_files(dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

/// Start positions and total lengths of the record batches in a `.log` file.
fn batch_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut pos = 0;
    while pos + 12 <= data.len() {
        let len = u32::from_be_bytes(data[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let total = 12 + len;
        assert!(
            pos + total <= data.len(),
            "torn batch at {pos} before the test appended anything"
        );
        spans.push((pos, total));
        pos += total;
    }
    assert_eq!(
        pos,
        data.len(),
        "trailing bytes in a cleanly closed segment"
    );
    spans
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---------------------------------------------------------------------------------------
// kcat
// ---------------------------------------------------------------------------------------

#[test]
fn kcat_metadata_produce_consume_10000_keyed_messages() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &["--default-partitions", "3"]);
    let addr = &broker.addr();
    let topic = "kcat-keyed";
    const N: usize = 10_000;

    // Keys are hashed by librdkafka's default partitioner over the 3 auto-created
    // partitions; which key goes where is librdkafka's business, but each partition must
    // keep production order with offsets 0, 1, 2, ...
    let input: String = (0..N).map(|i| format!("key{i}:value{i}\n")).collect();
    run_ok(
        kcat().args(["-P", "-b", addr, "-t", topic, "-K:"]),
        Some(input.into_bytes()),
        WAIT * 2,
    );

    let out = run_ok(kcat().args(["-L", "-b", addr]), None, WAIT);
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.contains(&format!("broker 0 at {addr}")),
        "kcat -L does not list broker 0 at {addr}:\n{md}"
    );
    assert!(
        md.contains(&format!("topic \"{topic}\" with 3 partitions")),
        "kcat -L does not list {topic} with 3 partitions:\n{md}"
    );

    let parts = kcat_consume_all(addr, topic);
    assert_contiguous(topic, &parts);
    let mut seen = BTreeSet::new();
    for (p, rows) in &parts {
        assert!(!rows.is_empty(), "{topic}[{p}] got no messages");
        let mut last = None;
        for (off, k, v) in rows {
            let i: usize = k
                .strip_prefix("key")
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{topic}[{p}]@{off}: unexpected key {k:?}"));
            assert_eq!(v, &format!("value{i}"), "{topic}[{p}]@{off}: key {k}");
            assert!(seen.insert(i), "{topic}: key{i} consumed twice");
            assert!(
                last < Some(i),
                "{topic}[{p}]@{off}: key{i} after key{last:?}: production order lost"
            );
            last = Some(i);
        }
        // ListOffsets latest (-1) and earliest (-2) through kcat -Q.
        assert_eq!(kcat_query(addr, topic, *p, -1), rows.len() as i64);
        assert_eq!(kcat_query(addr, topic, *p, -2), 0);
    }
    assert_eq!(
        seen.len(),
        N,
        "{topic}: consumed {} distinct keys",
        seen.len()
    );
    eprintln!(
        "kcat: {N} keyed messages, per partition {:?}",
        parts.iter().map(|(p, r)| (*p, r.len())).collect::<Vec<_>>()
    );

    // kcat's librdkafka 2.0.2 compresses gzip/lz4/snappy only when the broker's Produce
    // range includes v0 (fixed upstream in 2.11.1); the broker advertises it for this.
    let (plain, gz) = ("kcat-plain", "kcat-gzip");
    let input: String = (0..2000)
        .map(|i| format!("k{i}:{}\n", format!("compressible value {i} ").repeat(5)))
        .collect();
    for (t, z) in [(plain, None), (gz, Some("gzip"))] {
        let mut cmd = kcat();
        cmd.args(["-P", "-b", addr, "-t", t, "-p", "0", "-K:"]);
        if let Some(z) = z {
            cmd.args(["-z", z]);
        }
        run_ok(&mut cmd, Some(input.clone().into_bytes()), WAIT * 2);
        let parts = kcat_consume_all(addr, t);
        assert_contiguous(t, &parts);
        let rows = &parts[&0];
        assert_eq!(rows.len(), 2000, "{t}");
        for (off, k, v) in rows {
            assert_eq!(k, &format!("k{off}"));
            assert_eq!(v, &format!("compressible value {off} ").repeat(5));
        }
    }
    let (pb, gb) = (
        dir_log_bytes(&dir.path().join(format!("{plain}-0"))),
        dir_log_bytes(&dir.path().join(format!("{gz}-0"))),
    );
    eprintln!("kcat: 2000 messages take {pb} bytes uncompressed, {gb} bytes with -z gzip");
    assert!(
        gb * 2 < pb,
        "kcat -z gzip did not compress ({gb} vs {pb} bytes on disk): librdkafka 2.0.2 disables \
         compression unless the broker's Produce version range includes v0"
    );
}

#[test]
fn kcat_query_offsets_for_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let addr = &broker.addr();
    let topic = "kcat-times";
    // kcat -P cannot set timestamps: produce with confluent-kafka. Timestamps are recent
    // (retention is 7 days) and 10 ms apart: record i has base + 10 i.
    let base = now_ms() - 3_600_000;
    const N: i64 = 500;
    run_ok(
        python_command()
            .arg(script("produce_acked.py"))
            .args(["--bootstrap", addr, "--topic", topic, "--create"])
            .args(["--count", &N.to_string(), "--partitions", "1"])
            .args([
                "--timestamp-base",
                &base.to_string(),
                "--timestamp-step",
                "10",
            ])
            .args(["--linger-ms", "50", "--require-all"]),
        None,
        WAIT * 2,
    );
    let expected = |ts: i64| -> i64 { (0..N).find(|i| base + 10 * i >= ts).unwrap_or(-1) };
    for ts in [
        base - 100_000,
        base,
        base + 1,
        base + 555,
        base + 560,
        base + 2_500,
        base + 10 * (N - 1) - 1,
        base + 10 * (N - 1),
        base + 10 * (N - 1) + 1,
        base + 100_000,
    ] {
        let got = kcat_query(addr, topic, 0, ts);
        assert_eq!(
            got,
            expected(ts),
            "kcat -Q -t {topic}:0:{ts} (base {base}, step 10): offset {got}, want the first \
             record with timestamp >= {ts}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Python clients
// ---------------------------------------------------------------------------------------

/// Runs one of the Python round-trip scripts against a fresh broker (passing it the
/// broker's `--data-dir` if `with_data_dir`) and requires exit status 0.
fn run_roundtrip(name: &str, with_data_dir: bool) {
    run_roundtrip_on(name, with_data_dir, &[]);
}

#[test]
fn confluent_kafka_roundtrip() {
    // --data-dir lets the script also check compressed topics are stored compressed.
    run_roundtrip("confluent_roundtrip.py", true);
}

#[test]
fn kafka_python_roundtrip() {
    run_roundtrip("kafka_python_roundtrip.py", false);
}

// ---------------------------------------------------------------------------------------
// Durability
// ---------------------------------------------------------------------------------------

/// What produce_acked.py reported: (partition, offset) -> (key, value).
struct Acked {
    records: BTreeMap<(i32, i64), (String, String)>,
    failed: u64,
}

fn parse_result(line: &str) -> Acked {
    let json = line.strip_prefix("RESULT ").expect("RESULT line");
    let v: serde_json::Value = serde_json::from_str(json).expect("RESULT json");
    let mut records = BTreeMap::new();
    for r in v["records"].as_array().unwrap() {
        let r = r.as_array().unwrap();
        records.insert(
            (r[0].as_i64().unwrap() as i32, r[1].as_i64().unwrap()),
            (
                r[2].as_str().unwrap().to_string(),
                r[3].as_str().unwrap().to_string(),
            ),
        );
    }
    assert_eq!(records.len() as u64, v["acked"].as_u64().unwrap());
    Acked {
        records,
        failed: v["failed"].as_u64().unwrap(),
    }
}

/// Produces with acks=all, SIGKILLs the broker mid-stream (after `kill_after` confirmed
/// messages), restarts it on the same data dir and address, and checks every acknowledged
/// record is there, unchanged, at its acknowledged offset.
fn survives_sigkill(flush: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &["--flush", flush]);
    let topic = format!("durable-{flush}");
    const COUNT: u64 = 40_000;
    let kill_after = 4_000;
    let mut producer = Running::spawn(
        python_command()
            .arg(script("produce_acked.py"))
            .args(["--bootstrap", &broker.addr(), "--topic", &topic, "--create"])
            .args(["--count", &COUNT.to_string(), "--partitions", "2"])
            .args(["--value-bytes", "200", "--progress-every", "500"])
            .args(["--message-timeout-ms", "10000"]),
    );
    // Kill once enough is acknowledged (or, on a fast machine, once everything is).
    let line = producer.wait_line(SCRIPT_WAIT, |l| {
        l.starts_with("RESULT ")
            || l.strip_prefix("progress ")
                .is_some_and(|n| n.parse::<u64>().unwrap() >= kill_after)
    });
    broker.kill9();
    let result = if line.starts_with("RESULT ") {
        line
    } else {
        producer.wait_line(SCRIPT_WAIT, |l| l.starts_with("RESULT "))
    };
    // The RESULT line lists every record: kept above, not echoed by finish_ok.
    producer.seen.clear();
    producer.finish_ok(SCRIPT_WAIT);
    let acked = parse_result(&result);
    assert!(
        acked.records.len() as u64 >= kill_after,
        "only {} acknowledged before the kill",
        acked.records.len()
    );

    broker.restart();
    let parts = kcat_consume_all(&broker.addr(), &topic);
    assert_contiguous(&topic, &parts);
    let mut present = 0;
    for ((p, off), (k, v)) in &acked.records {
        let row = parts
            .get(p)
            .and_then(|rows| rows.get(*off as usize))
            .unwrap_or_else(|| {
                panic!(
                    "--flush {flush}: acknowledged record {topic}[{p}]@{off} ({k}) is gone after \
                     SIGKILL + restart (partition now has {} records)",
                    parts.get(p).map_or(0, Vec::len)
                )
            });
        assert_eq!(
            (&row.1, &row.2),
            (k, v),
            "--flush {flush}: {topic}[{p}]@{off} changed after restart"
        );
        present += 1;
    }
    let stored: usize = parts.values().map(Vec::len).sum();
    eprintln!(
        "--flush {flush}: {present} acknowledged records all present after SIGKILL; \
         {} failed deliveries; {stored} records stored in all",
        acked.failed
    );
}

#[test]
fn flush_always_keeps_acknowledged_records_across_sigkill() {
    survives_sigkill("always");
}

#[test]
fn flush_never_keeps_acknowledged_records_across_sigkill() {
    // A process crash keeps the page cache: nothing acknowledged may be lost either.
    survives_sigkill("never");
}

#[test]
fn torn_tail_after_clean_stop_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let topic = "torn";
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    // Two kcat runs: at least two batches in the segment.
    let mut expected: Vec<(String, String)> = Vec::new();
    for run_no in 0..2 {
        let rows: Vec<(String, String)> = (0..500)
            .map(|i| (format!("r{run_no}k{i}"), format!("r{run_no}v{i}")))
            .collect();
        let input: String = rows.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        run_ok(
            kcat().args(["-P", "-b", &broker.addr(), "-t", topic, "-p", "0", "-K:"]),
            Some(input.into_bytes()),
            WAIT * 2,
        );
        expected.extend(rows);
    }
    let part_dir = dir.path().join(format!("{topic}-0"));

    // 1: half of the last batch appended again; 2: plain garbage.
    for (round, what) in ["half of a copied batch", "37 garbage bytes"]
        .into_iter()
        .enumerate()
    {
        broker.terminate_ok();
        let seg = log_files(&part_dir).pop().expect("a .log segment");
        let data = fs::read(&seg).unwrap();
        let spans = batch_spans(&data);
        assert!(!spans.is_empty(), "{} holds no batches", seg.display());
        let garbage = if round == 0 {
            let (start, len) = *spans.last().unwrap();
            data[start..start + len / 2].to_vec()
        } else {
            vec![0xAB; 37]
        };
        fs::OpenOptions::new()
            .append(true)
            .open(&seg)
            .unwrap()
            .write_all(&garbage)
            .unwrap();
        eprintln!(
            "torn tail: appended {} bytes ({what}) to {} ({} bytes, {} batches)",
            garbage.len(),
            seg.display(),
            data.len(),
            spans.len()
        );

        broker.restart();
        let parts = kcat_consume_all(&broker.addr(), topic);
        let rows = parts.get(&0).cloned().unwrap_or_default();
        let got: Vec<(String, String)> = rows
            .iter()
            .map(|(_, k, v)| (k.clone(), v.clone()))
            .collect();
        assert_contiguous(topic, &parts);
        assert_eq!(
            got.len(),
            expected.len(),
            "after a torn tail ({what}) the broker returns {} records, want {}",
            got.len(),
            expected.len()
        );
        assert_eq!(got, expected, "records changed after a torn tail ({what})");
        assert_eq!(
            kcat_query(&broker.addr(), topic, 0, -1),
            expected.len() as i64,
            "log end offset after a torn tail ({what})"
        );

        // A new produce continues right after the last good record.
        let next = expected.len();
        let row = (format!("after{round}"), format!("value-after-{round}"));
        run_ok(
            kcat().args(["-P", "-b", &broker.addr(), "-t", topic, "-p", "0", "-K:"]),
            Some(format!("{}:{}\n", row.0, row.1).into_bytes()),
            WAIT,
        );
        expected.push(row.clone());
        let parts = kcat_consume_all(&broker.addr(), topic);
        assert_contiguous(topic, &parts);
        let last = parts[&0].last().unwrap();
        assert_eq!(
            (last.0, &last.1, &last.2),
            (next as i64, &row.0, &row.1),
            "the first produce after the torn tail ({what}) landed at the wrong offset"
        );
        assert_eq!(parts[&0].len(), expected.len());
    }
}

// ---------------------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------------------

#[test]
fn sigterm_with_a_connected_consumer_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    let topic = "sigterm";
    run_ok(
        kcat().args(["-P", "-b", &broker.addr(), "-t", topic, "-p", "0"]),
        Some(b"one\ntwo\n".to_vec()),
        WAIT,
    );
    // A consumer long-polling at the end of the log while the broker stops.
    let mut consumer = Running::spawn(
        kcat()
            .args(["-C", "-b", &broker.addr(), "-t", topic])
            // -u: unbuffered output, or the offsets sit in kcat's stdio buffer.
            .args(["-o", "beginning", "-q", "-u", "-f", "%o\n"]),
    );
    for want in ["0", "1"] {
        let got = consumer.next_line(WAIT);
        assert_eq!(
            got.as_deref(),
            Some(want),
            "kcat -C printed {got:?}, want offset {want}"
        );
    }
    let status = broker.terminate().expect("the broker exits after SIGTERM");
    drop(consumer); // SIGKILL
    let log = broker.log.text();
    assert_eq!(status.code(), Some(0), "SIGTERM exit: {status}\n{log}");
    assert!(log.contains("Shutting down."), "no shutdown line:\n{log}");
    assert!(
        log.contains("kmirror-broker stopped."),
        "no stopped line:\n{log}"
    );

    // And the data is there after the restart.
    broker.restart();
    let parts = kcat_consume_all(&broker.addr(), topic);
    let got: Vec<&str> = parts[&0].iter().map(|r| r.2.as_str()).collect();
    assert_eq!(got, ["one", "two"]);
}

// ---------------------------------------------------------------------------------------
// Emulated Kafka 2.8 (`--emulate-kafka 2.8`): the same clients at 2.8's API versions
// (Fetch 12 by topic name, Produce 9, Metadata 11, ApiVersions 3 without features)
// ---------------------------------------------------------------------------------------

const EMULATE_2_8: &[&str] = &["--emulate-kafka", "2.8"];

/// Requires the broker's start-up line to name the emulated release, so a test cannot pass
/// against a broker that ignored the flag.
fn assert_emulates(broker: &BrokerProcess, release: &str) {
    let log = broker.log.text();
    assert!(
        log.contains(&format!("emulate_kafka={release}")),
        "the broker does not report emulating Kafka {release}:\n{log}"
    );
}

/// [`run_roundtrip`] against a broker started with `broker_args`.
fn run_roundtrip_on(name: &str, with_data_dir: bool, broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), broker_args);
    if broker_args == EMULATE_2_8 {
        assert_emulates(&broker, "2.8");
    }
    let mut cmd = python_command();
    cmd.arg(script(name)).args(["--bootstrap", &broker.addr()]);
    if with_data_dir {
        cmd.arg("--data-dir").arg(dir.path());
    }
    run_script_ok(&mut cmd, SCRIPT_WAIT);
}

#[test]
fn confluent_kafka_roundtrip_against_kafka_2_8() {
    run_roundtrip_on("confluent_roundtrip.py", true, EMULATE_2_8);
}

#[test]
fn kafka_python_roundtrip_against_kafka_2_8() {
    run_roundtrip_on("kafka_python_roundtrip.py", false, EMULATE_2_8);
}

#[test]
fn kcat_produce_consume_query_against_kafka_2_8() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), EMULATE_2_8);
    assert_emulates(&broker, "2.8");
    let addr = &broker.addr();
    let topic = "kcat-2-8";
    let input: String = (0..1000).map(|i| format!("k{i}:v{i}\n")).collect();
    run_ok(
        kcat().args([
            "-P", "-b", addr, "-t", topic, "-p", "0", "-K:", "-z", "gzip",
        ]),
        Some(input.into_bytes()),
        WAIT * 2,
    );
    let parts = kcat_consume_all(addr, topic);
    assert_contiguous(topic, &parts);
    let rows = &parts[&0];
    assert_eq!(rows.len(), 1000, "{topic}");
    for (off, k, v) in rows {
        assert_eq!(
            (k.as_str(), v.as_str()),
            (&*format!("k{off}"), &*format!("v{off}"))
        );
    }
    assert_eq!(kcat_query(addr, topic, 0, -1), 1000);
    assert_eq!(kcat_query(addr, topic, 0, -2), 0);
}
