//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) for SASL over SaslAuthenticate, as
//! Kafka's `ScramSaslClient` / `ScramSaslServer` speak it: client-first `n,,n=USER,r=NONCE`,
//! server-first `r=NONCE,s=SALT,i=ITERATIONS`, client-final `c=biws,r=NONCE,p=PROOF`,
//! server-final `v=SIGNATURE`. Primitives from ring (HMAC, SHA-2, PBKDF2, random); nothing
//! here is hand-rolled cryptography, only the message syntax.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

/// Kafka's minimum (and default) iteration count for SCRAM credentials.
pub const MIN_ITERATIONS: u32 = 4096;

/// Kafka's maximum iteration count for SCRAM credentials (ScramControlManager.MAX_ITERATIONS).
pub const MAX_ITERATIONS: u32 = 16384;

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Self::Sha256, Self::Sha512];

    /// From Kafka's `ScramMechanism` type code (1: SCRAM-SHA-256, 2: SCRAM-SHA-512), as the
    /// SCRAM credential admin APIs carry it.
    pub fn from_type(code: i8) -> Option<Self> {
        match code {
            1 => Some(Self::Sha256),
            2 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Kafka's `ScramMechanism` type code.
    pub fn type_code(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    /// From its SASL name (`SCRAM-SHA-256`, `SCRAM-SHA-512`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-256" => Some(Self::Sha256),
            "SCRAM-SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Self::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn sign(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
            .as_ref()
            .to_vec()
    }

    /// SaltedPassword = Hi(password, salt, iterations), PBKDF2 with this mechanism's HMAC
    /// (what a client sends in AlterUserScramCredentials).
    pub fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.digest().output_len()];
        let iterations = NonZeroU32::new(iterations.max(1)).expect("at least one");
        pbkdf2::derive(
            self.pbkdf2(),
            iterations,
            salt,
            password.as_bytes(),
            &mut out,
        );
        out
    }
}

/// What a server stores for a user (never the password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// A credential for `password` with a fresh random salt.
    pub fn new(mechanism: Mechanism, password: &str, iterations: u32) -> Self {
        let mut salt = vec![0; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .expect("the system random source works");
        Self::with_salt(mechanism, password, salt, iterations)
    }

    pub fn with_salt(mechanism: Mechanism, password: &str, salt: Vec<u8>, iterations: u32) -> Self {
        let salted = mechanism.salted_password(password, &salt, iterations);
        Self::from_salted_password(mechanism, salt, &salted, iterations)
    }

    /// The credential for a password the client salted itself, as AlterUserScramCredentials
    /// sends it (Kafka: `ScramFormatter.generateCredential(salt, saltedPassword, iterations)`).
    pub fn from_salted_password(
        mechanism: Mechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: u32,
    ) -> Self {
        let client_key = mechanism.sign(salted_password, b"Client Key");
        Self {
            stored_key: digest::digest(mechanism.digest(), &client_key)
                .as_ref()
                .to_vec(),
            server_key: mechanism.sign(salted_password, b"Server Key"),
            salt,
            iterations,
        }
    }

    /// Whether `password` is the one this credential was made from: SaltedPassword =
    /// PBKDF2(password, salt, iterations), ClientKey = HMAC(SaltedPassword, "Client Key"),
    /// and H(ClientKey) compared with StoredKey in constant time (for SASL/PLAIN).
    pub fn verify_password(&self, mechanism: Mechanism, password: &str) -> bool {
        let salted = mechanism.salted_password(password, &self.salt, self.iterations);
        let client_key = mechanism.sign(&salted, b"Client Key");
        let stored = digest::digest(mechanism.digest(), &client_key);
        constant_time_eq(stored.as_ref(), &self.stored_key)
    }

    /// Kafka's text form (`ScramCredentialUtils.credentialToString`), as Kafka kept it in
    /// ZooKeeper: `salt=B64,stored_key=B64,server_key=B64,iterations=N`.
    pub fn to_kafka_string(&self) -> String {
        format!(
            "salt={},stored_key={},server_key={},iterations={}",
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key),
            self.iterations
        )
    }

    /// Reads [`Self::to_kafka_string`]'s form (Kafka: `credentialFromString`): exactly the
    /// four attributes, base64 keys, a positive iteration count.
    pub fn from_kafka_string(text: &str) -> Result<Self, String> {
        let invalid = || "Credentials not valid".to_string();
        let mut fields = std::collections::HashMap::new();
        for token in text.split(',') {
            match token.split_once('=') {
                Some((key, value)) if !key.is_empty() => fields.insert(key, value),
                _ => return Err(invalid()),
            };
        }
        if fields.len() != 4 {
            return Err(invalid());
        }
        let bytes = |key: &str| {
            fields
                .get(key)
                .and_then(|v| B64.decode(v).ok())
                .ok_or_else(invalid)
        };
        Ok(Self {
            salt: bytes("salt")?,
            stored_key: bytes("stored_key")?,
            server_key: bytes("server_key")?,
            iterations: fields
                .get("iterations")
                .and_then(|i| i.parse().ok())
                .filter(|&i| i > 0)
                .ok_or_else(invalid)?,
        })
    }
}

