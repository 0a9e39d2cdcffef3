//! SCRAM credentials managed through the admin API (DescribeUserScramCredentials,
//! AlterUserScramCredentials) of a kmirror-broker process with `--sasl-users`, driven by
//! confluent-kafka's AdminClient over SASL_PLAINTEXT (`tests/clients/scram_admin.py`): a
//! bootstrap user creates `carol`, who then produces and consumes with SCRAM-SHA-512 and
//! PLAIN, is described with her mechanism and iterations, still authenticates after a
//! restart on the same data directory, and is refused once deleted. The credentials file
//! holds no password and is mode 600.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kmirror_testkit::{run_python, BrokerProcess};

const ALICE: &str = "alice-bootstrap-pw";
const CAROL: &str = "carol-made-by-admin-pw";

fn scram_admin(args: &[&str]) -> String {
    run_python("scram_admin.py", args)
}

/// A produce/consume round trip as `user`; panics unless every record came back equal.
fn assert_roundtrip(addr: &str, user: &str, password: &str, mechanism: &str) {
    let out = scram_admin(&["roundtrip", addr, user, password, mechanism, "scram-orders"]);
    assert!(
        out.contains("ROUNDTRIP sent=50 received=50 equal=true"),
        "{user} with {mechanism}: {out}"
    );
}

/// `user` is refused with Kafka's SCRAM failure message.
fn assert_refused(addr: &str, user: &str, password: &str) {
    let out = scram_admin(&["refused", addr, user, password, "SCRAM-SHA-512"]);
    assert!(
        out.contains("REFUSED") && out.contains("Authentication failed"),
        "{out}"
    );
}

/// A broker over SASL_PLAINTEXT whose `--sasl-users` bootstraps `alice`; data in `dir/data`.
fn start_broker(dir: &Path) -> BrokerProcess {
    let users = dir.join("users");
    std::fs::write(&users, format!("alice:{ALICE}\n")).unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    let users = users.display().to_string();
    BrokerProcess::start(
        &dir.join("data"),
        &["--sasl-users", &users, "--sasl-plain-without-tls"],
    )
}

#[test]
fn an_admin_creates_describes_and_deletes_scram_users_that_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = start_broker(dir.path());
    let addr = broker.addr();
    assert_refused(&addr, "carol", CAROL);

    let created = scram_admin(&[
        "upsert",
        &addr,
        "alice",
        ALICE,
        "carol",
        CAROL,
        "SCRAM-SHA-512",
        "8192",
    ]);
    assert!(created.contains("ALTERED carol"), "{created}");
    assert_roundtrip(&addr, "carol", CAROL, "SCRAM-SHA-512");
    // Users made through the API can use PLAIN too (checked against the SHA-512 key).
    assert_roundtrip(&addr, "carol", CAROL, "PLAIN");

    let described = scram_admin(&["describe", &addr, "alice", ALICE, "carol", "nobody"]);
    assert!(
        described.contains("DESCRIBED carol SCRAM_SHA_512:8192"),
        "{described}"
    );
    assert!(
        described.contains("DESCRIBE-ERROR nobody RESOURCE_NOT_FOUND"),
        "{described}"
    );
    let everyone = scram_admin(&["describe", &addr, "alice", ALICE]);
    assert!(
        everyone.contains("DESCRIBED alice SCRAM_SHA_256:4096 SCRAM_SHA_512:4096")
            && everyone.contains("DESCRIBED carol SCRAM_SHA_512:8192"),
        "{everyone}"
    );

    let file = data.join("scram-credentials.json");
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(
        stored.contains("\"carol\"") && stored.contains("iterations=8192"),
        "{stored}"
    );
    assert!(
        !stored.contains(ALICE) && !stored.contains(CAROL),
        "{stored}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} is mode {mode:o}", file.display());

    broker.terminate_ok();
    broker.restart();
    assert_roundtrip(&addr, "carol", CAROL, "SCRAM-SHA-512");
    assert_roundtrip(&addr, "alice", ALICE, "SCRAM-SHA-256");

    let deleted = scram_admin(&["delete", &addr, "alice", ALICE, "carol", "SCRAM-SHA-512"]);
    assert!(deleted.contains("ALTERED carol"), "{deleted}");
    assert_refused(&addr, "carol", CAROL);
    assert!(
        !broker.log.contains(ALICE) && !broker.log.contains(CAROL),
        "a password was logged"
    );
}

/// Kafka's per-user errors reach the client: a credential that does not exist cannot be
/// deleted, too few iterations are refused.
#[test]
fn the_admin_api_answers_kafkas_errors() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let addr = broker.addr();
    let missing = scram_admin(&["delete", &addr, "alice", ALICE, "dave", "SCRAM-SHA-256"]);
    assert!(
        missing.contains("ALTER-ERROR dave RESOURCE_NOT_FOUND")
            && missing.contains("Attempt to delete a user credential that does not exist"),
        "{missing}"
    );
    let weak = scram_admin(&[
        "upsert",
        &addr,
        "alice",
        ALICE,
        "dave",
        "pw",
        "SCRAM-SHA-256",
        "1000",
    ]);
    assert!(
        weak.contains("ALTER-ERROR dave UNACCEPTABLE_CREDENTIAL Too few iterations"),
        "{weak}"
    );
}
