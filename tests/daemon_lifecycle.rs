//! The daemon as a process: it starts its flows against real brokers, exits 0 on SIGTERM
//! after draining, and an unreachable cluster is retried and reported while the other
//! flows keep running.

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

#[test]
fn an_unreachable_cluster_is_reported_and_other_flows_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
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
