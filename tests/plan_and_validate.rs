//! What `kmirror plan` and `kmirror validate` say about a topology: the plan lists per flow
//! what would be done and changes nothing on either cluster; validation reports every error
//! at once with its position, and refuses bad SASL and TLS settings as `kmirror run` does.
//! Output to a reader that went away (`| head -1`) ends the command quietly.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use support::discovery::Clusters;
use support::topics::{contents, create, produce, topics, total};

/// Runs `kmirror plan CONFIG`.
fn plan(config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kmirror"))
        .arg("plan")
        .arg(config)
        .output()
        .unwrap()
}

/// `kmirror plan CONFIG`'s output, which must succeed.
fn plan_ok(config: &std::path::Path) -> String {
    let out = plan(config);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `kmirror plan` lists, per flow, the matching source topics, their target names and what
/// would be done, and changes nothing on either cluster.
#[test]
fn plan_prints_what_would_be_done_and_changes_nothing() {
    let c = Clusters::start();
    let (s, t) = (c.source.addr(), c.target.addr());
    create(&s, "orders.a", 3, &[]);
    create(&s, "orders.b", 1, &["retention.ms=123456789"]);
    create(&s, "orders.c", 4, &[]);
    create(&s, "misc", 1, &[]);
    produce(&s, "orders.a", "r", 2, &[]);
    create(&t, "east.orders.c", 2, &[]);
    let config = c.topology(concat!(
        "  - name: east-to-west\n",
        "    source: east\n",
        "    target: west\n",
        "    topics: { include: [\"orders\\\\..*\"] }\n",
        "    discovery_interval: 1s\n",
    ));
    let before = topics(&t);

    let out = plan(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "flow east-to-west (east -> west)",
        "orders.a -> east.orders.a: create with 3 partitions",
        "orders.b -> east.orders.b: create with 1 partitions; set retention.ms=123456789",
        "orders.c -> east.orders.c: add partitions 2 -> 4",
        // The flow's own topic, which `run` creates too.
        "__kmirror_progress (on west): create (kmirror's own)",
    ] {
        assert!(
            stdout.lines().any(|l| l.trim() == line),
            "missing {line:?} in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("misc"), "{stdout}");

    let after = topics(&t);
    assert_eq!(before, after, "plan changed the target's topics");
    assert!(!after
        .keys()
        .any(|k| k == "east.orders.a" || k == "east.orders.b"));
    assert_eq!(after["east.orders.c"], 2);
    assert!(!after.contains_key("__kmirror_progress"), "{after:?}");
    assert_eq!(
        total(&contents(&t, "east.orders.c").unwrap()),
        0,
        "plan wrote to the target"
    );
}

/// The `source -> target` pairs a plan lists, by source topic.
fn planned(stdout: &str) -> BTreeMap<String, (String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (pair, action) = l.trim().split_once(": ")?;
            let (source, target) = pair.split_once(" -> ")?;
            Some((source.into(), (target.into(), action.into())))
        })
        .collect()
}

/// `kmirror plan` and `kmirror run` side by side on one topology: the daemon creates and
/// mirrors exactly the topics the plan listed, under the names it listed (includes,
/// excludes, a rename with a suffix, a source that holds a `__kmirror_progress` of its own,
/// a target topic with too few partitions), and a plan made afterwards lists the same
/// topics, each existing, plus one created since.
#[test]
fn plan_lists_exactly_what_run_mirrors() {
    let c = Clusters::start();
    let (s, t) = (c.source.addr(), c.target.addr());
    // The source is the target of another flow: it holds that flow's progress topic.
    create(&s, "__kmirror_progress", 1, &["cleanup.policy=compact"]);
    for (topic, partitions) in [
        ("orders.a", 2),
        ("orders.b.internal", 1),
        ("payments.x", 3),
        ("misc", 1),
        ("_private", 1),
    ] {
        create(&s, topic, partitions, &[]);
        produce(&s, topic, "r", 1, &[]);
    }
    create(&t, "east.payments.x.copy", 1, &[]);
    let config = c.topology(concat!(
        "  - name: east-to-west\n",
        "    source: east\n",
        "    target: west\n",
        "    topics: { include: [\".*\"], exclude: [\".*\\\\.internal\", \"misc\"] }\n",
        "    rename: \"{source}.{topic}.copy\"\n",
        "    discovery_interval: 1s\n",
    ));

    let stdout = plan_ok(&config);
    let before = planned(&stdout);
    let pairs = |p: &BTreeMap<String, (String, String)>| -> BTreeSet<(String, String)> {
        p.iter().map(|(s, (t, _))| (s.clone(), t.clone())).collect()
    };
    let expected: BTreeSet<(String, String)> = [
        ("_private", "east._private.copy"),
        ("orders.a", "east.orders.a.copy"),
        ("payments.x", "east.payments.x.copy"),
    ]
    .iter()
    .map(|(s, t)| (s.to_string(), t.to_string()))
    .collect();
    assert_eq!(pairs(&before), expected, "{stdout}");
    assert_eq!(before["payments.x"].1, "add partitions 1 -> 3", "{stdout}");

    let daemon = support::discovery::started(&config);
    // Every planned topic mirrored, with all its partitions; a topic created now is
    // found by a later discovery round, which saw the others again.
    create(&s, "orders.late", 1, &[]);
    produce(&s, "orders.late", "r", 1, &[]);
    let mut all = expected.clone();
    all.insert(("orders.late".into(), "east.orders.late.copy".into()));
    support::discovery::wait_until("every planned topic mirrored", &daemon, || {
        all.iter()
            .all(|(source, target)| {
                let (Some(s), Some(t)) = (contents(&s, source), contents(&t, target)) else {
                    return false;
                };
                s == t
            })
            .then_some(())
    });
    let made: BTreeSet<String> = topics(&t)
        .into_keys()
        .filter(|k| k != "__kmirror_progress" && !k.starts_with("__consumer"))
        .collect();
    let named: BTreeSet<String> = all.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(
        made, named,
        "the daemon created topics the plan did not list"
    );

    let stdout = plan_ok(&config);
    let after = planned(&stdout);
    assert_eq!(pairs(&after), all, "{stdout}");
    assert!(
        after.values().all(|(_, action)| action == "exists"),
        "{stdout}"
    );
    support::discovery::stop(daemon);
}

/// One cluster named twice (`127.0.0.1:PORT` and `localhost:PORT`): the flow's own copies
/// are not selected again, which would copy `a.loop` to `a.a.loop` and on without end, and
/// `plan` says so.
#[test]
fn a_cluster_named_twice_does_not_mirror_its_own_copies() {
    let c = Clusters::start();
    let s = c.source.addr();
    create(&s, "loop", 1, &[]);
    create(&s, "east.loop", 1, &[]);
    let port = s.rsplit_once(':').unwrap().1;
    let config = support::write_topology(
        c.dir.path(),
        &[("east", &s), ("again", &format!("localhost:{port}"))],
        "  - name: self\n    source: east\n    target: again\n    topics: { include: [\".*\"] }\n",
    );
    let stdout = plan_ok(&config);
    assert!(
        stdout
            .lines()
            .any(|l| l.trim().starts_with("loop -> east.loop")),
        "{stdout}"
    );
    assert!(!stdout.contains("east.east.loop"), "{stdout}");
    // `plan` says why, as `run` does at WARN.
    assert!(
        stdout.contains("source and target are one cluster"),
        "{stdout}"
    );
}

/// `kmirror validate` reports every error of a topology at once, each with file, line and
/// column, and exits 1.
#[test]
fn validate_reports_every_error_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        concat!(
            "clusters:\n",                                                 // 1
            "  east:\n",                                                   // 2
            "    bootstrap: [\"127.0.0.1:9092\"]\n",                       // 3
            "    colour: blue\n",                                          // 4 unknown key
            "  west:\n",                                                   // 5
            "    bootstrap: [\"127.0.0.1:9093\"]\n",                       // 6
            "flows:\n",                                                    // 7
            "  - name: east-to-nowhere\n",                                 // 8
            "    source: east\n",                                          // 9
            "    target: nowhere\n",                                       // 10 unknown cluster
            "    topics:\n",                                               // 11
            "      include: [\"orders(\"]\n",                              // 12 bad regex
            "  - name: east-to-west\n",                                    // 13
            "    source: east\n",                                          // 14
            "    target: west\n",                                          // 15
            "    topics: { include: [\"ok.*\"], exclude: [\"[z-a]\"] }\n", // 16 bad regex
            "    discovery_interval: 1s\n",                                // 17
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kmirror"))
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    let file = path.display().to_string();
    for (position, needles) in [
        ("4:5", &["colour"][..]),
        ("10:13", &["nowhere", "unknown cluster"][..]),
        ("12:17", &["orders(", "regex"][..]),
        ("16:44", &["[z-a]", "regex"][..]),
    ] {
        let prefix = format!("{file}:{position}:");
        let line = text.lines().find(|l| l.starts_with(&prefix));
        let line = line.unwrap_or_else(|| panic!("no error at {prefix} in:\n{text}"));
        for needle in needles {
            assert!(
                line.contains(needle),
                "{line:?} does not mention {needle:?}"
            );
        }
    }
    let errors: BTreeSet<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with(&format!("{file}:"))
                && l[file.len() + 1..].starts_with(|c: char| c.is_ascii_digit())
        })
        .collect();
    assert_eq!(errors.len(), 4, "{text}");
}

