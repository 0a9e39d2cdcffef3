//! What keeps a flow from mirroring shows where an operator looks: `/readyz`, `/status`,
//! `/metrics` and `kmirror status`, not only a log line. A source down at start keeps the
//! flow not ready (and `READY=1` unsent, "Flow started" not logged) until discovery reads it, and a
//! source that goes down is retried with backoff and logged once, its partitions' lag
//! unknown rather than stale; a setup that keeps
//! failing (a wrong SASL password) shows its error; topics the flow matches but cannot
//! mirror are listed with their reasons and counted. A target that stops answering holds
//! fetching back, and the lag still shows the whole backlog.

mod support;

use std::time::Duration;

use support::discovery::{east_to_west, started, stop, wait_mirrored, wait_until, Clusters};
use support::topics::{create, produce};
use support::*;

const FLOW: &str = "east-to-west";

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
    wait_until("three failed discovery rounds", &daemon, || {
        let flow = flow_status(&listen, &daemon);
        (flow["errors"]["discovery"].as_u64()? >= 3).then_some(())
    });
    // Said once at WARN, not once per round (then every minute while it fails).
    let warned: Vec<String> = daemon
        .log
        .lines()
        .into_iter()
        .filter(|l| l.contains("Discovery failed"))
        .collect();
    assert!(
        warned.len() == 1 && warned[0].contains("WARN") && warned[0].contains("failed_rounds=1"),
        "{warned:?}"
    );
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
    assert!(
        !daemon.log.contains("Flow started"),
        "\"Flow started\" before the flow read its source:\n{}",
        daemon.log.tail(30)
    );

    // The source comes up: the next round reads it, says so, the flow starts and READY=1
    // goes out.
    c.source.restart();
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "no READY=1 once the source answered:\n{}",
        daemon.log.tail(30)
    );
    // (Its log line may reach us after READY=1: wait for it.)
    assert!(
        daemon.log.wait_for(
            "Discovery reads both clusters again",
            Duration::from_secs(10)
        ),
        "{}",
        daemon.log.tail(30)
    );
    assert!(
        daemon.log.wait_for("Flow started", Duration::from_secs(30)),
        "{}",
        daemon.log.tail(30)
    );
    wait_until("/readyz 200", &daemon, || {
        (http_get(&listen, "/readyz")?.0 == 200).then_some(())
    });

    // A running flow's failed rounds are counted.
    create(&c.source.addr(), "orders", 2, &[]);
    produce(&c.source.addr(), "orders", "o", 5, &[]);
    wait_mirrored(&daemon, &c.source, "orders", &c.target, "east.orders");
    c.source.kill9();
    wait_until("a counted discovery failure", &daemon, || {
        let flow = flow_status(&listen, &daemon);
        (flow["errors"]["discovery"].as_u64()? > 0).then_some(())
    });
    // The lag seen before the source went down is stale (its producers may go on where
    // only the link to it is down): once Fetches have failed for a while, it is unknown.
    wait_until("the partitions' lag unknown", &daemon, || {
        let flow = flow_status(&listen, &daemon);
        (flow["lag_unknown_partitions"].as_u64()? == 2).then_some(())
    });
    // Fetches from the source that is down back off, and are logged at WARN once, not
    // each time: five more discovery rounds (a second apart) see at most two such lines.
    let counted = flow_status(&listen, &daemon)["errors"]["discovery"]
        .as_u64()
        .unwrap_or(0);
    wait_until("five more discovery failures", &daemon, || {
        let flow = flow_status(&listen, &daemon);
        (flow["errors"]["discovery"].as_u64()? >= counted + 5).then_some(())
    });
    let warned = daemon
        .log
        .lines()
        .iter()
        .filter(|l| l.contains(" WARN ") && l.contains("Fetch failed"))
        .count();
    assert!(
        (1..=2).contains(&warned),
        "{warned} WARN lines of failed Fetches:\n{}",
        daemon.log.tail(40)
    );
    stop(daemon);
}

