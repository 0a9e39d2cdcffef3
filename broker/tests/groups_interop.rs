//! Third-party clients against a real `kmirror-broker` process: consumer groups across
//! rebalances, committed offsets across restarts, the idempotent producer across a crash,
//! and the admin APIs (configs, groups, DeleteRecords, retention).
//!
//! Clients: confluent-kafka and kafka-python (`$KMIRROR_PYTHON`, as `scripts/test.sh`
//! installs them) and kcat (apt). Each test starts its own broker on a fresh data dir.
//! The Python scripts live in `tests/interop_groups/` and can be run by hand against any
//! broker (`--bootstrap 127.0.0.1:9092`); each exits non-zero saying what differed.
//! No test asserts on timing; the timeouts are generous for slow, shared CI machines.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use kmirror_testkit::{kcat, python_command, run_ok, run_script_ok, BrokerProcess, Running};

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop_groups");
/// A whole Python scenario (several rebalances, session timeouts, restarts).
const SCRIPT_WAIT: Duration = Duration::from_secs(600);
const WAIT: Duration = Duration::from_secs(120);

fn script(name: &str) -> String {
    format!("{SCRIPTS}/{name}")
}

/// A new group waits this long for more members before its first rebalance; 0 where a
/// test does not exercise the initial delay (the group rebalance test keeps the default).
const NO_DELAY: [&str; 2] = ["--group-initial-rebalance-delay-ms", "0"];

// ---------------------------------------------------------------------------------------
// 1. confluent-kafka consumer group across rebalances
// ---------------------------------------------------------------------------------------

/// Three members over 6 partitions (each partition assigned exactly once), one leaves with
/// close(), one joins, one is SIGKILLed (its partitions move after the 6 s session
/// timeout); a producer writes 6,000 messages meanwhile; members commit synchronously
/// after each batch. Nothing produced may go unconsumed; the committed offsets end at the
/// end offsets. The broker keeps its default group.initial.rebalance.delay.ms (3 s).
#[test]
fn confluent_group_rebalances_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let out = run_script_ok(
        python_command()
            .arg(script("confluent_group_rebalance.py"))
            .args(["--bootstrap", &broker.addr(), "--count", "6000"])
            .args(["--session-timeout-ms", "6000"]),
        SCRIPT_WAIT,
    );
    assert!(out.contains("OK: "), "no OK line:\n{out}");
}

/// librdkafka's KIP-848 consumer (`group.protocol=consumer`) is told at once that the
/// broker does not run that protocol (a fatal error), as by Kafka 3.9+ without
/// `group.version`; the API left out of ApiVersions had it look for a coordinator forever.
#[test]
fn confluent_consumer_protocol_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &NO_DELAY);
    let out = run_script_ok(
        python_command()
            .arg(script("confluent_consumer_protocol.py"))
            .args(["--bootstrap", &broker.addr()]),
        SCRIPT_WAIT,
    );
    assert!(out.contains("OK: "), "no OK line:\n{out}");
}

// ---------------------------------------------------------------------------------------
// 2. Idempotent producer across kill -9
// ---------------------------------------------------------------------------------------

/// enable.idempotence=true, acks=all, 20,000 sequence-numbered messages to one
/// partition; the broker is SIGKILLed after ~5,000, ~10,000 and ~15,000 deliveries and
/// restarted each time on the same address and data dir while librdkafka retries. Every
/// message must be delivered, at the offset equal to its sequence number, and the
/// partition must hold each exactly once, in order. A batch appended just before a kill
/// but not acknowledged is retried by the client: the broker must recognise it (producer
/// state rebuilt after the crash) and answer with its original offset instead of
/// appending it again. With `--flush always` an acknowledgement waits for the fsync, so
/// a kill usually catches batches appended but not yet acknowledged.
fn idempotent_producer_across_sigkill(flush: &str) {
    let dir = tempfile::tempdir().unwrap();
    // The kit's brokers keep their address: the client finds the restarted broker there.
    let mut broker = BrokerProcess::start(dir.path(), &["--flush", flush]);
    let topic = "idempotent";
    const COUNT: u64 = 20_000;
    let mut producer = Running::spawn(
        python_command()
            .arg(script("idempotent_produce.py"))
            .args([
                "--bootstrap",
                &broker.addr(),
                "--topic",
                topic,
                "--mode",
                "produce",
            ])
            .args(["--count", &COUNT.to_string()]),
    );
    let mut kills = 0;
    for kill_after in [5_000u64, 10_000, 15_000] {
        let line = producer.wait_line(WAIT, |l| {
            l.starts_with("RESULT ")
                || l.strip_prefix("progress ")
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n >= kill_after)
        });
        if line.starts_with("RESULT ") {
            break;
        }
        broker.kill9();
        kills += 1;
        eprintln!("SIGKILLed the broker at \"{line}\"");
        // Let the client notice (connection refused, retries), then come back on the
        // same port.
        thread::sleep(Duration::from_millis(500));
        broker.restart();
    }
    assert!(
        kills > 0,
        "everything was delivered before the first kill: the test did not test anything"
    );
    let lines = producer.finish_ok(SCRIPT_WAIT);
    let result = lines
        .iter()
        .find(|l| l.starts_with("RESULT "))
        .expect("a RESULT line");
    eprintln!("producer: {result}");
    let out = run_script_ok(
        python_command()
            .arg(script("idempotent_produce.py"))
            .args([
                "--bootstrap",
                &broker.addr(),
                "--topic",
                topic,
                "--mode",
                "verify",
            ])
            .args(["--count", &COUNT.to_string()]),
        WAIT * 2,
    );
    assert!(out.contains("OK: "), "no OK line:\n{out}");
}