/// Equality without an early exit, so timing does not tell how much matched (ring's
/// `constant_time::verify_slices_are_equal` is deprecated since 0.17.13).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let differs = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    differs == 0 && a.len() == b.len()
}

fn nonce() -> String {
    let mut bytes = [0u8; 24];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source works");
    B64.encode(bytes)
}

/// `saslname` escaping of RFC 5802: `=` as `=3D`, `,` as `=2C`.
fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn unescape(name: &str) -> Option<String> {
    // Every '=' must start "=2C" or "=3D".
    let stray = name
        .match_indices('=')
        .any(|(i, _)| !matches!(name.get(i + 1..i + 3), Some("2C" | "3D")));
    (!stray).then(|| name.replace("=2C", ",").replace("=3D", "="))
}

/// The value of attribute `key` (`k=value`) in a SCRAM message.
fn attribute(message: &str, key: char) -> Option<&str> {
    message
        .split(',')
        .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
}

/// The client side of one exchange.
pub struct Client {
    mechanism: Mechanism,
    password: String,
    first_bare: String,
    nonce: String,
    server_signature: Vec<u8>,
}

impl Client {
    /// Starts an exchange; the client-first message to send.
    pub fn new(mechanism: Mechanism, user: &str, password: &str) -> (Self, Vec<u8>) {
        Self::with_nonce(mechanism, user, password, nonce())
    }

    fn with_nonce(
        mechanism: Mechanism,
        user: &str,
        password: &str,
        nonce: String,
    ) -> (Self, Vec<u8>) {
        let first_bare = format!("n={},r={nonce}", escape(user));
        let message = format!("n,,{first_bare}").into_bytes();
        (
            Self {
                mechanism,
                password: password.to_string(),
                first_bare,
                nonce,
                server_signature: Vec::new(),
            },
            message,
        )
    }

