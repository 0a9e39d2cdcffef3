//! A transactional source (Kafka Streams' exactly-once, Flink, any `transactional.id`
//! producer), written by librdkafka's transactional producer: the target gets exactly the
//! committed records, in order, with no aborted record and no transaction marker; a
//! transaction left open holds back what was committed behind it (the source's last
//! stable offset) until it ends, committed (emulating 2.8) or aborted (4.1); and source
//! offsets past markers and aborted records still translate exactly. At Kafka 4.1 versions
//! and emulating Kafka 2.8.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use support::topics::{contents, create, flow, translate, Contents};
use support::*;

/// `{partition: [value, ...]}` as `txn_source.py` prints it.
fn parse(line: &str, prefix: &str) -> Contents {
    let map: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_str(&line[prefix.len()..]).expect("JSON");
    map.into_iter()
        .map(|(p, v)| (p.parse().unwrap(), v))
        .collect()
}

/// Waits until the target's `topic` holds exactly `want`; anything else on the way
/// (an aborted record, a record from behind an open transaction) fails at once.
fn wait_exactly(target: &str, topic: &str, want: &Contents, daemon: &DaemonProcess) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let got = contents(target, topic).unwrap_or_default();
        if &got == want {
            return;
        }
        for (p, records) in &got {
            let expected = want.get(p).cloned().unwrap_or_default();
            assert!(
                expected.starts_with(records),
                "{topic}[{p}] is not a prefix of the committed records:\n target {records:?}\n committed {expected:?}"
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{topic}: not mirrored after 120 s: {got:?}\n{}",
            daemon.log.tail(40)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The end offsets (read_committed: the last stable offset) of partitions 0 and 1.
fn end_offsets(bootstrap: &str, topic: &str) -> Vec<i64> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = cluster::check_client(bootstrap);
        client.refresh_metadata().await.unwrap();
        let mut ends = Vec::new();
        for p in 0..2 {
            let leader = client.leader(topic, p).await.unwrap();
            let latest = kmirror::client::list_offsets::LATEST;
            let (code, end) =
                kmirror::client::list_offsets::list_offset(&leader, topic, p, -1, latest)
                    .await
                    .unwrap();
            assert_eq!(code, 0, "ListOffsets {topic}-{p}");
            ends.push(end);
        }
        ends
    })
}

/// `held_ends` ends the transaction left open ("commit" or "abort").
fn transactional_source_is_mirrored_committed_only(broker_args: &[&str], held_ends: &str) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), broker_args);
    let target = BrokerProcess::start(&dir.path().join("target"), broker_args);
    create(&source.addr(), "txn", 2, &[]);
    let written = run_python(
        "txn_source.py",
        &[
            "--bootstrap",
            &source.addr(),
            "--topic",
            "txn",
            "--mode",
            "write",
        ],
    );
    let line = written.lines().find(|l| l.starts_with("RESULT ")).unwrap();
    let mut want = parse(line, "RESULT ");
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow("txn"),
    );
    let listen = add_telemetry_listener(&config);
    let daemon = DaemonProcess::start(&config);
    wait_exactly(&target.addr(), "txn", &want, &daemon);

    // A transaction left open holds back a transaction committed behind it.
    let mut hold = python_command()
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/txn_source.py"
        ))
        .args([
            "--bootstrap",
            &source.addr(),
            "--topic",
            "txn",
            "--mode",
            "hold",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("txn_source.py starts");
    let mut lines = BufReader::new(hold.stdout.take().unwrap()).lines();
    let ready = lines.next().expect("a line").expect("READY");
    assert_eq!(ready, "READY");
    // The daemon reads up to the source's last stable offset (the open transaction's first
    // offset) and waits there, /status showing the high watermark beyond: caught up, as a
    // read_committed consumer is (lag 0). Neither transaction may reach the target
    // meanwhile.
    let stable = end_offsets(&source.addr(), "txn");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let partitions = loop {
        let (_, status) = http_get(&listen, "/status").expect("/status");
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        let partitions = status["flows"][0]["partitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let waiting = partitions.len() == 2
            && partitions.iter().all(|p| {
                let i = p["partition"].as_u64().unwrap_or(9) as usize;
                i < 2
                    && p["position"].as_i64() == Some(stable[i])
                    && p["last_stable_offset"].as_i64() == Some(stable[i])
                    && p["high_watermark"].as_i64().is_some_and(|h| h > stable[i])
            });
        if waiting {
            break partitions;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not reach the last stable offsets {stable:?}: {partitions:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for p in &partitions {
        assert_eq!(
            p["lag_records"], 0,
            "caught up to the last stable offset: {p}"
        );
    }
    wait_exactly(&target.addr(), "txn", &want, &daemon);
    writeln!(hold.stdin.take().unwrap(), "{held_ends}").unwrap();
    let done = lines.next().expect("a line").expect("DONE");
    assert!(hold.wait().unwrap().success());
    for (p, values) in parse(&done, "DONE ") {
        want.entry(p).or_default().extend(values);
    }
    wait_exactly(&target.addr(), "txn", &want, &daemon);

    // The source's end (past the last marker) translates to the target's end.
    let config = config.to_str().unwrap();
    let source_ends = end_offsets(&source.addr(), "txn");
    let target_ends = end_offsets(&target.addr(), "txn");
    for p in 0..2 {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let want = ("exact".to_string(), target_ends[p]);
        loop {
            let got = translate(config, "txn", p as i32, source_ends[p]);
            if got == want {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "partition {p}: source end {} translates to {got:?}, want {want:?}",
                source_ends[p]
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert!(!daemon.log.contains(" ERROR "), "{}", daemon.log.tail(40));
}

#[test]
fn a_transactional_source_is_mirrored_committed_records_only_at_kafka_4_1_versions() {
    transactional_source_is_mirrored_committed_only(&[], "abort");
}

#[test]
fn a_transactional_source_is_mirrored_committed_records_only_emulating_kafka_2_8() {
    transactional_source_is_mirrored_committed_only(&["--emulate-kafka", "2.8"], "commit");
}
