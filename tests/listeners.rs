//! Kafka-style listeners (issue 11): `kmirror-broker --listeners PLAINTEXT://..,SASL_SSL://..`
//! serves each security protocol on its own port, and Metadata answers every client with the
//! addresses of the listener it came in on (`--advertised-listeners` to override them), on
//! every node. Security flags that no listener uses, and listeners whose security no flag
//! provides, are refused at start. Proven with kcat (librdkafka).

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

const PASSWORD: &str = "listener-test-pw";

/// Broker flags for TLS and SASL: `certs`' broker certificate and a users file.
fn security_args(dir: &Path, certs: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let users = dir.join("users");
    std::fs::write(&users, format!("alice:{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    [
        "--tls-cert",
        &certs.join("broker.pem").display().to_string(),
        "--tls-key",
        &certs.join("broker.key").display().to_string(),
        "--sasl-users",
        &users.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// kcat on `addr`, over SASL_SSL with SCRAM-SHA-512 as alice when `secure`.
fn kcat_on(addr: &str, certs: &Path, secure: bool) -> Command {
    let mut cmd = kcat();
    cmd.args(["-b", addr]);
    if secure {
        cmd.args(["-X", "security.protocol=SASL_SSL"])
            .args([
                "-X",
                &format!("ssl.ca.location={}", certs.join("ca.pem").display()),
            ])
            .args(["-X", "sasl.mechanisms=SCRAM-SHA-512"])
            .args(["-X", "sasl.username=alice"])
            .args(["-X", &format!("sasl.password={PASSWORD}")]);
    }
    cmd
}

/// The `host:port` of every broker kcat's Metadata (`-L -J`) lists.
fn listed_brokers(mut cmd: Command) -> Vec<String> {
    let out = cmd.args(["-L", "-J"]).output().unwrap();
    assert!(
        out.status.success(),
        "kcat -L: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut brokers: Vec<String> = v["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect();
    brokers.sort();
    brokers
}

/// A two-node broker in `dir` with a PLAINTEXT and a SASL_SSL listener, and the directory
/// of its certificates.
fn two_nodes(dir: &Path, extra_args: &[&str]) -> (BrokerProcess, std::path::PathBuf) {
    let certs = certificates(&dir.join("certs"));
    let args = security_args(dir, &certs);
    let mut flags: Vec<&str> = args.iter().map(String::as_str).collect();
    flags.extend(["--nodes", "2"]);
    flags.extend_from_slice(extra_args);
    let broker =
        BrokerProcess::start_listeners(&dir.join("data"), &["PLAINTEXT", "SASL_SSL"], &flags);
    (broker, certs)
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[test]
fn each_listener_advertises_its_own_addresses_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, certs) = two_nodes(dir.path(), &["--default-partitions", "4"]);
    let plain = broker.listener_addr("PLAINTEXT");
    let secure = broker.listener_addr("SASL_SSL");

    // Node k listens on each listener's port + k; each listener lists its own ports.
    let expect = |addr: &str| {
        let p = port_of(addr);
        vec![format!("127.0.0.1:{p}"), format!("127.0.0.1:{}", p + 1)]
    };
    assert_eq!(
        listed_brokers(kcat_on(&plain, &certs, false)),
        expect(&plain)
    );
    assert_eq!(
        listed_brokers(kcat_on(&secure, &certs, true)),
        expect(&secure)
    );
    // The plaintext listener does not speak TLS; the secure one requires it.
    let out = kcat_on(&secure, &certs, false)
        .args(["-L", "-m", "3"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "plaintext kcat on SASL_SSL listed metadata"
    );

    // Produced over SASL_SSL to partitions led by both nodes, read over PLAINTEXT: equal.
    let lines: String = (0..40).map(|i| format!("record-{i}\n")).collect();
    let keyed: String = lines
        .lines()
        .enumerate()
        .map(|(i, l)| format!("k{i}:{l}\n"))
        .collect();
    run_ok(
        kcat_on(&secure, &certs, true).args(["-P", "-t", "orders", "-K", ":"]),
        Some(keyed.into_bytes()),
        std::time::Duration::from_secs(60),
    );
    let out = kcat_on(&plain, &certs, false)
        .args([
            "-C",
            "-t",
            "orders",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%s\\n",
        ])
        .output()
        .unwrap();
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    got.sort();
    let mut want: Vec<String> = lines.lines().map(str::to_string).collect();
    want.sort();
    assert_eq!(got, want);
    let text = broker.log.text();
    assert!(
        text.contains(&format!("PLAINTEXT://{plain}"))
            && text.contains(&format!("SASL_SSL://{secure}")),
        "the start line names every listener:\n{text}"
    );
    assert!(!text.contains(PASSWORD), "a password was logged");
}

/// Stopping a node closes every listener it has, and starting it opens them all again;
/// while it is down, Metadata on each listener lists only the live node.
#[test]
fn a_stopped_node_closes_every_listener_and_a_started_one_reopens_them() {
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let (broker, certs) = two_nodes(dir.path(), &["--admin-listen", &admin]);
    let plain = broker.listener_addr("PLAINTEXT");
    let secure = broker.listener_addr("SASL_SSL");
    // Node 1 listens on each listener's port + 1.
    let node1 = |addr: &str| format!("127.0.0.1:{}", port_of(addr) + 1);
    let accepts = |addr: &str| std::net::TcpStream::connect(addr).is_ok();
    let both = |addr: &str| {
        let mut v = vec![addr.to_string(), node1(addr)];
        v.sort();
        v
    };
    assert_eq!(listed_brokers(kcat_on(&plain, &certs, false)), both(&plain));
    assert_eq!(
        listed_brokers(kcat_on(&secure, &certs, true)),
        both(&secure)
    );

    support::node_control(&admin, 1, "stop");
    for addr in [&plain, &secure] {
        assert!(
            !accepts(&node1(addr)),
            "node 1 still accepts on {}",
            node1(addr)
        );
        assert!(accepts(addr), "node 0 stopped accepting on {addr}");
    }
    assert_eq!(
        listed_brokers(kcat_on(&plain, &certs, false)),
        vec![plain.clone()]
    );
    assert_eq!(
        listed_brokers(kcat_on(&secure, &certs, true)),
        vec![secure.clone()]
    );

    support::node_control(&admin, 1, "start");
    for addr in [&plain, &secure] {
        assert!(
            accepts(&node1(addr)),
            "node 1 does not accept on {}",
            node1(addr)
        );
    }
    assert_eq!(listed_brokers(kcat_on(&plain, &certs, false)), both(&plain));
    assert_eq!(
        listed_brokers(kcat_on(&secure, &certs, true)),
        both(&secure)
    );

    // Kafka's `advertised.listeners` of node 1, as confluent-kafka's AdminClient reads it
    // with DescribeConfigs: every listener, by name.
    let out = run_python("broker_config.py", &[&plain, "1", "advertised.listeners"]);
    assert_eq!(
        out.trim(),
        format!(
            "PLAINTEXT://{},SASL_SSL://{}",
            node1(&plain),
            node1(&secure)
        )
    );
}

#[test]
fn advertised_listeners_override_each_listener_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&users, format!("alice:{PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let users = users.display().to_string();
    let broker = BrokerProcess::start_listeners(
        &dir.path().join("data"),
        &["PLAINTEXT", "SASL_PLAINTEXT"],
        &[
            "--advertised-listeners",
            "PLAINTEXT://mirror-a.example.invalid:19092",
            "--sasl-users",
            &users,
            "--sasl-plain-without-tls",
        ],
    );
    let plain = broker.listener_addr("PLAINTEXT");
    let sasl = broker.listener_addr("SASL_PLAINTEXT");
    assert_eq!(
        listed_brokers(kcat_on(&plain, Path::new("."), false)),
        ["mirror-a.example.invalid:19092"]
    );
    let mut cmd = kcat();
    cmd.args(["-b", &sasl, "-X", "security.protocol=SASL_PLAINTEXT"])
        .args(["-X", "sasl.mechanisms=SCRAM-SHA-256"])
        .args(["-X", "sasl.username=alice"])
        .args(["-X", &format!("sasl.password={PASSWORD}")]);
    // The listener without an advertised address keeps its bound one.
    assert_eq!(listed_brokers(cmd), [sasl]);
}

/// `kmirror-broker` with `args` exits with an error naming `expected`.
fn refused(args: &[&str], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(broker_binary())
        .args(args)
        .args(["--data-dir", &dir.path().display().to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} started");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
}

#[test]
fn listeners_and_security_flags_that_do_not_match_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certificates(&dir.path().join("certs"));
    let cert = certs.join("broker.pem").display().to_string();
    let key = certs.join("broker.key").display().to_string();
    let tls = ["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
    refused(
        &["--listeners", "SSL://127.0.0.1:0"],
        "listener SSL needs a certificate: give --tls-cert and --tls-key",
    );
    refused(
        &[&["--listeners", "PLAINTEXT://127.0.0.1:0"][..], &tls].concat(),
        "--tls-cert is given but no listener is SSL or SASL_SSL",
    );
    refused(
        &["--listeners", "TLS://127.0.0.1:0"],
        "unknown security protocol \"TLS\"",
    );
    refused(
        &["--listeners", "PLAINTEXT://localhost:0"],
        "a listener binds to an IP address",
    );
    refused(
        &[
            "--listeners",
            "PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
        ],
        "listener PLAINTEXT is named twice",
    );
    refused(
        &[
            "--listeners",
            "PLAINTEXT://127.0.0.1:0",
            "--advertised-listeners",
            "SSL://a:1",
        ],
        "advertised listener SSL has no listener in --listeners",
    );
}
