//! Kafka ACLs on kmirror-broker (issue 11): with `--authorizer acl --super-users
//! User:admin`, a user without READ on a topic gets TOPIC_AUTHORIZATION_FAILED in kcat
//! (librdkafka) and confluent-kafka; once a super user grants READ with CreateAcls
//! (confluent-kafka's AdminClient) the same clients read it byte-equal, the grant survives
//! a restart, DescribeAcls lists it, and a user without ACLs may not create ACLs. The
//! daemon's `sync_acls` copies a source's topic ACLs to the target names with
//! MirrorMaker 2's rules. A client certificate's subject is its principal (mTLS).
//! kafka-python's admin client creates, lists and deletes ACLs too.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;

const CLIENT_WAIT: Duration = Duration::from_secs(60);
const USERS: &str = "admin:admin-pw-1\nalice:alice-pw-2\nbob:bob-pw-3\n";

struct Secured {
    _dir: tempfile::TempDir,
    certs: PathBuf,
    broker: BrokerProcess,
}

fn secured_broker() -> Secured {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let certs = certificates(&dir.path().join("certs"));
    let users = dir.path().join("users");
    std::fs::write(&users, USERS).unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    let arg = |p: &Path| p.display().to_string();
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            &arg(&certs.join("broker.pem")),
            "--tls-key",
            &arg(&certs.join("broker.key")),
            "--sasl-users",
            &arg(&users),
            "--authorizer",
            "acl",
            "--super-users",
            "User:admin",
        ],
    );
    Secured {
        _dir: dir,
        certs,
        broker,
    }
}

fn password(user: &str) -> &'static str {
    USERS
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{user}:")))
        .unwrap()
}

impl Secured {
    fn kcat(&self, user: &str) -> std::process::Command {
        let mut cmd = kcat();
        cmd.args([
            "-b",
            &self.broker.addr(),
            "-X",
            "security.protocol=SASL_SSL",
        ])
        .args([
            "-X",
            &format!("ssl.ca.location={}", self.certs.join("ca.pem").display()),
        ])
        .args(["-X", "sasl.mechanisms=SCRAM-SHA-512"])
        .args(["-X", &format!("sasl.username={user}")])
        .args(["-X", &format!("sasl.password={}", password(user))]);
        cmd
    }

    fn python(&self, user: &str, args: &[&str]) -> String {
        let ca = self.certs.join("ca.pem").display().to_string();
        let addr = self.broker.addr();
        let mut all = vec![addr.as_str(), ca.as_str(), user, password(user)];
        all.extend_from_slice(args);
        run_python("acls.py", &all)
    }

