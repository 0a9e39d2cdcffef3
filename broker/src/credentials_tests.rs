//! Unit tests of the SCRAM credential store: persistence, bootstrap, PLAIN verification and
//! Kafka's validation of alterations.

use super::*;

fn bootstrap(users: &[(&str, &str)]) -> SaslUsers {
    SaslUsers::from_passwords(users.iter().copied())
}

/// An upsertion as a client makes it: the password salted (PBKDF2) on the client side.
fn upsert(user: &str, m: Mechanism, password: &str, iterations: i32) -> Upsertion {
    let salt = b"client-salt-0001".to_vec();
    Upsertion {
        user: user.into(),
        mechanism: m.type_code(),
        iterations,
        salted_password: m.salted_password(password, &salt, iterations.max(1) as u32),
        salt,
    }
}

fn delete(user: &str, mechanism: i8) -> Deletion {
    Deletion {
        user: user.into(),
        mechanism,
    }
}

fn codes(results: &[(String, Result<(), ApiError>)]) -> Vec<(&str, Option<ResponseError>)> {
    results
        .iter()
        .map(|(u, r)| (u.as_str(), r.as_ref().err().map(|e| e.code)))
        .collect()
}

#[test]
fn persist_and_reload_round_trip_without_passwords_mode_600() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        CredentialStore::open(Some(dir.path()), Some(&bootstrap(&[("alice", "a-pw")]))).unwrap();
    let results = store.alter(
        vec![],
        vec![upsert("carol", Mechanism::Sha512, "c-pw", 8192)],
    );
    assert_eq!(codes(&results), vec![("carol", None)]);

    let path = dir.path().join(CREDENTIALS_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("a-pw") && !text.contains("c-pw"), "{text}");
    assert!(text.contains("iterations=8192"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let reopened = CredentialStore::open(Some(dir.path()), None).unwrap();
    assert_eq!(reopened.users(), vec!["alice", "carol"]);
    for m in Mechanism::ALL {
        assert_eq!(reopened.get("alice", m), store.get("alice", m));
    }
    assert_eq!(
        reopened.mechanisms("carol"),
        vec![(Mechanism::Sha512, 8192)]
    );
    assert!(reopened.verify_plain("carol", "c-pw"));
    assert!(reopened.verify_plain("alice", "a-pw"));
}

#[test]
fn bootstrap_adds_new_users_and_keeps_stored_ones() {
    let dir = tempfile::tempdir().unwrap();
    let first =
        CredentialStore::open(Some(dir.path()), Some(&bootstrap(&[("alice", "old")]))).unwrap();
    let alice = first.get("alice", Mechanism::Sha512).unwrap();
    // Changed through the API: the file's password no longer applies.
    first.alter(vec![delete("alice", Mechanism::Sha256.type_code())], vec![]);
    let second = CredentialStore::open(
        Some(dir.path()),
        Some(&bootstrap(&[("alice", "new"), ("bob", "b-pw")])),
    )
    .unwrap();
    assert_eq!(second.get("alice", Mechanism::Sha512), Some(alice));
    assert_eq!(second.get("alice", Mechanism::Sha256), None);
    assert!(second.verify_plain("alice", "old"));
    assert!(!second.verify_plain("alice", "new"));
    assert_eq!(
        second.mechanisms("bob"),
        vec![
            (Mechanism::Sha256, MIN_ITERATIONS),
            (Mechanism::Sha512, MIN_ITERATIONS)
        ]
    );
    assert!(second.verify_plain("bob", "b-pw"));
}

#[test]
fn plain_verifies_against_sha512_or_else_sha256() {
    let store = CredentialStore::open(None, Some(&bootstrap(&[("alice", "pw")]))).unwrap();
    assert!(store.verify_plain("alice", "pw"));
    assert!(!store.verify_plain("alice", "pw2"));
    assert!(!store.verify_plain("nobody", "pw"));
    // Only a SHA-256 credential, with another password than the SHA-512 one had.
    store.alter(vec![delete("alice", Mechanism::Sha512.type_code())], vec![]);
    store.alter(
        vec![],
        vec![upsert("dave", Mechanism::Sha256, "d-pw", 4096)],
    );
    assert!(store.verify_plain("alice", "pw"));
    assert!(store.verify_plain("dave", "d-pw"));
    assert!(!store.verify_plain("dave", "pw"));
    // SHA-512 wins when both exist.
    store.alter(
        vec![],
        vec![upsert("dave", Mechanism::Sha512, "other", 4096)],
    );
    assert!(store.verify_plain("dave", "other"));
    assert!(!store.verify_plain("dave", "d-pw"));
}

#[test]
fn alterations_are_validated_as_kafka_does() {
    let store = CredentialStore::open(None, Some(&bootstrap(&[("alice", "pw")]))).unwrap();
    let results = store.alter(
        vec![
            delete("alice", 1),
            delete("ghost", 2),
            delete("", 1),
            delete("erin", 9),
        ],
        vec![
            upsert("bob", Mechanism::Sha256, "b", 4095),
            upsert("frank", Mechanism::Sha512, "f", 16385),
            upsert("gina", Mechanism::Sha512, "g", 16384),
            upsert("gina", Mechanism::Sha256, "g", 4096),
            Upsertion {
                mechanism: 0,
                ..upsert("hal", Mechanism::Sha256, "h", 4096)
            },
            upsert("ivy", Mechanism::Sha256, "i", 4096),
        ],
    );
    use ResponseError::*;
    assert_eq!(
        codes(&results),
        vec![
            ("alice", None),
            ("ivy", None),
            ("ghost", Some(ResourceNotFound)),
            ("", Some(UnacceptableCredential)),
            ("erin", Some(UnsupportedSaslMechanism)),
            ("bob", Some(UnacceptableCredential)),
            ("frank", Some(UnacceptableCredential)),
            ("gina", Some(DuplicateResource)),
            ("hal", Some(UnsupportedSaslMechanism)),
        ]
    );
    let message = |user: &str| {
        let (_, r) = results.iter().find(|(u, _)| u == user).unwrap();
        r.as_ref().unwrap_err().message.clone()
    };
    assert_eq!(
        message("ghost"),
        "Attempt to delete a user credential that does not exist"
    );
    assert_eq!(message(""), "Username must not be empty");
    assert_eq!(message("erin"), "Unknown SCRAM mechanism");
    assert_eq!(message("bob"), "Too few iterations");
    assert_eq!(message("frank"), "Too many iterations");
    assert_eq!(
        message("gina"),
        "A user credential cannot be altered twice in the same request"
    );
    // Applied: alice lost SHA-256 only, ivy exists, the refused ones do not.
    assert_eq!(store.mechanisms("alice"), vec![(Mechanism::Sha512, 4096)]);
    assert_eq!(store.users(), vec!["alice", "ivy"]);
    // Deleting a user's last credential removes the user.
    let results = store.alter(vec![delete("ivy", 1)], vec![]);
    assert_eq!(codes(&results), vec![("ivy", None)]);
    assert_eq!(store.users(), vec!["alice"]);
}