/// A target down at start: the flow's setup (loading its progress) is retried, and each
/// failed attempt counts in `kmirror_errors_total{class="setup"}`; the periodic line says
/// the flow is not mirroring and why, not "Mirroring." with no errors.
#[test]
fn a_target_down_at_start_counts_setup_errors_and_says_it_is_not_mirroring() {
    let mut c = Clusters::start();
    let config = c.topology(&east_to_west("orders", ""));
    let listen = format!("127.0.0.1:{}", free_port());
    add_telemetry(&config, &format!("listen: \"{listen}\", log_interval: 1s"));
    c.target.kill9();
    let daemon = DaemonProcess::start(&config);
    wait_until("counted setup errors", &daemon, || {
        let flow = flow_status(&listen, &daemon);
        (flow["errors"]["setup"].as_u64()? > 0).then_some(())
    });
    let line = daemon
        .log
        .wait_for_line("Not mirroring", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{}", daemon.log.tail(30)));
    assert!(line.contains("cluster west"), "{line}");
    assert!(
        !daemon.log.contains("Mirroring."),
        "{}",
        daemon.log.tail(30)
    );
    let metrics = wait_until("/metrics", &daemon, || http_get(&listen, "/metrics")).1;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("kmirror_errors_total") && l.contains("class=\"setup\"")),
        "{metrics}"
    );
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

/// Topics the flow matches but cannot mirror (`create_topics: false` with the target topic
/// missing, or with fewer partitions) are listed with their reasons and counted, while the
/// flow mirrors its other topics; a topic that becomes mirrorable leaves the list.
#[test]
fn topics_that_cannot_be_mirrored_are_listed_and_counted() {
    let c = Clusters::start();
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "nc-missing", 2, &[]);
    create(&s, "nc-fewer", 3, &[]);
    create(&s, "nc-ok", 1, &[]);
    create(&t, "east.nc-fewer", 1, &[]);
    create(&t, "east.nc-ok", 1, &[]);
    for topic in ["nc-missing", "nc-fewer", "nc-ok"] {
        produce(&s, topic, "v", 5, &[]);
    }
    let config = c.topology(&east_to_west("nc-.*", "    create_topics: false\n"));
    let listen = add_telemetry_listener(&config);
    let daemon = started(&config);
    // Partitions start after their discovery round, which met the other two topics.
    wait_mirrored(&daemon, &c.source, "nc-ok", &c.target, "east.nc-ok");
    let flow = flow_status(&listen, &daemon);
    let unmirrored = flow["unmirrored_topics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let listed: Vec<&str> = unmirrored
        .iter()
        .filter_map(|u| u["topic"].as_str())
        .collect();
    assert_eq!(listed, ["nc-fewer", "nc-missing"], "{flow}");
    let reason = |i: usize| unmirrored[i]["reason"].as_str().unwrap_or_default();
    assert!(reason(0).contains("fewer than the source's 3"), "{flow}");
    assert!(reason(1).contains("does not exist"), "{flow}");
    assert_eq!(flow["errors"]["topic_not_mirrored"], 2, "{flow}");
    assert!(flow["last_error"]["error"].as_str().is_some(), "{flow}");
    let metrics = http_get(&listen, "/metrics").unwrap().1;
    assert_eq!(
        metric_sum(
            &metrics,
            "kmirror_errors_total",
            &[&format!("flow=\"{FLOW}\""), "class=\"topic_not_mirrored\""]
        ),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            &format!("kmirror_unmirrored_topics{{flow=\"{FLOW}\"}}")
        ),
        Some(2.0),
        "{metrics}"
    );
    let table = status_table(&listen);
    for cell in ["nc-missing", "nc-fewer", "does not exist"] {
        assert!(table.contains(cell), "{cell} not in\n{table}");
    }
    // The flow mirrors its other topic, so it stays ready (README, `/readyz`).
    assert_eq!(http_get(&listen, "/readyz").map(|a| a.0), Some(200));

    // The operator creates the missing target topic: it is mirrored, said so, and leaves
    // the list.
    create(&t, "east.nc-missing", 2, &[]);
    wait_mirrored(
        &daemon,
        &c.source,
        "nc-missing",
        &c.target,
        "east.nc-missing",
    );
    assert!(
        daemon
            .log
            .lines()
            .iter()
            .any(|l| l.contains("Topic mirrored now") && l.contains("topic=nc-missing")),
        "{}",
        daemon.log.tail(20)
    );
    let flow = flow_status(&listen, &daemon);
    let listed: Vec<&str> = flow["unmirrored_topics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["topic"].as_str())
        .collect();
    assert_eq!(listed, ["nc-fewer"], "{flow}");
    stop(daemon);
}