    /// kcat reads partition 0 of `topic` as `user`: its values, or its error output.
    fn kcat_read(&self, user: &str, topic: &str) -> Result<Vec<String>, String> {
        let out = self
            .kcat(user)
            .args(["-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q"])
            .args(["-f", "%s\\n"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if !out.status.success() || stderr.contains("rror") {
            return Err(stderr);
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }

    fn kcat_write(&self, user: &str, topic: &str, lines: &str) -> Result<(), String> {
        let mut cmd = self.kcat(user);
        cmd.args(["-P", "-t", topic, "-p", "0"]);
        kcat_produced(&mut cmd, lines)
    }
}

/// Runs a kcat producer with `lines`: `Err(stderr)` when it failed or reported an error.
fn kcat_produced(cmd: &mut std::process::Command, lines: &str) -> Result<(), String> {
    let out = run(cmd, Some(lines.as_bytes().to_vec()), CLIENT_WAIT);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() && !stderr.contains("rror") {
        Ok(())
    } else {
        Err(stderr)
    }
}

#[test]
fn read_needs_an_acl_and_a_grant_by_a_super_user_opens_it() {
    let mut s = secured_broker();
    let values: Vec<String> = (0..25).map(|i| format!("order-{i} \u{e9}")).collect();
    let lines: String = values.iter().map(|v| format!("{v}\n")).collect();
    s.kcat_write("admin", "orders", &lines).unwrap();

    // Alice has no ACL: both clients are told TOPIC_AUTHORIZATION_FAILED.
    let err = s.kcat_read("alice", "orders").unwrap_err();
    assert!(err.contains("Topic authorization failed"), "kcat: {err}");
    s.python("admin", &["grant", "User:alice", "group:alice-readers"]);
    let out = s.python("alice", &["consume", "orders", "alice-readers", "25"]);
    assert!(out.contains("ERROR TOPIC_AUTHORIZATION_FAILED"), "{out}");
    // Bob may not write, and an unknown topic is denied, not reported missing.
    let err = s.kcat_write("bob", "orders", "x\n").unwrap_err();
    assert!(err.contains("Topic authorization failed"), "kcat: {err}");
    let err = s.kcat_read("bob", "no-such-topic").unwrap_err();
    assert!(err.contains("Topic authorization failed"), "kcat: {err}");
    // Nor may alice grant herself anything.
    let out = run_script(&s, "alice", &["grant", "User:alice", "topic:orders"]);
    assert!(out.contains("CLUSTER_AUTHORIZATION_FAILED"), "{out}");

    let out = s.python("admin", &["grant", "User:alice", "topic:orders"]);
    assert!(out.contains("GRANTED 1"), "{out}");
    assert_eq!(s.kcat_read("alice", "orders").unwrap(), values);
    let out = s.python("alice", &["consume", "orders", "alice-readers", "25"]);
    let got: Vec<String> =
        serde_json::from_str(out.trim().strip_prefix("VALUES ").expect(&out)).unwrap();
    assert_eq!(got, values);

    // The ACLs persist; DescribeAcls lists them; READ does not grant WRITE.
    let before_restart = s.broker.log.text();
    assert!(
        before_restart.contains("Access denied. principal=User:bob host=127.0.0.1 operation=DESCRIBE resource_type=TOPIC resource=\"orders\""),
        "{before_restart}"
    );
    s.broker.terminate();
    s.broker.restart();
    assert_eq!(s.kcat_read("alice", "orders").unwrap(), values);
    let listed = s.python("admin", &["describe"]);
    assert!(
        listed.contains("ACL TOPIC orders LITERAL User:alice * READ ALLOW")
            && listed.contains("ACL GROUP alice-readers LITERAL User:alice * READ ALLOW"),
        "{listed}"
    );
    let err = s.kcat_write("alice", "orders", "x\n").unwrap_err();
    assert!(err.contains("Topic authorization failed"), "kcat: {err}");
    let log = format!("{before_restart}{}", s.broker.log.text());
    for (_, pw) in USERS.lines().filter_map(|l| l.split_once(':')) {
        assert!(!log.contains(pw), "a password was logged");
    }
}

/// The script's output even when it fails (a refused grant raises in Python).
fn run_script(s: &Secured, user: &str, args: &[&str]) -> String {
    let ca = s.certs.join("ca.pem").display().to_string();
    let out = python_command()
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/acls.py"))
        .args([s.broker.addr().as_str(), &ca, user, password(user)])
        .args(args)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `acls.py` on a plaintext broker, as User:ANONYMOUS.
fn anonymous(broker: &BrokerProcess, args: &[&str]) -> String {
    let addr = broker.addr();
    let mut all = vec![addr.as_str(), "-", "-", "-"];
    all.extend_from_slice(args);
    run_python("acls.py", &all)
}

/// One record in `orders` on `source`, and a topology mirroring it to `target` with
/// `sync_acls` and a discovery round a second.
fn orders_with_acl_sync(dir: &Path, source: &BrokerProcess, target: &BrokerProcess) -> PathBuf {
    run_ok(
        kcat().args(["-b", &source.addr(), "-P", "-t", "orders"]),
        Some(b"one\n".to_vec()),
        CLIENT_WAIT,
    );
    write_topology(
        dir,
        &[("east", &source.addr()), ("west", &target.addr())],
        "  - name: east-to-west\n    source: east\n    target: west\n    topics: { include: [\"orders\"] }\n    sync_acls: true\n    discovery_interval: 1s\n",
    )
}

#[test]
fn sync_acls_copies_literal_topic_acls_with_mirrormaker_2s_rules() {
    let dir = tempfile::tempdir().unwrap();
    let authorizer = ["--authorizer", "acl", "--super-users", "User:ANONYMOUS"];
    let source = BrokerProcess::start(&dir.path().join("east"), &authorizer);
    let target = BrokerProcess::start(&dir.path().join("west"), &authorizer);
    let out = anonymous(
        &source,
        &[
            "create",
            "TOPIC|orders|LITERAL|User:alice|READ|ALLOW",
            "TOPIC|orders|LITERAL|User:alice|WRITE|ALLOW",
            "TOPIC|orders|LITERAL|User:bob|ALL|ALLOW",
            "TOPIC|orders|LITERAL|User:mallory|WRITE|DENY",
            "TOPIC|orders|LITERAL|User:*|ALL|DENY",
            "TOPIC|ord|PREFIXED|User:carol|READ|ALLOW",
            "TOPIC|payments|LITERAL|User:alice|READ|ALLOW",
            "GROUP|orders|LITERAL|User:alice|READ|ALLOW",
        ],
    );
    assert!(out.contains("CREATED 8"), "{out}");
    let config = orders_with_acl_sync(dir.path(), &source, &target);
    let daemon = DaemonProcess::start(&config);
    assert!(
        daemon
            .log
            .wait_for("Topic ACL synced.", Duration::from_secs(60)),
        "{}",
        daemon.log.tail(40)
    );
    // All four creations are logged together; then the target holds exactly them.
    let wanted = [
        "ACL TOPIC east.orders LITERAL User:* * ALL DENY",
        "ACL TOPIC east.orders LITERAL User:alice * READ ALLOW",
        "ACL TOPIC east.orders LITERAL User:bob * READ ALLOW",
        "ACL TOPIC east.orders LITERAL User:mallory * WRITE DENY",
    ];
    let mut listed: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        listed = anonymous(&target, &["describe"])
            .lines()
            .filter(|l| l.starts_with("ACL "))
            .map(str::to_string)
            .collect();
        listed.sort();
        if listed.len() >= wanted.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(listed, wanted);
    let log = daemon.log.text();
    assert_eq!(log.matches("Topic ACL synced.").count(), 4, "{log}");
    assert!(!log.contains("Could not sync"), "{log}");
    // The copied DENY of every principal's writes would refuse the daemon's own (it is
    // User:ANONYMOUS here, a super user, so it still writes): said once, for that one;
    // mallory's DENY is not the daemon's.
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("also refuses this daemon's writes"))
        .collect();
    assert!(
        warned.len() == 1 && warned[0].contains("principal=User:*"),
        "{warned:?}"
    );
    assert!(
        log.contains("operation=\"ALL\" permission=\"DENY\"")
            || log.contains("operation=ALL permission=DENY"),
        "{log}"
    );
}

/// A target that lets the daemon describe ACLs but not create them (no ALTER on the
/// cluster): each refused ACL is said once, not once per discovery round, and the topic is
/// mirrored all the same.
#[test]
fn an_acl_the_target_refuses_is_said_once_while_the_topic_is_mirrored() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(
        &dir.path().join("east"),
        &["--authorizer", "acl", "--super-users", "User:ANONYMOUS"],
    );
    // The daemon (User:ANONYMOUS over plaintext) may do everything on topics and groups,
    // and describe, create and write idempotently on the cluster; not ALTER it.
    let west = dir.path().join("west");
    std::fs::create_dir_all(&west).unwrap();
    let allow = |resource_type: u8, name: &str, pattern_type: u8, operation: u8| {
        format!(
            r#"{{"resource_type":{resource_type},"resource_name":"{name}","pattern_type":{pattern_type},"principal":"User:ANONYMOUS","host":"*","operation":{operation},"permission":3}}"#
        )
    };
    // Kafka's codes: TOPIC 2, GROUP 3, CLUSTER 4; LITERAL 3; ALL 2, CREATE 5, DESCRIBE 8,
    // DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
    let mut acls = vec![allow(2, "*", 3, 2), allow(3, "*", 3, 2)];
    acls.extend([5, 8, 10, 11, 12].map(|op| allow(4, "kafka-cluster", 3, op)));
    std::fs::write(west.join("acls.json"), format!("[{}]", acls.join(","))).unwrap();
    let target = BrokerProcess::start(
        &west,
        &["--authorizer", "acl", "--super-users", "User:admin"],
    );
    let out = anonymous(
        &source,
        &[
            "create",
            "TOPIC|orders|LITERAL|User:alice|READ|ALLOW",
            "TOPIC|orders|LITERAL|User:bob|READ|ALLOW",
        ],
    );
    assert!(out.contains("CREATED 2"), "{out}");
    let config = orders_with_acl_sync(dir.path(), &source, &target);
    let daemon = DaemonProcess::start_with(
        &config,
        &[],
        &[("KMIRROR_LOG", "info,kmirror::mirror::acl_sync=debug")],
    );
    // Six rounds that found both ACLs refused: each was said once.
    assert!(
        daemon
            .log
            .wait_for_count("refused=2", 6, Duration::from_secs(60)),
        "{}",
        daemon.log.tail(40)
    );
    let log = daemon.log.text();
    let said = |principal: &str| {
        log.lines()
            .filter(|l| l.contains("Could not sync a topic ACL") && l.contains(principal))
            .count()
    };
    assert_eq!((said("User:alice"), said("User:bob")), (1, 1), "{log}");
    assert!(!log.contains("Topic ACL synced."), "{log}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    support::cluster::wait_for_records(&rt, &target.addr(), "east.orders", 1, &daemon);
}

/// A broker requiring client certificates, with ACLs and `super_user` allowed everything;
/// whether kcat with `certs`' client certificate (subject `CN=kmirror`) can write and read.
fn mtls_client_allowed(dir: &Path, certs: &Path, super_user: &str) -> Result<(), String> {
    let arg = |f: &str| certs.join(f).display().to_string();
    let broker = BrokerProcess::start(
        &dir.join(super_user.replace([':', '=', ','], "_")),
        &[
            "--tls-cert",
            &arg("broker.pem"),
            "--tls-key",
            &arg("broker.key"),
            "--tls-client-ca",
            &arg("ca.pem"),
            "--authorizer",
            "acl",
            "--super-users",
            super_user,
        ],
    );
    let mut cmd = kcat();
    cmd.args(["-b", &broker.addr(), "-X", "security.protocol=SSL"])
        .args(["-X", &format!("ssl.ca.location={}", arg("ca.pem"))])
        .args([
            "-X",
            &format!("ssl.certificate.location={}", arg("client.pem")),
        ])
        .args(["-X", &format!("ssl.key.location={}", arg("client.key"))])
        .args(["-P", "-t", "certified", "-p", "0"]);
    kcat_produced(&mut cmd, "signed\n")
}

#[test]
fn an_mtls_client_is_the_principal_its_certificate_names() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certificates(&dir.path().join("certs"));
    // Kafka's DefaultKafkaPrincipalBuilder: User:<subject>, RFC 2253.
    mtls_client_allowed(dir.path(), &certs, "User:CN=kmirror").unwrap();
    let err = mtls_client_allowed(dir.path(), &certs, "User:CN=someone-else").unwrap_err();
    assert!(err.contains("authorization failed"), "{err}");
}

#[test]
fn kafka_pythons_admin_client_creates_lists_and_deletes_acls() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        dir.path(),
        &["--authorizer", "acl", "--super-users", "User:ANONYMOUS"],
    );
    let out = run_python("acls_kafka_python.py", &[&broker.addr()]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "CREATED 2 0",
            "LISTED TOPIC:orders:PREFIXED:User:alice:*:READ:ALLOW;TOPIC:payments:LITERAL:User:bob:10.0.0.1:WRITE:DENY NoError",
            "DELETED 1",
            "LISTED TOPIC:payments:LITERAL:User:bob:10.0.0.1:WRITE:DENY NoError",
        ]
    );
}
