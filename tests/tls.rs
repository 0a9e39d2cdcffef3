//! TLS (issue 11, first part): kmirror-broker's listener speaks TLS with `--tls-cert` and
//! `--tls-key` (mTLS with `--tls-client-ca`), and the daemon connects with a cluster's
//! `tls: { ca, cert, key, server_name }`. Certificates come from `scripts/gen-certs.sh`
//! (two throw-away CAs). Proven with kcat (librdkafka) over SSL, confluent-kafka over SSL
//! with a client certificate, a plaintext client and a client without certificate
//! refused, the daemon mirroring between two TLS brokers of different CAs (the target
//! requiring a client certificate), and an untrusted CA reported clearly, never plaintext.
//! The daemon's mirror runs at Kafka 4.1 versions and against brokers emulating 2.8.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).display().to_string()
}

/// A broker whose listener speaks TLS with `certs`' broker certificate.
fn tls_broker(data: &Path, certs: &Path, extra: &[&str]) -> BrokerProcess {
    let (cert, key) = (path(certs, "broker.pem"), path(certs, "broker.key"));
    let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    BrokerProcess::start(data, &args)
}

/// kcat over SSL trusting `certs`' CA (with its client certificate when `mtls`).
fn kcat_ssl(bootstrap: &str, certs: &Path, mtls: bool, args: &[&str]) -> std::process::Output {
    let mut cmd = kcat();
    cmd.args(["-b", bootstrap, "-X", "security.protocol=SSL"])
        .args(["-X", &format!("ssl.ca.location={}", path(certs, "ca.pem"))]);
    if mtls {
        cmd.args([
            "-X",
            &format!("ssl.certificate.location={}", path(certs, "client.pem")),
        ])
        .args([
            "-X",
            &format!("ssl.key.location={}", path(certs, "client.key")),
        ]);
    }
    cmd.args(args).output().unwrap()
}

