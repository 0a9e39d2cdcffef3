//! SASL (issue 11, second part): kmirror-broker with `--sasl-users` (and TLS: the SASL_SSL
//! protocol) authenticates clients with SaslHandshake v1 and SaslAuthenticate, PLAIN or
//! SCRAM-SHA-256/512; the daemon authenticates with a cluster's `sasl: { mechanism,
//! username, password | password_file }`. Proven with kcat (librdkafka) with every
//! mechanism, confluent-kafka with SCRAM and kafka-python with PLAIN over SASL_SSL, wrong
//! passwords and an unknown user refused with Kafka's errors while other connections go
//! on, no password in any log, a users file readable by others refused at start, PLAIN
//! not offered without TLS (SCRAM is), and the daemon mirroring between two SASL_SSL brokers with different
//! users, CAs and SCRAM mechanisms, byte-equal (and reporting a wrong password clearly).
//! That test runs at Kafka 4.1 versions and against brokers emulating 2.8.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const PASSWORD: &str = "alice-s3cret-pw";
const WRONG: &str = "not-the-password";
const CAROL: &str = "carol-on-west-pw";

/// A users file with `mode`.
fn users(dir: &Path, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("users-{mode:o}"));
    std::fs::write(
        &path,
        format!("# name:password\nalice:{PASSWORD}\nbob:bob-pw-2\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// kcat over SASL_SSL as `user`/`password`.
fn kcat_sasl(broker: &str, ca: &Path, mechanism: &str, user: &str, password: &str) -> Command {
    let mut cmd = kcat();
    cmd.args(["-b", broker, "-X", "security.protocol=SASL_SSL"])
        .args(["-X", &format!("ssl.ca.location={}", ca.display())])
        .args(["-X", &format!("sasl.mechanisms={mechanism}")])
        .args(["-X", &format!("sasl.username={user}")])
        .args(["-X", &format!("sasl.password={password}")]);
    cmd
}

fn produce(
    broker: &str,
    ca: &Path,
    mechanism: &str,
    user: &str,
    password: &str,
    lines: &str,
) -> bool {
    let mut child = kcat_sasl(broker, ca, mechanism, user, password)
        .args(["-P", "-t", "orders", "-p", "0"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    child.wait().unwrap().success()
}

fn consume(broker: &str, ca: &Path, mechanism: &str, user: &str, password: &str) -> String {
    let out = kcat_sasl(broker, ca, mechanism, user, password)
        .args([
            "-C",
            "-t",
            "orders",
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs kmirror-broker with `args` expecting it to refuse to start; its stderr.
fn refused_start(data: &Path, args: &[&str]) -> String {
    let out = Command::new(broker_binary())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the broker started with {args:?}");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn sasl_plain_over_tls_for_clients_and_the_daemon() {
    sasl_over_tls(&[]);
}

/// The same against brokers emulating Kafka 2.8 (SaslHandshake v1, SaslAuthenticate v2).
#[test]
fn sasl_plain_over_tls_for_clients_and_the_daemon_emulating_kafka_2_8() {
    sasl_over_tls(&["--emulate-kafka", "2.8"]);
}

fn sasl_over_tls(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let certs = certificates(&dir.path().join("certs"));
    let ca = certs.join("ca.pem");
    let (cert, key) = (
        certs.join("broker.pem").display().to_string(),
        certs.join("broker.key").display().to_string(),
    );
    let users_600 = users(dir.path(), 0o600).display().to_string();
    let mut source_args = vec![
        "--tls-cert",
        cert.as_str(),
        "--tls-key",
        key.as_str(),
        "--sasl-users",
        users_600.as_str(),
    ];
    source_args.extend_from_slice(broker_args);
    let source = BrokerProcess::start(&dir.path().join("source"), &source_args);
    assert!(source.log.contains("SASL_SSL"), "{}", source.log.tail(5));
    let addr = source.addr();

    assert!(produce(
        &addr,
        &ca,
        "PLAIN",
        "alice",
        PASSWORD,
        "one\ntwo\n"
    ));
    assert_eq!(
        consume(&addr, &ca, "PLAIN", "alice", PASSWORD),
        "one\ntwo\n"
    );
    // SCRAM: kcat, and confluent-kafka on a topic of its own, byte-equal.
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        assert_eq!(
            consume(&addr, &ca, mechanism, "alice", PASSWORD),
            "one\ntwo\n",
            "{mechanism}"
        );
        let topic = format!("confluent-{mechanism}");
        let roundtrip = run_python(
            "ssl_roundtrip.py",
            &[
                &addr,
                &topic,
                &ca.display().to_string(),
                "sasl",
                mechanism,
                "bob",
                "bob-pw-2",
            ],
        );
        assert!(
            roundtrip.contains("ROUNDTRIP sent=200 received=200 equal=true"),
            "{mechanism}: {roundtrip}"
        );
        let wrong = kcat_sasl(&addr, &ca, mechanism, "alice", WRONG)
            .args(["-L", "-m", "3"])
            .output()
            .unwrap();
        assert!(!wrong.status.success());
        assert!(
            String::from_utf8_lossy(&wrong.stderr).contains("Invalid user credentials"),
            "{}",
            String::from_utf8_lossy(&wrong.stderr)
        );
    }
    // A wrong password and an unknown user: Kafka's error, the connection closed; the
    // user is logged, the password is not.
    let wrong = kcat_sasl(&addr, &ca, "PLAIN", "alice", WRONG)
        .args(["-L", "-m", "3"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("Invalid username or password"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let unknown = kcat_sasl(&addr, &ca, "PLAIN", "mallory", PASSWORD)
        .args(["-L", "-m", "3"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(source
        .log
        .wait_for("principal=User:mallory", Duration::from_secs(10)));
    // kafka-python with PLAIN over SSL, byte-equal.
    let roundtrip = run_python(
        "sasl_kafka_python.py",
        &[
            &addr,
            "kafka-python",
            &ca.display().to_string(),
            "bob",
            "bob-pw-2",
        ],
    );
    assert!(
        roundtrip.contains("ROUNDTRIP sent=100 received=100 equal=true"),
        "{roundtrip}"
    );
    // Everyone else goes on.
    assert!(produce(&addr, &ca, "PLAIN", "bob", "bob-pw-2", "three\n"));
    assert_eq!(
        consume(&addr, &ca, "PLAIN", "bob", "bob-pw-2"),
        "one\ntwo\nthree\n"
    );
    assert!(source.log.contains("authentication failed"));
    assert!(
        !source.log.contains(WRONG) && !source.log.contains(PASSWORD),
        "a password was logged"
    );

    // Refused at start: a users file others can read.
    let users_644 = users(dir.path(), 0o644).display().to_string();
    let err = refused_start(
        &dir.path().join("x"),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--sasl-users",
            &users_644,
        ],
    );
    assert!(err.contains("chmod 600"), "{err}");
    // Without TLS (SASL_PLAINTEXT) PLAIN is not offered, SCRAM is.
    let clear = BrokerProcess::start(&dir.path().join("y"), &["--sasl-users", &users_600]);
    let over_clear = |mechanism: &str| {
        let mut cmd = kcat();
        cmd.args([
            "-b",
            &clear.addr(),
            "-X",
            "security.protocol=SASL_PLAINTEXT",
        ])
        .args(["-X", &format!("sasl.mechanisms={mechanism}")])
        .args(["-X", "sasl.username=alice"])
        .args(["-X", &format!("sasl.password={PASSWORD}")])
        .args(["-L", "-m", "5"]);
        cmd.output().unwrap()
    };
    let out = over_clear("PLAIN");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("SCRAM-SHA-256,SCRAM-SHA-512"),
        "PLAIN over SASL_PLAINTEXT: {stderr}"
    );
    assert!(over_clear("SCRAM-SHA-256").status.success());
    assert!(clear.log.contains("PLAIN is disabled on this listener"));

    // The daemon reads the SASL_SSL source (password from a file) into a plaintext target.
    // The target is SASL_SSL too, with its own CA and its own user.
    let west_certs = certificates(&dir.path().join("west-certs"));
    let west_ca = west_certs.join("ca.pem");
    let west_users = dir.path().join("west-users");
    std::fs::write(&west_users, format!("carol:{CAROL}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&west_users, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (west_cert, west_key, west_users) = (
        west_certs.join("broker.pem").display().to_string(),
        west_certs.join("broker.key").display().to_string(),
        west_users.display().to_string(),
    );
    let mut target_args = vec![
        "--tls-cert",
        west_cert.as_str(),
        "--tls-key",
        west_key.as_str(),
        "--sasl-users",
        west_users.as_str(),
    ];
    target_args.extend_from_slice(broker_args);
    let target = BrokerProcess::start(&dir.path().join("target"), &target_args);
    let password_file = dir.path().join("alice.password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let topology = |password: &str| {
        format!(
            "clusters:\n  east:\n    bootstrap: [\"{addr}\"]\n    tls: {{ ca: \"{}\" }}\n    sasl: {{ mechanism: SCRAM-SHA-512, username: alice, {password} }}\n  west:\n    bootstrap: [\"{}\"]\n    tls: {{ ca: \"{}\" }}\n    sasl: {{ mechanism: SCRAM-SHA-256, username: carol, password: \"${{CAROL_PW}}\" }}\nflows:\n  - name: east-to-west\n    source: east\n    target: west\n    rename: \"{{topic}}\"\n    topics: {{ include: [\"orders\"] }}\n",
            ca.display(),
            target.addr(),
            west_ca.display()
        )
    };
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        topology(&format!("password_file: \"{}\"", password_file.display())),
    )
    .unwrap();
    let daemon = DaemonProcess::start_with(&good, &[], &[("CAROL_PW", CAROL)]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while consume(&target.addr(), &west_ca, "SCRAM-SHA-256", "carol", CAROL) != "one\ntwo\nthree\n"
    {
        assert!(Instant::now() < deadline, "{}", daemon.log.tail(20));
        std::thread::sleep(Duration::from_millis(300));
    }
    for log in [&daemon.log, &source.log, &target.log] {
        assert!(
            !log.contains(PASSWORD) && !log.contains(CAROL),
            "a password was logged"
        );
    }

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, topology("password: \"${WRONG_PW}\"")).unwrap();
    let refused = DaemonProcess::start_with(&bad, &[], &[("WRONG_PW", WRONG), ("CAROL_PW", CAROL)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        if let Some(line) = refused
            .log
            .lines()
            .into_iter()
            .find(|l| l.contains("SASL/SCRAM-SHA-512 authentication as alice failed"))
        {
            break line;
        }
        assert!(Instant::now() < deadline, "{}", refused.log.tail(20));
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        line.contains("Invalid user credentials") && line.contains("east"),
        "{line}"
    );
    assert!(
        !refused.log.contains(WRONG),
        "the daemon logged the password"
    );
}