/// A SASL block with an empty user and a TLS CA file that cannot be read are refused by
/// both `kmirror validate` and `kmirror run`, with the setting's position, and the password
/// is not printed. The daemon never connects in plaintext or unauthenticated instead.
#[test]
fn bad_sasl_and_unreadable_tls_files_are_refused_by_validate_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secure.yaml");
    std::fs::write(
        &path,
        concat!(
            "clusters:\n",                                                                   // 1
            "  east:\n",                                                                     // 2
            "    bootstrap: [\"127.0.0.1:9092\"]\n",                                         // 3
            "    tls: { ca: /etc/kmirror/ca.pem }\n",                                        // 4
            "  west:\n",                                                                     // 5
            "    bootstrap: [\"127.0.0.1:9093\"]\n",                                         // 6
            "    sasl: { mechanism: SCRAM-SHA-512, username: \"\", password: \"${PW}\" }\n", // 7
            "flows:\n",                                                                      // 8
            "  - { name: f, source: east, target: west, topics: { include: [x] } }\n",
        ),
    )
    .unwrap();
    let file = path.display().to_string();
    for command in ["validate", "run"] {
        let out = Command::new(env!("CARGO_BIN_EXE_kmirror"))
            .arg(command)
            .arg(&path)
            .env("PW", "hunter2")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{command}: {text}");
        for (position, needle) in [
            (
                "4:16: clusters.east.tls.ca:",
                "cannot read /etc/kmirror/ca.pem",
            ),
            (
                "7:49: clusters.west.sasl.username:",
                "sasl username must not be empty",
            ),
        ] {
            let prefix = format!("{file}:{position}");
            let line = text.lines().find(|l| l.starts_with(&prefix));
            let line =
                line.unwrap_or_else(|| panic!("{command}: no error at {prefix} in:\n{text}"));
            assert!(line.contains(needle), "{command}: {line:?}");
        }
        assert!(
            !text.contains("hunter2"),
            "{command} printed the password: {text}"
        );
        assert!(!text.contains("Flow started"), "{command} ran: {text}");
    }
}

