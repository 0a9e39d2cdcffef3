//! The broker's SCRAM server (RFC 5802/7677) and stored-credential parser on arbitrary
//! bytes: the input is a client-first message, then (after a 0xFF byte) a client-final
//! message. Any input must get an answer or an error, never a panic.
#![no_main]

use std::sync::OnceLock;

use kmirror_wire::scram::{Credential, Mechanism, Server};
use libfuzzer_sys::fuzz_target;

/// alice's credentials, derived once (PBKDF2 is the slow part of an exchange).
fn alice(mechanism: Mechanism) -> Credential {
    static CREDENTIALS: OnceLock<[Credential; 2]> = OnceLock::new();
    let [sha256, sha512] = CREDENTIALS.get_or_init(|| {
        [Mechanism::Sha256, Mechanism::Sha512]
            .map(|m| Credential::with_salt(m, "pw", b"fixed-salt".to_vec(), 4096))
    });
    match mechanism {
        Mechanism::Sha256 => sha256.clone(),
        Mechanism::Sha512 => sha512.clone(),
    }
}

fuzz_target!(|data: &[u8]| {
    let (first, last) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Credential::from_kafka_string(text);
    }
    for mechanism in [Mechanism::Sha256, Mechanism::Sha512] {
        let lookup = |user: &str| (user == "alice").then(|| alice(mechanism));
        if let Ok((server, credential, _reply)) = Server::start(mechanism, first, lookup) {
            let _ = server.finish(&credential, last);
        }
    }
});
