use super::*;

/// RFC 7677's SCRAM-SHA-256 example: the client's final message and the server's
/// signature match the RFC byte for byte.
#[test]
fn rfc_7677_example() {
    let (mut client, first) = Client::with_nonce(
        Mechanism::Sha256,
        "user",
        "pencil",
        "rOprNGfwEbeRWgbNEkqO".into(),
    );
    assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    let server_first =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    let last = client.final_message(server_first).unwrap();
    assert_eq!(
        String::from_utf8(last).unwrap(),
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    client
        .verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        .unwrap();
    assert!(client.verify(b"v=AAAA").is_err());
}

/// Whatever a client sends, the server answers with an error, never a panic: random
/// bytes, and valid messages with bytes changed, cut short or extended.
#[test]
fn malformed_client_messages_are_errors_not_panics() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let stored = Credential::new(Mechanism::Sha256, "pw", MIN_ITERATIONS);
    let lookup = |_: &str| Some(stored.clone());
    for round in 0..400 {
        let (mut client, first) = Client::new(Mechanism::Sha256, "user", "pw");
        let mut message = first.clone();
        match round % 4 {
            0 => message = (0..next() % 64).map(|_| next() as u8).collect(),
            1 => {
                let at = next() as usize % message.len();
                message[at] = next() as u8;
            }
            2 => message.truncate(next() as usize % message.len()),
            _ => message.extend((0..next() % 8).map(|_| next() as u8)),
        }
        let _ = Server::start(Mechanism::Sha256, &message, lookup);
        // A valid first round, then a damaged final message.
        let (server, credential, server_first) =
            Server::start(Mechanism::Sha256, &first, lookup).unwrap();
        let mut last = client.final_message(&server_first).unwrap();
        let at = next() as usize % last.len();
        last[at] ^= 1 + (next() % 255) as u8;
        if round % 3 == 0 {
            last.truncate(at);
        }
        assert!(server.finish(&credential, &last).is_err(), "round {round}");
    }
}

#[test]
fn a_password_verifies_against_its_credential_only() {
    for m in Mechanism::ALL {
        let stored = Credential::new(m, "s3cret", MIN_ITERATIONS);
        assert!(stored.verify_password(m, "s3cret"));
        assert!(!stored.verify_password(m, "s3cret "));
        assert!(!stored.verify_password(m, ""));
        assert_eq!(Mechanism::from_type(m.type_code()), Some(m));
    }
    assert_eq!(Mechanism::from_type(0), None);
}

/// A client-salted password gives the same credential as the password itself, and
/// Kafka's text form reads back to the same credential.
#[test]
fn salted_password_and_kafka_text_form() {
    let m = Mechanism::Sha512;
    let salt = b"0123456789abcdef".to_vec();
    let salted = m.salted_password("pw", &salt, 8192);
    let from_client = Credential::from_salted_password(m, salt.clone(), &salted, 8192);
    assert_eq!(from_client, Credential::with_salt(m, "pw", salt, 8192));
    let text = from_client.to_kafka_string();
    assert!(
        text.starts_with("salt=MDEyMzQ1Njc4OWFiY2RlZg==,stored_key="),
        "{text}"
    );
    assert!(text.ends_with(",iterations=8192"), "{text}");
    assert_eq!(Credential::from_kafka_string(&text).unwrap(), from_client);
    for bad in [
        "",
        "salt=AA==",
        "salt=AA==,stored_key=AA==,server_key=AA==,iterations=x",
    ] {
        assert!(Credential::from_kafka_string(bad).is_err(), "{bad}");
    }
}

#[test]
fn client_and_server_agree_and_a_wrong_password_fails() {
    for m in [Mechanism::Sha256, Mechanism::Sha512] {
        let stored = Credential::new(m, "s3cret", MIN_ITERATIONS);
        for (password, ok) in [("s3cret", true), ("wrong", false)] {
            let (mut client, first) = Client::new(m, "al,i=ce", password);
            let (server, credential, server_first) =
                Server::start(m, &first, |u| (u == "al,i=ce").then(|| stored.clone())).unwrap();
            assert_eq!(server.user(), "al,i=ce");
            let last = client.final_message(&server_first).unwrap();
            match server.finish(&credential, &last) {
                Ok(server_final) => {
                    assert!(ok);
                    client.verify(&server_final).unwrap();
                }
                Err(e) => {
                    assert!(!ok);
                    assert_eq!(e.0, "Authentication failed: Invalid user credentials");
                }
            }
        }
    }
}