#[test]
fn confluent_idempotent_producer_exactly_once_across_sigkill_flush_always() {
    idempotent_producer_across_sigkill("always");
}

#[test]
fn confluent_idempotent_producer_exactly_once_across_sigkill_flush_never() {
    idempotent_producer_across_sigkill("never");
}

// ---------------------------------------------------------------------------------------
// 3. confluent-kafka AdminClient
// ---------------------------------------------------------------------------------------

/// describe/alter/incremental_alter configs (bad keys and values rejected), list/describe/
/// offsets/delete of consumer groups, delete_records and the low watermark, and retention
/// deleting old segments right after retention.ms is lowered.
#[test]
fn confluent_admin_configs_groups_records_retention() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &NO_DELAY);
    let out = run_script_ok(
        python_command()
            .arg(script("confluent_admin.py"))
            .args(["--bootstrap", &broker.addr(), "--data-dir"])
            .arg(dir.path()),
        SCRIPT_WAIT,
    );
    assert!(out.contains("OK: "), "no OK line:\n{out}");
}

// ---------------------------------------------------------------------------------------
// 4. kafka-python group resumes from committed offsets after a restart
// ---------------------------------------------------------------------------------------

fn kafka_python_resume(stop: fn(&mut BrokerProcess)) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let data = dir.path().join("data");
    let mut broker = BrokerProcess::start(&data, &NO_DELAY);
    let run_phase = |broker: &BrokerProcess, phase: &str| {
        run_script_ok(
            python_command()
                .arg(script("kafka_python_group_resume.py"))
                .args(["--bootstrap", &broker.addr(), "--phase", phase, "--state"])
                .arg(&state),
            SCRIPT_WAIT,
        )
    };
    run_phase(&broker, "first");
    stop(&mut broker);
    broker.restart();
    let out = run_phase(&broker, "resume");
    assert!(out.contains("OK: "), "no OK line:\n{out}");
}

#[test]
fn kafka_python_group_resumes_from_committed_offsets_after_sigterm() {
    kafka_python_resume(|b| b.terminate_ok());
}

#[test]
fn kafka_python_group_resumes_from_committed_offsets_after_sigkill() {
    kafka_python_resume(|b| b.kill9());
}

// ---------------------------------------------------------------------------------------
// 5. kcat balanced consumer group
// ---------------------------------------------------------------------------------------

/// Parses kcat `-f '%p %o %s\n'` lines.
fn parse_pos(line: &str) -> (i32, i64, String) {
    let mut f = line.splitn(3, ' ');
    let (Some(p), Some(o), Some(v)) = (f.next(), f.next(), f.next()) else {
        panic!("unexpected kcat line {line:?}");
    };
    (
        p.parse()
            .unwrap_or_else(|_| panic!("bad partition in {line:?}")),
        o.parse()
            .unwrap_or_else(|_| panic!("bad offset in {line:?}")),
        v.to_string(),
    )
}

fn kcat_produce(addr: &str, topic: &str, partition: i32, values: &[String]) {
    let input: String = values.iter().map(|v| format!("{v}\n")).collect();
    run_ok(
        kcat().args(["-P", "-b", addr, "-t", topic, "-p", &partition.to_string()]),
        Some(input.into_bytes()),
        WAIT,
    );
}

