//! The telemetry listener during an end-to-end mirror: `/metrics` counts what was
//! mirrored, lag reaches 0 when caught up and grows while the target is down, the latency
//! histogram counts every acknowledged batch; `/readyz` turns 503 while the target is down
//! and 200 after it returns; `/status` reports the same; the progress line is logged.

mod support;

use std::time::{Duration, Instant};

use support::records::Produce;
use support::*;

const FLOW: &str = "east-to-west";

/// Polls `GET path` until `done` holds for its answer; panics with the last one after 90 s.
fn wait_http(
    addr: &str,
    path: &str,
    what: &str,
    daemon: &DaemonProcess,
    done: impl Fn(u16, &str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = http_get(addr, path);
        if let Some((status, body)) = &got {
            if done(*status, body) {
                return body.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last answer to {path}: {got:?}\ndaemon log:\n{}",
            daemon.log.tail(40)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `/readyz` answers 503 giving `reason`.
fn wait_not_ready(listen: &str, reason: &str, daemon: &DaemonProcess) {
    wait_http(listen, "/readyz", reason, daemon, |s, b| {
        s == 503 && b.contains(reason)
    });
}

fn records_total(metrics: &str) -> Option<f64> {
    metric(
        metrics,
        &format!("kmirror_mirrored_records_total{{flow=\"{FLOW}\"}}"),
    )
}

fn lag(metrics: &str) -> f64 {
    metric_sum(
        metrics,
        "kmirror_partition_lag_records",
        &[&format!("flow=\"{FLOW}\"")],
    )
}

#[test]
fn metrics_status_and_readiness_follow_a_mirror_and_a_stopped_target() {
    let (dir, [mut source, mut target]) = brokers();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = one_flow(dir.path(), &[&source, &target], "orders");
    add_telemetry(&config, &format!("listen: \"{listen}\", log_interval: 1s"));

    let acked = dir.path().join("acked.json");
    let first = Produce {
        records: 500,
        create: true,
        ..Produce::new(&source.addr(), "orders", 4, &acked)
    }
    .run();
    assert_eq!(first, 2000);

    let daemon = DaemonProcess::start(&config);
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    assert_eq!(http_get(&listen, "/healthz").map(|a| a.0), Some(200));
    let metrics = wait_http(
        &listen,
        "/metrics",
        "all records counted",
        &daemon,
        |s, b| s == 200 && records_total(b) == Some(2000.0) && lag(b) == 0.0,
    );
    let batches = metric(
        &metrics,
        &format!("kmirror_replication_latency_seconds_count{{flow=\"{FLOW}\"}}"),
    )
    .expect("the latency histogram is exported");
    // One histogram count per acknowledged batch, and each is one batch on the target.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let written = rt.block_on(support::cluster::count_batches(
        &target.addr(),
        "east.orders",
    ));
    assert_eq!(
        batches, written as f64,
        "latency histogram count vs batches on the target"
    );
    assert_eq!(
        metric(
            &metrics,
            &format!("kmirror_partitions{{flow=\"{FLOW}\",state=\"running\"}}")
        ),
        Some(4.0)
    );
    let status: serde_json::Value =
        serde_json::from_str(&wait_http(&listen, "/status", "status", &daemon, |s, _| {
            s == 200
        }))
        .expect("/status is JSON");
    let flow = &status["flows"][0];
    assert_eq!(flow["name"], FLOW);
    assert_eq!(flow["mirrored_records"], 2000);
    assert_eq!(flow["lag_records"], 0);
    assert_eq!(flow["lag_unknown_partitions"], 0);
    assert_eq!(flow["ready"], true);
    assert_eq!(flow["latency_seconds"]["batches"].as_f64(), Some(batches));
    assert!(flow["latency_seconds"]["p99"].as_f64().unwrap() >= 0.0);
    assert_eq!(flow["partitions"].as_array().map(Vec::len), Some(4));
    assert_eq!(http_get(&listen, "/readyz").map(|a| a.0), Some(200));
    let table = kmirror_ok(&["status", config.to_str().unwrap()]);
    let line = table.lines().nth(1).unwrap_or_default();
    assert!(
        line.starts_with(FLOW) && line.contains("ready") && line.contains("2000"),
        "{table}"
    );
    assert!(
        daemon.log.wait_for("Mirroring.", Duration::from_secs(10)),
        "no progress line:\n{}",
        daemon.log.tail(20)
    );

    // The target goes down while the source gets more records.
    target.kill9();
    let more = Produce {
        records: 100,
        ..Produce::new(&source.addr(), "orders", 4, &dir.path().join("more.json"))
    }
    .run();
    assert_eq!(more, 400);
    wait_not_ready(&listen, "target west failing", &daemon);
    let table = kmirror_ok(&["status", "--url", &format!("http://{listen}")]);
    assert!(
        table.contains("NOT READY") && table.contains("target west failing"),
        "{table}"
    );
    wait_http(
        &listen,
        "/metrics",
        "lag while the target is down",
        &daemon,
        |s, b| s == 200 && lag(b) == 400.0 && records_total(b) == Some(2000.0),
    );

    target.restart();
    wait_http(
        &listen,
        "/readyz",
        "ready once the target is back",
        &daemon,
        |s, _| s == 200,
    );
    wait_http(&listen, "/metrics", "caught up again", &daemon, |s, b| {
        s == 200 && records_total(b) == Some(2400.0) && lag(b) == 0.0
    });
    let metrics = http_get(&listen, "/metrics")
        .map(|a| a.1)
        .unwrap_or_default();
    let flow_label = format!("flow=\"{FLOW}\"");
    assert!(
        metric_sum(&metrics, "kmirror_retries_total", &[&flow_label]) > 0.0,
        "the produce retries while the target was down are counted:\n{metrics}"
    );
    assert_eq!(http_get(&listen, "/nothing").map(|a| a.0), Some(404));

    // The source goes down: not ready, until it is back.
    source.kill9();
    wait_not_ready(&listen, "source east failing", &daemon);
    source.restart();
    wait_http(
        &listen,
        "/readyz",
        "ready once the source is back",
        &daemon,
        |s, _| s == 200,
    );
}
