//! What keeps a flow from mirroring shows where an operator looks: `/readyz`, `/status`,
//! `/metrics` and `kmirror status`, not only a log line. A source down at start keeps the
//! flow not ready (and `READY=1` unsent) until discovery reads it; a setup that keeps
//! failing (a wrong SASL password) shows its error.

mod support;

use std::time::Duration;

use support::discovery::{east_to_west, stop, wait_until, Clusters};
use support::*;

/// The flow's entry in `/status`, once the listener answers.
fn flow_status(listen: &str, daemon: &DaemonProcess) -> serde_json::Value {
    let status = wait_until("/status", daemon, || http_get(listen, "/status"));
    let status: serde_json::Value = serde_json::from_str(&status.1).expect("/status is JSON");
    status["flows"][0].clone()
}

fn status_table(listen: &str) -> String {
    kmirror_ok(&["status", "--url", &format!("http://{listen}")])
}

/// `READY=1` waits for the first discovery round that read the source; until then the
/// flow says why it has not started. Later failed rounds are counted, and the flow keeps
/// its partitions.
#[test]
fn a_source_down_at_start_keeps_the_flow_not_ready_until_discovery_reads_it() {
    let mut c = Clusters::start();
    let config = c.topology(&east_to_west("orders", ""));
    let listen = add_telemetry_listener(&config);
    c.source.kill9();
    let daemon = DaemonProcess::start(&config);
    wait_until("two failed discovery rounds", &daemon, || {
        let failed = daemon
            .log
            .lines()
            .iter()
            .filter(|l| l.contains("Discovery failed"))
            .count();
        (failed >= 2).then_some(())
    });
    let flow = flow_status(&listen, &daemon);
    assert_eq!(flow["ready"], false, "{flow}");
    let reasons = flow["not_ready"].to_string();
    assert!(
        reasons.contains("not started") && reasons.contains("cluster east"),
        "{reasons}"
    );
    let last_error = flow["last_error"]["error"].as_str().unwrap_or_default();
    assert!(last_error.contains("cluster east"), "{flow}");
    assert_eq!(http_get(&listen, "/readyz").map(|a| a.0), Some(503));
    assert!(
        !daemon.wait_ready(Duration::ZERO),
        "READY=1 before the flow read its source: {:?}",
        daemon.notifications()
    );
    let table = status_table(&listen);
    assert!(
        table.contains("NOT READY") && table.contains("cluster east"),
        "{table}"
    );

    // The source comes up: the next round reads it, the flow starts and READY=1 goes out.
    c.source.restart();
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "no READY=1 once the source answered:\n{}",
        daemon.log.tail(30)
    );
    wait_until("/readyz 200", &daemon, || {
        (http_get(&listen, "/readyz")?.0 == 200).then_some(())
    });

    // A running flow's failed rounds are counted.
    c.source.kill9();
    wait_until("a counted discovery failure", &daemon, || {
        let flow = flow_status(&listen, &daemon);
        (flow["errors"]["discovery"].as_u64()? > 0).then_some(())
    });
    stop(daemon);
}

/// A setup that keeps failing (here the target refuses the password) says why in
/// `not_ready`, `last_error` and `kmirror status`, without the password.
#[test]
fn a_flow_that_cannot_start_shows_its_setup_error() {
    use std::os::unix::fs::PermissionsExt;
    const WRONG: &str = "not-the-password";
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "mirror:the-password\n").unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(
        &dir.path().join("target"),
        &["--sasl-users", &users.display().to_string()],
    );
    let config = dir.path().join("topology.yaml");
    std::fs::write(
        &config,
        format!(
            "clusters:\n  east:\n    bootstrap: [\"{}\"]\n  west:\n    bootstrap: [\"{}\"]\n    sasl: {{ mechanism: SCRAM-SHA-512, username: mirror, password: \"${{PW}}\" }}\nflows:\n{}",
            source.addr(),
            target.addr(),
            east_to_west("orders", "")
        ),
    )
    .unwrap();
    let listen = add_telemetry_listener(&config);
    let daemon = DaemonProcess::start_with(&config, &[], &[("PW", WRONG)]);
    assert!(
        daemon
            .log
            .wait_for("authentication as mirror failed", Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    let flow = flow_status(&listen, &daemon);
    assert_eq!(flow["ready"], false, "{flow}");
    let reasons = flow["not_ready"].to_string();
    assert!(
        reasons.contains("authentication as mirror failed"),
        "{reasons}"
    );
    let last_error = flow["last_error"]["error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("authentication as mirror failed"),
        "{flow}"
    );
    let table = status_table(&listen);
    assert!(
        table.contains("NOT READY") && table.contains("authentication as mirror failed"),
        "{table}"
    );
    let readyz = http_get(&listen, "/readyz").unwrap();
    assert!(
        readyz.0 == 503 && readyz.1.contains("authentication as mirror failed"),
        "{readyz:?}"
    );
    assert!(!flow.to_string().contains(WRONG) && !table.contains(WRONG));
    stop(daemon);
}