    /// Answers the server-first message with the client-final message.
    pub fn final_message(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| "the server's first SCRAM message is not UTF-8".to_string())?;
        if let Some(error) = attribute(server_first, 'e') {
            return Err(format!("the server refused: {error}"));
        }
        let nonce = attribute(server_first, 'r').ok_or("no nonce from the server")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's nonce does not extend ours".into());
        }
        let salt = B64
            .decode(attribute(server_first, 's').ok_or("no salt from the server")?)
            .map_err(|_| "the server's salt is not base64".to_string())?;
        let iterations: u32 = attribute(server_first, 'i')
            .and_then(|i| i.parse().ok())
            .ok_or("no iteration count from the server")?;
        if iterations < MIN_ITERATIONS {
            return Err(format!(
                "the server asks for {iterations} iterations, fewer than {MIN_ITERATIONS}"
            ));
        }
        let m = self.mechanism;
        let salted = m.salted_password(&self.password, &salt, iterations);
        let client_key = m.sign(&salted, b"Client Key");
        let stored_key = digest::digest(m.digest(), &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = m.sign(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        self.server_signature = m.sign(&m.sign(&salted, b"Server Key"), auth_message.as_bytes());
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message (the server proves it knows the credential).
    pub fn verify(&self, server_final: &[u8]) -> Result<(), String> {
        let server_final = std::str::from_utf8(server_final)
            .map_err(|_| "the server's final SCRAM message is not UTF-8".to_string())?;
        if let Some(error) = attribute(server_final, 'e') {
            return Err(format!("the server refused: {error}"));
        }
        let v = attribute(server_final, 'v').ok_or("no server signature")?;
        match B64.decode(v) {
            Ok(sig) if sig == self.server_signature => Ok(()),
            _ => Err("the server's signature is wrong: it does not know our credential".into()),
        }
    }
}

/// The server side of one exchange, after the client-first message.
pub struct Server {
    mechanism: Mechanism,
    user: String,
    first_bare: String,
    server_first: String,
    nonce: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Why a SCRAM exchange failed (the message is safe to send to the client).
#[derive(Debug, PartialEq, Eq)]
pub struct ScramError(pub String);

impl Server {
    /// Reads a client-first message: the user name, and the server-first answer made with
    /// `lookup(user)`'s credential. An unknown user gets a made-up credential, so the
    /// exchange fails at the proof, as for a wrong password.
    pub fn start(
        mechanism: Mechanism,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<Credential>,
    ) -> Result<(Self, Credential, Vec<u8>), ScramError> {
        let bad = |what: &str| ScramError(format!("invalid SCRAM client-first message: {what}"));
        let text = std::str::from_utf8(client_first).map_err(|_| bad("not UTF-8"))?;
        // gs2 header: no channel binding ("n" or "y"), no authzid other than empty.
        let rest = text
            .strip_prefix("n,,")
            .or_else(|| text.strip_prefix("y,,"))
            .ok_or_else(|| bad("unsupported gs2 header"))?;
        let user = attribute(rest, 'n').ok_or_else(|| bad("no user name"))?;
        let user = unescape(user).ok_or_else(|| bad("bad user name escape"))?;
        let client_nonce = attribute(rest, 'r').ok_or_else(|| bad("no nonce"))?;
        let credential =
            lookup(&user).unwrap_or_else(|| Credential::new(mechanism, &nonce(), MIN_ITERATIONS));
        let nonce = format!("{client_nonce}{}", nonce());
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let message = server_first.clone().into_bytes();
        Ok((
            Self {
                mechanism,
                user,
                first_bare: rest.to_string(),
                server_first,
                nonce,
            },
            credential,
            message,
        ))
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Checks the client-final message against `credential`; the server-final message.
    pub fn finish(
        &self,
        credential: &Credential,
        client_final: &[u8],
    ) -> Result<Vec<u8>, ScramError> {
        let failed = || ScramError("Authentication failed: Invalid user credentials".into());
        let text = std::str::from_utf8(client_final).map_err(|_| failed())?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(failed)?;
        // The nonce must end with ours, as Kafka checks it (ScramSaslServer.evaluateResponse):
        // librdkafka sends its client nonce in front of the full server nonce again.
        if !attribute(without_proof, 'r').is_some_and(|r| r.ends_with(&self.nonce))
            || attribute(without_proof, 'c') != Some("biws")
        {
            return Err(failed());
        }
        let proof = B64.decode(proof).map_err(|_| failed())?;
        let m = self.mechanism;
        let auth_message = format!("{},{},{without_proof}", self.first_bare, self.server_first);
        let signature = m.sign(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(failed());
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let stored = digest::digest(m.digest(), &client_key);
        if !constant_time_eq(stored.as_ref(), &credential.stored_key) {
            return Err(failed());
        }
        let server_signature = m.sign(&credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
