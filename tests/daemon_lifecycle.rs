//! The daemon as a process: it starts its flows against real brokers, exits 0 on SIGTERM
//! after draining (within `--drain-timeout` and a few seconds, even when the target stops
//! answering), and an unreachable cluster is retried and reported while the other flows
//! keep running.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn starts_flows_and_stops_cleanly_on_sigterm() {
    let (dir, brokers) = brokers();
    let config = one_flow(dir.path(), &[&brokers[0], &brokers[1]], "orders.*");
    // A 1 s watchdog, as systemd sets it from WatchdogSec=.
    let mut daemon = DaemonProcess::start_with(&config, &[], &[("WATCHDOG_USEC", "1000000")]);
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "no READY=1:\n{}",
        daemon.log.tail(30)
    );
    // READY=1 comes once the flow started.
    assert!(
        daemon.log.wait_for("Flow started", Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    assert!(
        daemon.wait_notified("WATCHDOG=1", Duration::from_secs(10)),
        "no WATCHDOG=1 within 10 s of a 1 s watchdog:\n{}",
        daemon.log.tail(30)
    );
    // SIGHUP reloads; the topology is the same, so the flow runs on untouched.
    daemon.signal("-HUP");
    assert!(
        daemon.wait_notified("RELOADING=1", Duration::from_secs(10)),
        "no RELOADING=1:\n{}",
        daemon.log.tail(30)
    );
    assert!(
        daemon
            .log
            .wait_for("unchanged=east-to-west", Duration::from_secs(10)),
        "{}",
        daemon.log.tail(30)
    );
    let status = daemon.terminate().expect("daemon exits after SIGTERM");
    assert!(
        status.success(),
        "exit status {status}: {}",
        daemon.log.tail(30)
    );
    assert!(
        daemon.wait_stopping(Duration::ZERO),
        "no STOPPING=1:\n{}",
        daemon.log.tail(30)
    );
    assert!(daemon.log.contains("Flow stopped"));
    // In order: READY=1, WATCHDOG=1 (repeated), RELOADING=1, READY=1 again, STOPPING=1.
    let seen: Vec<String> = daemon
        .notifications()
        .into_iter()
        .filter(|s| !s.starts_with("MONOTONIC_USEC="))
        .collect();
    let first = |state: &str| seen.iter().position(|s| s == state);
    let (ready, watchdog, reloading, stopping) = (
        first("READY=1"),
        first("WATCHDOG=1"),
        first("RELOADING=1"),
        first("STOPPING=1"),
    );
    assert!(
        ready < watchdog && watchdog < reloading && reloading < stopping && ready.is_some(),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().map(String::as_str),
        Some("STOPPING=1"),
        "{seen:?}"
    );
}

/// The reader of the daemon's log goes away (a log shipper that died, a `| head`): log lines
/// are lost, the daemon is not. Before, the first line written after it (tracing's report of
/// the failed write panics) killed the task that wrote it: SIGTERM's handler, or a flow
/// that then never started.
#[test]
fn a_closed_log_pipe_loses_log_lines_and_keeps_the_daemon() {
    let (dir, brokers) = brokers();
    let config = one_flow(dir.path(), &[&brokers[0], &brokers[1]], "orders.*");
    let listen = add_telemetry_listener(&config);
    let mut command = std::process::Command::new(daemon_binary());
    command.arg("run").arg(&config);
    let mut daemon = Unlogged::spawn(command);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while http_get(&listen, "/readyz").is_none_or(|(code, _)| code != 200) {
        assert!(
            std::time::Instant::now() < deadline,
            "the flow never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = daemon.terminate();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?} (None: still running 30 s after SIGTERM)"
    );
}

#[test]
fn an_unreachable_cluster_is_reported_and_other_flows_keep_running() {
    unreachable_cluster_at_start(&[]);
}

#[test]
fn an_unreachable_cluster_is_reported_and_other_flows_keep_running_at_kafka_2_8() {
    unreachable_cluster_at_start(&["--emulate-kafka", "2.8"]);
}

fn unreachable_cluster_at_start(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), broker_args);
    let target = BrokerProcess::start(&dir.path().join("target"), broker_args);
    let dead = format!("127.0.0.1:{}", free_port());
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr()), ("gone", &dead)],
        concat!(
            "  - name: east-to-west\n    source: east\n    target: west\n    topics: { include: [\".*\"] }\n",
            "  - name: east-to-gone\n    source: east\n    target: gone\n    topics: { include: [\".*\"] }\n",
        ),
    );
    let daemon = DaemonProcess::start(&config);
    assert!(
        daemon
            .log
            .wait_for("flow=east-to-west", Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    assert!(
        daemon
            .log
            .wait_for("Flow started. flow=east-to-west", Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    assert!(
        daemon.log.wait_for("cluster=gone", Duration::from_secs(60)),
        "the unreachable cluster was not reported:\n{}",
        daemon.log.tail(30)
    );
    assert!(daemon.pid().is_some());
}

/// `--threads` sets the runtime's worker threads; without it (and without embedded
/// clusters) the daemon runs on its main thread alone (tokio's current-thread scheduler):
/// mirroring shows in that thread's CPU time, not in workers'. Zero is refused before
/// anything starts.
#[test]
fn runs_on_the_worker_threads_asked_for() {
    let (dir, brokers) = brokers();
    let config = one_flow(dir.path(), &[&brokers[0], &brokers[1]], "orders.*");
    let mut daemon = DaemonProcess::start_with(&config, &["--threads", "3"], &[]);
    assert!(
        daemon.log.wait_for("Flow started", Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    assert_eq!(daemon.threads_named("tokio-rt-worker"), Some(3));
    daemon.terminate_ok();

    let mut daemon = DaemonProcess::start(&config);
    assert!(
        daemon.log.wait_for("Flow started", Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    let (main_before, all_before) = daemon.cpu_ticks().expect("daemon running");
    topics::produce(&brokers[0].addr(), "orders.cpu", "r", 100_000, &[0]);
    topics::wait_records(&brokers[1].addr(), "east.orders.cpu", 100_000, &daemon);
    let (main_after, all_after) = daemon.cpu_ticks().expect("daemon running");
    let (main, all) = (main_after - main_before, all_after - all_before);
    assert!(
        all > 0 && main * 3 >= all * 2,
        "the main thread used {main} of the {all} ticks the daemon spent mirroring"
    );
    daemon.terminate_ok();
    let refused = std::process::Command::new(daemon_binary())
        .args(["run", config.to_str().unwrap(), "--threads", "0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--threads"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// `--log-format json`: every line is one JSON object, and a flow's lines carry it as a
/// field.
#[test]
fn json_logs_are_one_object_per_line_with_the_flow_as_a_field() {
    let (dir, brokers) = brokers();
    let config = one_flow(dir.path(), &[&brokers[0], &brokers[1]], "orders.*");
    let mut daemon = DaemonProcess::start_with(&config, &["--log-format", "json"], &[]);
    assert!(
        daemon.log.wait_for("Flow started", Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    daemon.terminate_ok();
    let lines = daemon.log.lines();
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let started = objects
        .iter()
        .find(|o| o["fields"]["message"] == "Flow started.")
        .expect("a Flow started line");
    assert_eq!(started["fields"]["flow"], "east-to-west");
    assert_eq!(started["level"], "INFO");
}

/// A stop while the target does not answer: the drain of in-flight batches and the final
/// progress write share `--drain-timeout` (the write gets 3 s when the drain used it all;
/// `mirror::drain_tests`), so the stop ends well inside systemd's TimeoutStopSec= (45 s
/// for a 30 s drain) and exits 0. Here the target keeps its connections and answers
/// nothing, so the final write is bounded by its time, not by a refused connection. (A
/// periodic write already waiting on such a target when the stop comes is
/// `progress::writer_tests`' case.)
#[test]
fn a_stop_while_the_target_hangs_ends_within_the_drain_timeout() {
    stop_within_the_drain_timeout(false);
}

/// The same with the target gone (its connections reset, new ones refused).
#[test]
fn a_stop_while_the_target_is_down_ends_within_the_drain_timeout() {
    stop_within_the_drain_timeout(true);
}

fn stop_within_the_drain_timeout(target_gone: bool) {
    let (dir, mut brokers) = brokers();
    let config = one_flow(dir.path(), &[&brokers[0], &brokers[1]], "hung.*");
    let listen = format!("127.0.0.1:{}", free_port());
    add_telemetry(&config, &format!("listen: \"{listen}\""));
    support::topics::create(&brokers[0].addr(), "hung", 1, &[]);
    let mut daemon = DaemonProcess::start_with(&config, &["--drain-timeout", "4s"], &[]);
    assert!(
        daemon.log.wait_for("Flow started", Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    // The target answers nothing from here on (SIGSTOP), and is gone (SIGKILL) if asked.
    brokers[1].pause();
    support::topics::produce(&brokers[0].addr(), "hung", "v", 50, &[]);
    // Wait until the daemon holds batches the target has not acknowledged.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let held = http_get(&listen, "/metrics")
            .map_or(0.0, |(_, m)| metric_sum(&m, "kmirror_in_flight_bytes", &[]));
        if held > 0.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "nothing in flight");
        std::thread::sleep(Duration::from_millis(100));
    }
    if target_gone {
        brokers[1].kill9();
    }
    let stopping = std::time::Instant::now();
    let status = daemon.terminate().expect("the daemon exits");
    let took = stopping.elapsed();
    assert!(status.success(), "{status:?}\n{}", daemon.log.tail(20));
    // 4 s of drain, at most 3 s for the write, and room for a busy machine: far below the
    // 30 s request timeout a write waiting on the target would take.
    assert!(
        took < Duration::from_secs(15),
        "{took:?}\n{}",
        daemon.log.tail(20)
    );
    assert!(
        daemon.log.contains("Drain deadline passed"),
        "{}",
        daemon.log.tail(20)
    );
}

/// Progress writes that keep failing (here the target's progress topic wants 3 in-sync
/// replicas while one node is stopped, so each write, one every 500 ms, gets
/// NOT_ENOUGH_REPLICAS while the mirrored records still land): the first failure is a
/// WARN, the next ones DEBUG until a minute has passed, and the end of it an INFO with the
/// count, instead of a WARN each time.
#[test]
fn failing_progress_writes_are_reported_once_a_minute_not_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = ThreeNodes::start(&dir.path().join("target"), &[]);
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        "  - name: noisy\n    source: east\n    target: west\n    topics: { include: [noisy] }\n",
    );
    support::topics::create(&source.addr(), "noisy", 1, &[]);
    let mut daemon = DaemonProcess::start_with(
        &config,
        &["--log-level", "info,kmirror::mirror::progress=debug"],
        &[],
    );
    support::topics::produce(&source.addr(), "noisy", "a", 10, &[]);
    support::topics::wait_records(&target.addr(), "east.noisy", 10, &daemon);
    support::topics::admin(
        &target.addr(),
        &["alter", "__kmirror_progress", "min.insync.replicas=3"],
    );
    target.node(2, "stop");
    let mut sent = 10;
    while !daemon.log.contains("failed_writes=4") {
        assert!(sent < 10_000, "{}", daemon.log.tail(30));
        support::topics::produce(&source.addr(), "noisy", "b", 10, &[]);
        sent += 10;
        support::topics::wait_records(&target.addr(), "east.noisy", sent, &daemon);
    }
    let warned = daemon
        .log
        .lines()
        .iter()
        .filter(|l| l.contains(" WARN ") && l.contains("Cannot write mirror progress"))
        .count();
    assert_eq!(warned, 1, "{}", daemon.log.tail(30));
    target.node(2, "start");
    assert!(
        daemon
            .log
            .wait_for("Mirror progress written again", Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    daemon.terminate_ok();
}