/// While the target does not answer, the flow's memory fills and its partitions are no
/// longer fetched; their lag comes from the source leaders then (ListOffsets every 5 s), so
/// `/metrics` shows the whole backlog, not what it was when fetching stopped.
#[test]
fn lag_shows_the_whole_backlog_while_the_target_does_not_answer() {
    let c = Clusters::start();
    let s = c.source.addr();
    create(&s, "backlog", 1, &[]);
    let config = c.topology(&east_to_west(
        "backlog",
        "    limits: { max_in_flight_bytes: 1MiB }\n",
    ));
    let listen = add_telemetry_listener(&config);
    let daemon = started(&config);
    c.target.pause();
    let acked = c.dir.path().join("acked.json");
    let sent = support::records::Produce {
        records: 4_000,
        value_bytes: 1_024,
        ..support::records::Produce::new(&s, "backlog", 1, &acked)
    }
    .run();
    // 4 MB behind a 1 MiB budget: most of it is never fetched while the target is paused.
    wait_until("the lag to show every record", &daemon, || {
        let (_, metrics) = http_get(&listen, "/metrics")?;
        let lag = metric_sum(&metrics, "kmirror_partition_lag_records", &[]);
        (lag >= sent as f64).then_some(())
    });
    c.target.resume();
    wait_until("the lag to clear", &daemon, || {
        let (_, metrics) = http_get(&listen, "/metrics")?;
        (metric_sum(&metrics, "kmirror_partition_lag_records", &[]) == 0.0).then_some(())
    });
    stop(daemon);
}

/// A topic that grows past its target topic (`create_topics: false`) keeps mirroring the
/// partitions it had; the new one is listed in `/status` as not started, with the reason,
/// and the flow is not ready: its records are stuck, and it said nothing of them before.
#[test]
fn a_partition_a_narrow_target_topic_cannot_take_is_listed_and_not_ready() {
    let c = Clusters::start();
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "nc-grow", 1, &[]);
    create(&t, "east.nc-grow", 1, &[]);
    produce(&s, "nc-grow", "v", 5, &[]);
    let config = c.topology(&east_to_west("nc-grow", "    create_topics: false\n"));
    let listen = add_telemetry_listener(&config);
    let daemon = started(&config);
    wait_mirrored(&daemon, &c.source, "nc-grow", &c.target, "east.nc-grow");
    support::topics::admin(&s, &["add-partitions", "nc-grow", "2"]);
    produce(&s, "nc-grow", "w", 5, &[1]);
    let grown = wait_until("partition nc-grow-1 in /status", &daemon, || {
        let flow = flow_status(&listen, &daemon);
        flow["partitions"]
            .as_array()?
            .iter()
            .find(|p| p["topic"] == "nc-grow" && p["partition"] == 1)
            .cloned()
    });
    assert!(
        grown["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("fewer than the source's 2")),
        "{grown}"
    );
    let (code, body) = http_get(&listen, "/readyz").unwrap();
    assert!(
        code == 503 && body.contains("nc-grow-1: not started"),
        "{code} {body}"
    );
    // Its first partition goes on.
    produce(&s, "nc-grow", "x", 5, &[0]);
    wait_until("nc-grow-0 mirrored on", &daemon, || {
        let flow = flow_status(&listen, &daemon);
        let p0 = flow["partitions"]
            .as_array()?
            .iter()
            .find(|p| p["topic"] == "nc-grow" && p["partition"] == 0)?
            .clone();
        (p0["position"] == 10).then_some(())
    });
    stop(daemon);
}