/// Two `kcat -G` members of one group share a 3-partition topic and together consume all
/// 300 messages; they stop with SIGTERM (which commits). A third run of the same group,
/// without -o (kcat's -o overrides committed offsets in -G mode), consumes exactly the 30
/// messages produced afterwards.
#[test]
fn kcat_balanced_group_consumes_all_partitions_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &["--default-partitions", "3"]);
    let addr = &broker.addr();
    let (topic, group) = ("kcat-group", "kcat-g");
    let value = |p: i32, i: i64| format!("p{p}-v{i}");
    for p in 0..3 {
        let vals: Vec<String> = (0..100).map(|i| value(p, i)).collect();
        kcat_produce(addr, topic, p, &vals);
    }
    let member = || {
        Running::spawn(
            kcat()
                .args(["-b", addr, "-G", group, "-X", "auto.offset.reset=earliest"])
                .args(["-q", "-u", "-f", "%p %o %s\\n", topic]),
        )
    };
    let mut members = [member(), member()];
    let mut seen: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let mut per_member = [0usize; 2];
    let deadline = Instant::now() + WAIT;
    while seen.len() < 300 {
        assert!(
            Instant::now() < deadline,
            "two kcat -G members consumed {} of 300 distinct messages within {WAIT:?}; missing \
             e.g. {:?}",
            seen.len(),
            (0..3)
                .flat_map(|p| (0..100).map(move |o| (p, o)))
                .filter(|k| !seen.contains_key(k))
                .take(10)
                .collect::<Vec<_>>()
        );
        for (i, m) in members.iter_mut().enumerate() {
            while let Some(line) = m.next_line(Duration::from_millis(50)) {
                let (p, o, v) = parse_pos(&line);
                assert_eq!(v, value(p, o), "kcat -G: {topic}[{p}]@{o}");
                seen.insert((p, o), v);
                per_member[i] += 1;
            }
        }
    }
    for m in &members {
        m.sigterm();
    }
    for m in members {
        m.finish_ok(WAIT);
    }
    eprintln!("kcat -G: 300 messages, per member {per_member:?} (duplicates allowed)");

    for p in 0..3 {
        let vals: Vec<String> = (100..110).map(|i| value(p, i)).collect();
        kcat_produce(addr, topic, p, &vals);
    }
    let out = run_ok(
        kcat()
            .args(["-b", addr, "-G", group, "-q", "-c", "30"])
            .args(["-f", "%p %o %s\\n", topic]),
        None,
        WAIT,
    );
    let got: BTreeSet<(i32, i64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (p, o, v) = parse_pos(l);
            assert_eq!(v, value(p, o));
            (p, o)
        })
        .collect();
    let want: BTreeSet<(i32, i64)> = (0..3)
        .flat_map(|p| (100..110).map(move |o| (p, o)))
        .collect();
    assert_eq!(
        got, want,
        "kcat -G resuming the group read other messages than the 30 after the committed offsets"
    );
}

// ---------------------------------------------------------------------------------------
// 6. Committed offsets across kill -9
// ---------------------------------------------------------------------------------------

/// Two rounds of: commit offsets (a group member with metadata, and a standalone
/// consumer), SIGKILL the broker right after the commits are acknowledged (the member
/// still in the group), restart, and OffsetFetch (confluent-kafka `committed()` and
/// kafka-python `list_group_offsets`) returns that round's offsets.
#[test]
fn committed_offsets_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &NO_DELAY);
    for round in ["1", "2"] {
        let mut committer = Running::spawn(
            python_command()
                .arg(script("committed_offsets.py"))
                .args(["--bootstrap", &broker.addr(), "--phase", "commit"])
                .args(["--round", round]),
        );
        committer.wait_line(WAIT, |l| l.starts_with("COMMITTED "));
        broker.kill9();
        drop(committer);
        broker.restart();
        let out = run_script_ok(
            python_command()
                .arg(script("committed_offsets.py"))
                .args(["--bootstrap", &broker.addr(), "--phase", "check"])
                .args(["--round", round]),
            WAIT * 2,
        );
        assert!(out.contains("OK: "), "no OK line:\n{out}");
    }
}

// ---------------------------------------------------------------------------------------
// 7. A live group across kill -9
// ---------------------------------------------------------------------------------------

/// Two confluent-kafka members keep running while the broker is SIGKILLed and restarted
/// on the same address: they reconnect, consume what is produced after the restart and
/// commit it; nothing is lost.
#[test]
fn confluent_live_group_survives_broker_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let resume = dir.path().join("restarted");
    let mut broker = BrokerProcess::start(&data, &NO_DELAY);
    let mut group = Running::spawn(
        python_command()
            .arg(script("confluent_group_live_restart.py"))
            .args(["--bootstrap", &broker.addr(), "--resume-file"])
            .arg(&resume),
    );
    group.wait_line(WAIT, |l| l.starts_with("CONSUMED "));
    broker.kill9();
    thread::sleep(Duration::from_millis(500));
    broker.restart();
    std::fs::write(&resume, b"").unwrap();
    let lines = group.finish_ok(SCRIPT_WAIT);
    assert!(
        lines.iter().any(|l| l.starts_with("OK: ")),
        "no OK line: {lines:?}"
    );
}