/// A mistyped log level is refused (exit 2, naming it), from the flag and from
/// `KMIRROR_LOG`: `tracing` would take it for a target and log nothing, errors included.
/// Levels and TARGET=LEVEL directives are taken.
#[test]
fn a_mistyped_log_level_is_refused() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/quickstart.yaml");
    let validate = |flag: Option<&str>, env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmirror"));
        if let Some(level) = flag {
            cmd.args(["--log-level", level]);
        }
        match env {
            Some(level) => cmd.env("KMIRROR_LOG", level),
            None => cmd.env_remove("KMIRROR_LOG"),
        };
        let out = cmd.args(["validate", config]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (flag, env, bad) in [
        (Some("warnn"), None, "\"warnn\" is not a level"),
        (None, Some("eror"), "\"eror\" is not a level"),
        (Some("kmirror=debugg"), None, "\"debugg\" is not a level"),
    ] {
        let (code, stderr) = validate(flag, env);
        assert_eq!(code, Some(2), "{flag:?} {env:?}: {stderr}");
        assert!(stderr.contains(bad), "{flag:?} {env:?}: {stderr}");
    }
    for level in ["warn", "kmirror=debug,warn", "kmirror::mirror=trace,info"] {
        let (code, stderr) = validate(Some(level), None);
        assert_eq!(code, Some(0), "{level}: {stderr}");
    }
}

/// `kmirror validate ... | head -0`: the reader is gone before anything is written. The
/// command ends as a process killed by SIGPIPE would (141), without a panic.
#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/quickstart.yaml");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_kmirror"))
        .args(["validate", config])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
