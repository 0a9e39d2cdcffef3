//! The failover drill (issue 10): a producer and a consumer group on the source, the daemon
//! mirroring with group sync; the source broker dies; `kmirror failover` moves the group to
//! the target from the offsets the group sync kept; the group's consumer goes on there.
//! What it read before and after, together, is exactly what was produced: nothing
//! skipped, nothing read twice. Also: a dry run commits nothing, and a target group with
//! an active member is refused.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::groups::*;
use support::records::Produce;
use support::*;

const FLOW: &str = GROUP_SYNC_FLOW;

/// `kmirror failover --dry-run` of group `app` of the flow: its output.
fn dry_run(config: &str) -> String {
    kmirror_ok(&[
        "failover",
        config,
        "--flow",
        FLOW,
        "--group",
        "app",
        "--dry-run",
    ])
}

/// `kmirror ARGS...`: whether it succeeded, and its stderr.
fn kmirror_run(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(daemon_binary())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Produces `records` per partition of [`TOPIC`] (created first) to `bootstrap`.
fn produce(bootstrap: &str, records: u32, acked: &std::path::Path) -> u64 {
    Produce {
        records,
        create: true,
        linger_ms: 20,
        ..Produce::new(bootstrap, TOPIC, PARTITIONS, acked)
    }
    .run()
}

#[test]
fn a_group_fails_over_to_the_target_while_the_source_is_down() {
    let (dir, [mut source, target]) = brokers();
    let produce = |bootstrap: &str, records: u32, name: &str| {
        produce(bootstrap, records, &dir.path().join(name))
    };
    // Target offsets differ from source offsets: the target topic has records of its own.
    assert_eq!(produce(&target.addr(), 40, "local"), 80);
    assert_eq!(produce(&source.addr(), 250, "acked"), 500);
    let config = group_sync_topology(dir.path(), &source, &target, "app");
    let config = config.to_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let daemon = DaemonProcess::start(std::path::Path::new(&config));

    // The application reads part of the topic on the source and commits.
    let before = consume_some(&source.addr(), TOPIC, "app", 333);
    assert_eq!(before.len(), 333);
    let everything = read_from(&source.addr(), TOPIC, "0:0,1:0");
    assert_eq!(everything.len(), 500);
    support::cluster::wait_for_records(&rt, &target.addr(), TOPIC, 580, &daemon);
    // The application commits its positions again with metadata (Kafka Streams keeps its
    // stream time there).
    let on_source = committed(&source.addr(), TOPIC, "app");
    let positions: Vec<String> = on_source.iter().map(|(p, o)| format!("{p}:{o}")).collect();
    let metadata = "streams-partition-time=1700000000000";
    commit_with_metadata(&source.addr(), TOPIC, "app", &positions.join(","), metadata);
    let with_metadata: std::collections::BTreeMap<String, String> = on_source
        .keys()
        .map(|p| (p.clone(), metadata.to_string()))
        .collect();
    // The group sync has read the group's offsets and metadata (and committed them on the
    // target).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while committed(&target.addr(), TOPIC, "app").len() < on_source.len()
        || committed_metadata(&target.addr(), TOPIC, "app") != with_metadata
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            daemon.log.tail(30)
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // The source datacenter fails.
    source.kill9();
    let dry = dry_run(&config);
    assert!(
        dry.contains("Dry run") && dry.contains("did not answer"),
        "{dry}"
    );
    // A group outside the flow's groups: said so, not blamed on a setting that is on.
    let (ok, err) = kmirror_run(&["failover", &config, "--flow", FLOW, "--group", "other"]);
    assert!(!ok && err.contains("not one of the flow's groups"), "{err}");
    let out = kmirror_ok(&["failover", &config, "--flow", FLOW, "--group", "app"]);
    assert!(out.contains("Committed"), "{out}");
    // The metadata the group sync kept is committed with the offsets.
    assert_eq!(
        committed_metadata(&target.addr(), TOPIC, "app"),
        with_metadata,
        "{out}"
    );
    let after = consume(&target.addr(), TOPIC, "app");
    for p in 0..PARTITIONS as i64 {
        let mut read = partition(&before, p);
        read.extend(partition(&after, p));
        assert_eq!(
            read,
            partition(&everything, p),
            "partition {p}: before + after the failover is what was produced, once:\n{out}"
        );
    }
    // The application goes on reading on the target. The same failover run again would
    // move the group back to the source's offsets: refused, unless --allow-rewind.
    assert_eq!(consume_some(&target.addr(), TOPIC, "app", 10).len(), 10);
    let (ok, err) = kmirror_run(&["failover", &config, "--flow", FLOW, "--group", "app"]);
    assert!(
        !ok && err.contains("ahead") && err.contains("--allow-rewind"),
        "{err}"
    );
    let dry = dry_run(&config);
    assert!(dry.contains("refuses to move it back"), "{dry}");
    let args = ["--flow", FLOW, "--group", "app", "--allow-rewind"];
    let out = kmirror_ok(&[&["failover", &config][..], &args].concat());
    assert!(out.contains("moving it back"), "{out}");

    // A target group with an active member is never moved.
    let holder = std::thread::spawn({
        let bootstrap = target.addr();
        move || groups("hold", &bootstrap, TOPIC, Some("app"), &["--seconds", "12"])
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Until the holder has joined, a failover still succeeds (and commits the same).
    let refused = loop {
        let (ok, err) = kmirror_run(&["failover", &config, "--flow", FLOW, "--group", "app"]);
        if !ok && err.contains("active member") {
            break err;
        }
        assert!(std::time::Instant::now() < deadline, "{err}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(refused.contains("stop its consumers"), "{refused}");
    let held: Value = json(&holder.join().unwrap(), "HELD ");
    assert!(held.as_bool().unwrap_or(false));
    // The group sync has failed every round since the source went down: said once at
    // WARN (and every 20th round), not every second.
    let failing = "Group offset sync failed; retrying next round";
    assert!(daemon.log.wait_for(failing, Duration::from_secs(30)));
    // (Not a count of lines: rounds fail fast, a second apart, and the drill's clients
    // take long on a busy machine.)
    let warned: Vec<String> = daemon
        .log
        .lines()
        .into_iter()
        .filter(|l| l.contains(failing))
        .collect();
    for line in &warned {
        let round: u64 = line
            .split("failed_rounds=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no failed_rounds in {line}"));
        assert_eq!(
            round % 20,
            1,
            "a failed round said at WARN out of turn:\n{warned:?}"
        );
    }
}

/// The failback drill, MirrorMaker 2's active/passive shape: `orders` on each cluster is
/// mirrored to the other as `{source}.orders`. The group fails over to west (reading
/// `east.orders` there, and west's own `orders` written meanwhile), then fails back to the
/// restarted east: `east.orders` translates back through east-to-west's map to east's
/// `orders`, west's `orders` forward to east's `west.orders`. Every record is read once.
/// With the source down, a group that had read past what was mirrored (the mirror held
/// back by a rate limit) cannot be translated there, and waiting cannot help: refused at
/// once, saying how many records never reached the target (not after `--timeout`); with
/// `--to-mirrored-end` the group starts where the mirror ends.
#[test]
fn a_group_ahead_of_the_mirror_fails_over_to_its_end_only_when_asked() {
    let (dir, [mut source, target]) = brokers();
    assert_eq!(produce(&source.addr(), 250, &dir.path().join("acked")), 500);
    let flow = |limits: &str| {
        format!("  - name: {FLOW}\n    source: east\n    target: west\n    rename: \"{{topic}}\"\n    topics: {{ include: [\"{TOPIC}\"] }}\n{limits}    groups: {{ include: [\"app\"], sync_offsets: true, interval: 1s }}\n")
    };
    let clusters = [("east", source.addr()), ("west", target.addr())];
    let clusters = clusters.map(|(n, a)| (n, a.to_string()));
    let clusters: Vec<(&str, &str)> = clusters.iter().map(|(n, a)| (*n, a.as_str())).collect();
    let config = write_topology(dir.path(), &clusters, &flow(""));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut daemon = DaemonProcess::start(&config);
    support::cluster::wait_for_records(&rt, &target.addr(), TOPIC, 500, &daemon);
    // The mirror falls behind (one record a second), while the application reads on.
    daemon.terminate_ok();
    write_topology(
        dir.path(),
        &clusters,
        &flow("    limits: { records_per_sec: 1 }\n"),
    );
    daemon.restart();
    Produce {
        records: 50,
        linger_ms: 20,
        ..Produce::new(&source.addr(), TOPIC, PARTITIONS, &dir.path().join("more"))
    }
    .run();
    assert_eq!(consume_some(&source.addr(), TOPIC, "app", 600).len(), 600);
    assert!(
        daemon
            .log
            .wait_for("is not mirrored yet", Duration::from_secs(60)),
        "the group sync did not keep the group's offsets:\n{}",
        daemon.log.tail(30)
    );
    source.kill9();
    let config = config.to_str().unwrap().to_string();
    let args = ["--flow", FLOW, "--group", "app", "--timeout", "120s"];
    let (ok, err) = kmirror_run(&[&["failover", &config][..], &args].concat());
    assert!(
        !ok && err.contains("never reached the target") && err.contains("--to-mirrored-end"),
        "{err}"
    );
    let dry = dry_run(&config);
    assert!(dry.contains("refuses unless --to-mirrored-end"), "{dry}");
    let out = kmirror_ok(&[&["failover", &config][..], &args, &["--to-mirrored-end"]].concat());
    assert!(out.contains("Committed"), "{out}");
    // The group starts after the last record mirrored: the target's end, as nothing more
    // comes while the source is down.
    let end = rt.block_on(support::cluster::high_watermarks(&target.addr(), TOPIC));
    let committed: i64 = committed(&target.addr(), TOPIC, "app").values().sum();
    assert!(end < 600, "the rate limit let everything through: {end}");
    assert_eq!(committed, end, "{out}");
}

#[test]
fn a_group_fails_back_to_its_home_cluster() {
    let (dir, [mut east, west]) = brokers();
    let produce = |bootstrap: &str, records: u32, name: &str| {
        produce(bootstrap, records, &dir.path().join(name))
    };
    assert_eq!(produce(&east.addr(), 200, "east"), 400);
    let flow = |name: &str, source: &str, target: &str, groups: &str| {
        format!("  - name: {name}\n    source: {source}\n    target: {target}\n    discovery_interval: 1s\n    topics: {{ include: [\"{TOPIC}\"] }}\n{groups}")
    };
    let config = write_topology(
        dir.path(),
        &[("east", &east.addr()), ("west", &west.addr())],
        &format!(
            "{}{}",
            flow(
                FLOW,
                "east",
                "west",
                "    groups: { include: [\"app\"], sync_offsets: true, interval: 1s }\n"
            ),
            flow("west-to-east", "west", "east", "")
        ),
    );
    let listen = add_telemetry_listener(&config);
    let config = config.to_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let daemon = DaemonProcess::start(std::path::Path::new(&config));
    let east_all = read_from(&east.addr(), TOPIC, "0:0,1:0");
    let before = consume_some(&east.addr(), TOPIC, "app", 150);
    support::cluster::wait_for_records(&rt, &west.addr(), "east.orders", 400, &daemon);
    wait_for_committed(&west.addr(), "east.orders", "app", PARTITIONS, &daemon);

    // East fails; the group moves to west and reads the rest of east's records there, and
    // part of what west's producers write meanwhile.
    east.kill9();
    kmirror_ok(&["failover", &config, "--flow", FLOW, "--group", "app"]);
    let on_west = consume_some(&west.addr(), "east.orders", "app", usize::MAX);
    for p in 0..PARTITIONS as i64 {
        let mut read = partition(&before, p);
        read.extend(partition(&on_west, p));
        assert_eq!(
            read,
            partition(&east_all, p),
            "partition {p}: east's records, once, across the failover"
        );
    }
    assert_eq!(produce(&west.addr(), 100, "west"), 200);
    let west_all = read_from(&west.addr(), TOPIC, "0:0,1:0");
    let west_before = consume_some(&west.addr(), TOPIC, "app", 120);
    assert_eq!(west_before.len(), 120);

    // East is back; west's records reach it as west.orders. The group fails back.
    east.restart();
    support::cluster::wait_for_records(&rt, &east.addr(), "west.orders", 200, &daemon);
    // The running daemon translates the same over HTTP, back through east-to-west's map.
    let (status, body) = http_get(&listen, "/offsets?flow=west-to-east&group=app").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"topic\":\"east.orders\"") && body.contains("\"target_topic\":\"orders\""),
        "{body}"
    );
    let out = kmirror_ok(&[
        "failover",
        &config,
        "--flow",
        "west-to-east",
        "--group",
        "app",
    ]);
    assert!(
        out.contains("east.orders") && out.contains("west.orders"),
        "{out}"
    );
    let east_rest = consume(&east.addr(), TOPIC, "app");
    assert!(
        east_rest.is_empty(),
        "nothing of east's own records is read twice: {east_rest:?}\n{out}"
    );
    let west_rest = consume(&east.addr(), "west.orders", "app");
    for p in 0..PARTITIONS as i64 {
        let mut read: Vec<Value> = partition(&west_before, p);
        read.extend(partition(&west_rest, p));
        assert_eq!(
            read,
            partition(&west_all, p),
            "partition {p}: west's records, once, across the failback\n{out}"
        );
    }
}

/// A source that is up but still loading its groups after a restart (Kafka answers
/// COORDINATOR_LOAD_IN_PROGRESS meanwhile) is asked again: the failover reads the group's
/// offsets from the source, not the older ones the group sync stored.
#[test]
fn a_source_loading_its_groups_is_asked_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut source = BrokerProcess::start(
        &dir.path().join("source"),
        &["--emulate-coordinator-load-ms", "6000"],
    );
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    assert_eq!(produce(&source.addr(), 20, &dir.path().join("acked")), 40);
    // A client's own commit is refused while the groups load (librdkafka leaves the retry
    // to the application): wait for them first.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = support::cluster::check_client(&source.addr());
    rt.block_on(client.refresh_metadata()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rt.block_on(client.list_groups()).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the source's groups never loaded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    commit(&source.addr(), TOPIC, "app", "0:10,1:10");
    let config = group_sync_topology(dir.path(), &source, &target, "app");
    let config = config.to_str().unwrap().to_string();
    let mut daemon = DaemonProcess::start(std::path::Path::new(&config));
    // The group sync has read and stored the group's offsets.
    wait_for_committed(&target.addr(), TOPIC, "app", PARTITIONS, &daemon);
    daemon.terminate_ok();
    // The group moves on; only the source knows it.
    commit(&source.addr(), TOPIC, "app", "0:15,1:17");
    source.terminate_ok();
    source.restart();
    let dry = dry_run(&config);
    assert!(
        dry.contains("Dry run") && !dry.contains("did not answer"),
        "{dry}"
    );
    let source_offsets: Vec<&str> = dry
        .lines()
        .filter(|l| l.starts_with(TOPIC))
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(source_offsets, ["15", "17"], "{dry}");
}

/// A dry run for a group ahead of the mirror (here with the daemon stopped, the group
/// committed past what it mirrored) says at once what a failover would wait for, and
/// commits nothing, instead of waiting out `--timeout` itself.
#[test]
fn a_dry_run_says_what_a_failover_would_wait_for_without_waiting() {
    let (dir, [source, target]) = brokers();
    assert_eq!(produce(&source.addr(), 50, &dir.path().join("first")), 100);
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &format!("  - name: {FLOW}\n    source: east\n    target: west\n    rename: \"{{topic}}\"\n    topics: {{ include: [\"{TOPIC}\"] }}\n"),
    );
    let config = config.to_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut daemon = DaemonProcess::start(std::path::Path::new(&config));
    support::cluster::wait_for_records(&rt, &target.addr(), TOPIC, 100, &daemon);
    daemon.terminate_ok();
    assert_eq!(produce(&source.addr(), 50, &dir.path().join("second")), 100);
    commit(&source.addr(), TOPIC, "app", "0:90,1:90");
    let dry = dry_run(&config);
    assert!(
        dry.contains("Not mirrored yet") && dry.contains("mirrored below 50, group at 90"),
        "{dry}"
    );
    assert!(committed(&target.addr(), TOPIC, "app").is_empty());
}

/// `kmirror offsets` and `failover` translate only through progress written for the flow's
/// own source cluster, as `kmirror run` starts only on it (a flow pointed at another
/// cluster, e.g. a rebuilt source, would otherwise commit another cluster's positions as
/// exact; `plan` says so too), and into the target topic the offset map was written to, not
/// the one a changed `rename` names.
#[test]
fn offsets_translate_only_through_their_own_source_and_target_topic() {
    let (dir, [source, target]) = brokers();
    let other = BrokerProcess::start(&dir.path().join("other"), &[]);
    assert_eq!(produce(&source.addr(), 50, &dir.path().join("acked")), 100);
    let topology = |name: &str, east: &str, rename: &str| {
        let sub = dir.path().join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let flows = format!("  - name: {FLOW}\n    source: east\n    target: west\n    rename: \"{rename}\"\n    topics: {{ include: [\"{TOPIC}\"] }}\n");
        let path = write_topology(&sub, &[("east", east), ("west", &target.addr())], &flows);
        path.to_str().unwrap().to_string()
    };
    // `kmirror offsets` of source offset 49 of partition 0 (its last record) as JSON.
    let offsets_args = |config: &str| -> Vec<String> {
        let command = ["offsets", config, "--flow", FLOW];
        let partition = [
            "--topic",
            TOPIC,
            "--partition",
            "0",
            "--offset",
            "49",
            "--json",
        ];
        [command.as_slice(), &partition]
            .concat()
            .into_iter()
            .map(String::from)
            .collect()
    };
    let offsets = |config: &str| {
        let args = offsets_args(config);
        kmirror_run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let translated = |config: &str| -> Value {
        let args = offsets_args(config);
        let out = kmirror_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        serde_json::from_str::<Value>(&out).unwrap()["partitions"][0].clone()
    };
    let mirrored = topology("mirrored", &source.addr(), "mirrored.{topic}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let daemon = DaemonProcess::start(std::path::Path::new(&mirrored));
    support::cluster::wait_for_records(&rt, &target.addr(), "mirrored.orders", 100, &daemon);
    let v = support::discovery::wait_until("the last record's offset stored", &daemon, || {
        let v = translated(&mirrored);
        (v["state"] == "exact").then_some(v)
    });
    assert_eq!(v["target_topic"], "mirrored.orders", "{v}");
    drop(daemon);

    // The rename changed since: the map still translates into the topic it was written to.
    let renamed = topology("renamed", &source.addr(), "v2.{topic}");
    let v = translated(&renamed);
    assert_eq!(v["target_topic"], "mirrored.orders", "{v}");
    assert_eq!(v["state"], "exact", "{v}");

    // The flow's source is another cluster now: nothing is translated, nothing committed.
    let moved = topology("moved", &other.addr(), "mirrored.{topic}");
    let (ok, err) = offsets(&moved);
    assert!(
        !ok && err.contains("written for source cluster id"),
        "{err}"
    );
    let plan = std::process::Command::new(daemon_binary())
        .args(["plan", &moved])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&plan.stdout);
    assert!(
        !plan.status.success() && said.contains("REFUSED: the progress of flow"),
        "{said}"
    );
    let (ok, err) = kmirror_run(&["failover", &moved, "--flow", FLOW, "--group", "app"]);
    assert!(
        !ok && err.contains("written for source cluster id"),
        "{err}"
    );
    // The stored progress's own source still translates.
    let (ok, err) = offsets(&mirrored);
    assert!(ok, "{err}");
}