/// The values of `topic` partition 0 read over SSL with kcat.
fn values(bootstrap: &str, certs: &Path, mtls: bool, topic: &str) -> Vec<String> {
    let out = kcat_ssl(
        bootstrap,
        certs,
        mtls,
        &[
            "-C",
            "-t",
            topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%s\\n",
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn produce(bootstrap: &str, certs: &Path, topic: &str, values: &[String]) {
    let mut child = {
        let mut cmd = kcat();
        cmd.args(["-b", bootstrap, "-X", "security.protocol=SSL"])
            .args(["-X", &format!("ssl.ca.location={}", path(certs, "ca.pem"))])
            .args(["-P", "-t", topic, "-p", "0"])
            .stdin(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all((values.join("\n") + "\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_daemon_mirrors_between_tls_brokers_of_different_cas() {
    mirror_between_tls_brokers(&[]);
}

/// The same against brokers emulating Kafka 2.8.
#[test]
fn the_daemon_mirrors_between_tls_brokers_emulating_kafka_2_8() {
    mirror_between_tls_brokers(&["--emulate-kafka", "2.8"]);
}

fn mirror_between_tls_brokers(broker_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let east_certs = certificates(&dir.path().join("east-certs"));
    let west_certs = certificates(&dir.path().join("west-certs"));
    let east = tls_broker(&dir.path().join("east"), &east_certs, broker_args);
    // West requires a client certificate from its own CA (mTLS).
    let west_ca = path(&west_certs, "ca.pem");
    let mut west_args = vec!["--tls-client-ca", west_ca.as_str()];
    west_args.extend_from_slice(broker_args);
    let west = tls_broker(&dir.path().join("west"), &west_certs, &west_args);

    // kcat (librdkafka) round trip over SSL, byte-equal.
    let sent: Vec<String> = (0..50).map(|i| format!("record-{i}-ünïcode")).collect();
    produce(&east.addr(), &east_certs, "orders", &sent);
    assert_eq!(values(&east.addr(), &east_certs, false, "orders"), sent);
    // A plaintext client gets nothing from a TLS listener, and the broker says why.
    let plain = kcat()
        .args(["-b", &east.addr(), "-L", "-m", "3"])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    assert!(east
        .log
        .wait_for("TLS handshake failed", Duration::from_secs(10)));
    // confluent-kafka over SSL with a client certificate (west requires one), byte-equal.
    let roundtrip = run_python(
        "ssl_roundtrip.py",
        &[
            &west.addr(),
            "confluent",
            &west_ca,
            &path(&west_certs, "client.pem"),
            &path(&west_certs, "client.key"),
        ],
    );
    assert!(
        roundtrip.contains("ROUNDTRIP sent=200 received=200 equal=true"),
        "{roundtrip}"
    );
    // A client certificate from another CA is refused too.
    let foreign = kcat()
        .args(["-b", &west.addr(), "-X", "security.protocol=SSL"])
        .args(["-X", &format!("ssl.ca.location={west_ca}")])
        .args([
            "-X",
            &format!(
                "ssl.certificate.location={}",
                path(&east_certs, "client.pem")
            ),
        ])
        .args([
            "-X",
            &format!("ssl.key.location={}", path(&east_certs, "client.key")),
        ])
        .args(["-L", "-m", "3"])
        .output()
        .unwrap();
    assert!(!foreign.status.success());
    assert!(west
        .log
        .wait_for("TLS handshake failed", Duration::from_secs(10)));
    // Without a client certificate, west refuses the connection.
    let anonymous = kcat_ssl(&west.addr(), &west_certs, false, &["-L", "-m", "3"]);
    assert!(!anonymous.status.success());

    let topology = dir.path().join("tls.yaml");
    std::fs::write(
        &topology,
        format!(
            "clusters:\n  east:\n    bootstrap: [\"{}\"]\n    tls: {{ ca: \"{}\" }}\n  west:\n    bootstrap: [\"{}\"]\n    tls: {{ ca: \"{}\", cert: \"{}\", key: \"{}\", server_name: localhost }}\nflows:\n  - name: east-to-west\n    source: east\n    target: west\n    rename: \"{{topic}}\"\n    topics: {{ include: [\"orders\"] }}\n",
            east.addr(),
            path(&east_certs, "ca.pem"),
            west.addr(),
            west_ca,
            path(&west_certs, "client.pem"),
            path(&west_certs, "client.key"),
        ),
    )
    .unwrap();
    let daemon = DaemonProcess::start(&topology);
    let deadline = Instant::now() + Duration::from_secs(60);
    while values(&west.addr(), &west_certs, true, "orders") != sent {
        assert!(Instant::now() < deadline, "{}", daemon.log.tail(30));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(!daemon.log.contains(" ERROR "), "{}", daemon.log.tail(30));

    // The same daemon pointed at west with east's CA: the certificate is not trusted. The
    // error names the cluster and the reason; nothing is ever sent in plaintext.
    let wrong = std::fs::read_to_string(&topology)
        .unwrap()
        .replace(&west_ca, &path(&east_certs, "ca.pem"))
        .replace("name: east-to-west", "name: untrusted");
    let wrong_path = dir.path().join("untrusted.yaml");
    std::fs::write(&wrong_path, wrong).unwrap();
    let untrusted = DaemonProcess::start(&wrong_path);
    let line = untrusted
        .log
        .wait_for_line("TLS handshake failed", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{}", untrusted.log.tail(30)));
    assert!(
        line.contains("west") && line.contains("certificate"),
        "{line}"
    );
    assert!(west
        .log
        .wait_for("TLS handshake failed", Duration::from_secs(10)));
}

/// A cluster configured with `tls` whose listener is plaintext: the broker closes the
/// connection at the ClientHello (a frame far too large for it), and the daemon's error
/// says the listener may be plaintext; nothing is sent in plaintext.
#[test]
fn tls_to_a_plaintext_listener_says_it_may_be_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certificates(&dir.path().join("certs"));
    let plain = BrokerProcess::start(&dir.path().join("plain"), &[]);
    let other = BrokerProcess::start(&dir.path().join("other"), &[]);
    let topology = dir.path().join("topology.yaml");
    std::fs::write(
        &topology,
        format!(
            "clusters:\n  east:\n    bootstrap: [\"{}\"]\n    tls: {{ ca: \"{}\", server_name: localhost }}\n  west:\n    bootstrap: [\"{}\"]\nflows:\n  - name: east-to-west\n    source: east\n    target: west\n    topics: {{ include: [\"orders\"] }}\n",
            plain.addr(),
            path(&certs, "ca.pem"),
            other.addr(),
        ),
    )
    .unwrap();
    let daemon = DaemonProcess::start(&topology);
    let line = daemon
        .log
        .wait_for_line("TLS handshake failed", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{}", daemon.log.tail(30)));
    assert!(
        line.contains("east") && line.contains("may speak PLAINTEXT"),
        "{line}"
    );
}

/// `configs/secure-pair.yaml` runs as the README says: two embedded brokers speaking TLS
/// with certificates from scripts/gen-certs.sh, mirrored over TLS; kcat reads the copy.
#[test]
fn the_secure_pair_example_runs() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certificates(&dir.path().join("certs"));
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/secure-pair.yaml");
    let (certs_env, data_env) = (
        certs.display().to_string(),
        dir.path().join("data").display().to_string(),
    );
    let daemon = DaemonProcess::start_with(
        &config,
        &[],
        &[("KMIRROR_CERTS", &certs_env), ("KMIRROR_DATA", &data_env)],
    );
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    let sent: Vec<String> = ["one", "two", "three"].map(String::from).to_vec();
    produce("127.0.0.1:19192", &certs, "orders", &sent);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if values("127.0.0.1:19193", &certs, false, "east.orders") == sent {
            break;
        }
        assert!(Instant::now() < deadline, "{}", daemon.log.tail(30));
        std::thread::sleep(Duration::from_millis(300));
    }
}
