//! SASL authentication on the broker's listeners (KIP-152): SaslHandshake v1, then
//! SaslAuthenticate carrying PLAIN (RFC 4616) credentials, or the two rounds of
//! SCRAM-SHA-256/512 (RFC 5802/7677, [`kmirror_wire::scram`]), checked against the
//! process's [`CredentialStore`]: SCRAM against the user's credential of that mechanism,
//! PLAIN by deriving the user's SCRAM-SHA-512 (else SHA-256) StoredKey from the password.
//! No password is kept anywhere.
//!
//! `--sasl-users` ([`SaslUsers`]) is a bootstrap: its users that have no stored credential
//! get SCRAM-SHA-256 and SCRAM-SHA-512 credentials (random salt, 4096 iterations) at start,
//! which are stored; users already stored keep theirs, managed through
//! AlterUserScramCredentials from then on (see [`crate::credentials`]).
//!
//! Until a connection has authenticated only ApiVersions (once, before the handshake),
//! SaslHandshake and SaslAuthenticate are served; any other request closes it (Kafka:
//! `SaslServerAuthenticator.handleKafkaRequest`, IllegalSaslStateException), after an
//! ILLEGAL_SASL_STATE answer when it is a SaslHandshake or ApiVersions after the handshake. An unknown
//! mechanism answers UNSUPPORTED_SASL_MECHANISM with the enabled ones and closes; a wrong
//! user or password answers SASL_AUTHENTICATION_FAILED with Kafka's message and closes that
//! connection only (SCRAM: "Authentication failed: Invalid user credentials", as Kafka's
//! ScramSaslServer). The user name is logged, never the password.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Request, StrBytes, VersionRange};
use kmirror_wire::frame::{self, RequestPrefix};

use crate::credentials::{CredentialStore, UserCredentials};
use crate::dispatch::{self, Outcome};
use kmirror_wire::scram::{self, Credential, Mechanism, MIN_ITERATIONS};

/// The mechanisms this broker enables.
pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// The bootstrap users of `--sasl-users`: SCRAM-SHA-256 and SCRAM-SHA-512 credentials
/// derived from the file's passwords (random salt, 4096 iterations), never the passwords.
#[derive(Clone, Default)]
pub struct SaslUsers {
    credentials: BTreeMap<String, UserCredentials>,
}

impl std::fmt::Debug for SaslUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslUsers")
            .field("users", &self.credentials.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SaslUsers {
    /// Reads `name:password` lines (`#` starts a comment). The file must not be readable
    /// by group or others, as it holds passwords.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{shown} holds passwords but its mode is {mode:o}: make it readable by its owner only (chmod 600)"
                ));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        let mut passwords = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((name, password)) if !name.is_empty() && !password.is_empty() => {
                    passwords.insert(name, password);
                }
                _ => return Err(format!("{shown}:{}: expected name:password", index + 1)),
            }
        }
        if passwords.is_empty() {
            return Err(format!("{shown} lists no users"));
        }
        Ok(Self::from_passwords(passwords))
    }

    /// Bootstrap users from (name, password) pairs; the passwords are dropped once their
    /// credentials are derived.
    pub fn from_passwords<'a>(users: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let credentials = users
            .into_iter()
            .map(|(user, password)| {
                let by_mechanism = Mechanism::ALL
                    .into_iter()
                    .map(|m| (m, Credential::new(m, password, MIN_ITERATIONS)))
                    .collect();
                (user.to_string(), by_mechanism)
            })
            .collect();
        Self { credentials }
    }

    /// Every bootstrap user with its credentials, by name.
    pub fn credentials(&self) -> impl Iterator<Item = (&String, &UserCredentials)> {
        self.credentials.iter()
    }
}

/// Where one connection is in the SASL exchange.
#[derive(Debug, Default)]
pub enum Session {
    /// Expecting SaslHandshake (ApiVersions is allowed too).
    #[default]
    Handshake,
    /// ApiVersions answered; expecting SaslHandshake only.
    HandshakeAfterVersions,
    /// Handshake done with PLAIN; expecting SaslAuthenticate.
    Authenticate,
    /// Handshake done with SCRAM; expecting the client-first message.
    ScramFirst(Mechanism),
    /// SCRAM server-first sent; expecting the client-final message.
    ScramFinal(Box<(scram::Server, Credential)>),
    /// Authenticated as this user: requests go to the handlers.
    Done(String),
}

/// Handles `frame` while `session` is not authenticated yet; `None` passes it to the
/// request handlers (ApiVersions, or any request once authenticated).
///
/// `plain`: whether PLAIN is enabled on this listener (off without TLS unless
/// `--sasl-plain-without-tls`: PLAIN sends the password itself).
/// `api_versions`: the ApiVersions versions the broker serves.
pub(crate) async fn intercept(
    credentials: &CredentialStore,
    plain: bool,
    api_versions: VersionRange,
    session: &mut Session,
    peer: SocketAddr,
    frame: &Bytes,
) -> Option<Outcome> {
    if matches!(session, Session::Done(_)) {
        return None;
    }
    let prefix = match RequestPrefix::peek(frame) {
        Ok(p) => p,
        Err(e) => return Some(Outcome::Close(e.to_string())),
    };
    let key = ApiKey::try_from(prefix.api_key).ok();
    let version = prefix.api_version;
    match (key, &*session) {
        // Kafka: SaslServerAuthenticator.handleApiVersionsRequest (one ApiVersions answered
        // before the handshake; one at an unsupported version may be retried lower)
        (Some(ApiKey::ApiVersions), Session::Handshake) => {
            if version >= api_versions.min && version <= api_versions.max {
                *session = Session::HandshakeAfterVersions;
            }
            None
        }
        (Some(ApiKey::ApiVersions), Session::HandshakeAfterVersions) => Some(Outcome::Close(
            "a second ApiVersions before the SASL handshake".into(),
        )),
        (Some(ApiKey::SaslHandshake), Session::Handshake | Session::HandshakeAfterVersions)
            if version == 0 =>
        {
            Some(Outcome::Close(
                "SaslHandshake v0 (unframed SASL tokens, before KIP-152) is not supported".into(),
            ))
        }
        (Some(ApiKey::SaslHandshake), Session::Handshake | Session::HandshakeAfterVersions) => {
            Some(handshake(session, frame, plain).await)
        }
        (Some(ApiKey::SaslAuthenticate), Session::Authenticate) => {
            Some(authenticate(credentials, session, peer, frame).await)
        }
        (Some(ApiKey::SaslAuthenticate), Session::ScramFirst(_) | Session::ScramFinal(_)) => {
            Some(scram_round(credentials, session, peer, frame).await)
        }
        // Kafka: SaslServerAuthenticator.handleSaslToken (another request than
        // SaslAuthenticate after the handshake: its error response, then the close)
        (Some(ApiKey::SaslHandshake), _) => Some(
            illegal_state::<SaslHandshakeRequest>(
                frame,
                |code| SaslHandshakeResponse::default().with_error_code(code),
                "SaslHandshake during SASL authentication",
            )
            .await,
        ),
        (Some(ApiKey::ApiVersions), _)
            if version >= api_versions.min && version <= api_versions.max =>
        {
            Some(
                illegal_state::<ApiVersionsRequest>(
                    frame,
                    |code| ApiVersionsResponse::default().with_error_code(code),
                    "ApiVersions during SASL authentication",
                )
                .await,
            )
        }
        _ => Some(Outcome::Close(format!(
            "unexpected request (API key {}) during SASL authentication",
            prefix.api_key
        ))),
    }
}

fn body(frame: &Bytes) -> Result<(Bytes, i32, i16), Outcome> {
    let mut frame = frame.clone();
    let version = RequestPrefix::peek(&frame)
        .map_err(|e| Outcome::Close(e.to_string()))?
        .api_version;
    let header =
        frame::decode_request_header(&mut frame).map_err(|e| Outcome::Close(e.to_string()))?;
    Ok((frame, header.correlation_id, version))
}

/// Kafka: SaslServerAuthenticator.handleHandshakeRequest (a mechanism the listener does
/// not enable: UNSUPPORTED_SASL_MECHANISM with the enabled ones).
async fn handshake(session: &mut Session, frame: &Bytes, plain: bool) -> Outcome {
    let enabled: Vec<&str> = MECHANISMS
        .iter()
        .copied()
        .filter(|m| plain || *m != "PLAIN")
        .collect();
    let (mut frame, corr, version) = match body(frame) {
        Ok(b) => b,
        Err(outcome) => return outcome,
    };
    let mut accepted = false;
    let mut chosen = None;
    let outcome = dispatch::sync(&mut frame, corr, version, |r: SaslHandshakeRequest| {
        accepted = enabled.contains(&r.mechanism.as_str());
        chosen = Mechanism::from_name(r.mechanism.as_str());
        let mut response = SaslHandshakeResponse::default().with_mechanisms(
            enabled
                .iter()
                .map(|m| StrBytes::from_static_str(m))
                .collect(),
        );
        if !accepted {
            response.error_code = ResponseError::UnsupportedSaslMechanism.code();
        }
        response
    })
    .await;
    if accepted {
        *session = match chosen {
            Some(m) => Session::ScramFirst(m),
            None => Session::Authenticate,
        };
        outcome
    } else {
        close_after(outcome, "unsupported SASL mechanism")
    }
}

async fn authenticate(
    credentials: &CredentialStore,
    session: &mut Session,
    peer: SocketAddr,
    frame: &Bytes,
) -> Outcome {
    let (mut frame, corr, version) = match body(frame) {
        Ok(b) => b,
        Err(outcome) => return outcome,
    };
    let mut user = None;
    let outcome = dispatch::sync(&mut frame, corr, version, |r: SaslAuthenticateRequest| {
        // PLAIN: [authzid] NUL authcid NUL passwd (RFC 4616).
        let mut parts = r.auth_bytes.split(|&b| b == 0);
        let (authzid, authcid, password) = (parts.next(), parts.next(), parts.next());
        let name = authcid.and_then(|a| std::str::from_utf8(a).ok());
        let ok = match (authzid, name, password, parts.next()) {
            (Some(z), Some(name), Some(p), None) => {
                // Kafka's PlainSaslServer: an authorization id must equal the user.
                (z.is_empty() || z == name.as_bytes())
                    && std::str::from_utf8(p).is_ok_and(|p| credentials.verify_plain(name, p))
            }
            _ => false,
        };
        user = Some((name.unwrap_or("").to_string(), ok));
        if ok {
            SaslAuthenticateResponse::default()
        } else {
            // Kafka's PlainServerCallbackHandler message.
            refusal("Authentication failed: Invalid username or password".into())
        }
    })
    .await;
    match user {
        Some((name, true)) => {
            tracing::debug!(%peer, principal = %format!("User:{name}"), "SASL/PLAIN authentication succeeded.");
            *session = Session::Done(name);
            outcome
        }
        Some((name, false)) => {
            tracing::warn!(%peer, principal = %format!("User:{name}"), "SASL/PLAIN authentication failed: invalid username or password; closing the connection.");
            close_after(outcome, "SASL authentication failed")
        }
        None => outcome,
    }
}

/// One SCRAM round: client-first -> server-first, then client-final -> server-final.
async fn scram_round(
    credentials: &CredentialStore,
    session: &mut Session,
    peer: SocketAddr,
    frame: &Bytes,
) -> Outcome {
    let (mut frame, corr, version) = match body(frame) {
        Ok(b) => b,
        Err(outcome) => return outcome,
    };
    let state = std::mem::take(session);
    let mut next = None;
    let mut failed: Option<String> = None;
    let mut principal = String::new();
    let outcome = dispatch::sync(&mut frame, corr, version, |r: SaslAuthenticateRequest| {
        let result = match state {
            Session::ScramFirst(m) => {
                scram::Server::start(m, &r.auth_bytes, |user| credentials.get(user, m)).map(
                    |(server, credential, reply)| {
                        next = Some(Session::ScramFinal(Box::new((server, credential))));
                        reply
                    },
                )
            }
            Session::ScramFinal(exchange) => {
                let (server, credential) = *exchange;
                let user = server.user().to_string();
                principal = user.clone();
                let finished = server.finish(&credential, &r.auth_bytes);
                if finished.is_ok() {
                    next = Some(Session::Done(user));
                }
                finished
            }
            _ => Err(scram::ScramError("unexpected SCRAM state".into())),
        };
        match result {
            Ok(reply) => SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(reply)),
            Err(e) => {
                failed = Some(e.0.clone());
                refusal(e.0)
            }
        }
    })
    .await;
    match (next, failed) {
        (Some(next), None) => {
            if let Session::Done(user) = &next {
                tracing::debug!(%peer, principal = %format!("User:{user}"), "SASL/SCRAM authentication succeeded.");
            }
            *session = next;
            outcome
        }
        (_, Some(reason)) => {
            tracing::warn!(%peer, principal = %format!("User:{principal}"), %reason, "SASL/SCRAM authentication failed; closing the connection.");
            close_after(outcome, "SASL authentication failed")
        }
        (None, None) => outcome,
    }
}

/// A request out of place after the handshake (SaslHandshake again, ApiVersions): `answer`
/// with ILLEGAL_SASL_STATE, then the connection closes.
async fn illegal_state<R: Request>(
    frame: &Bytes,
    answer: impl FnOnce(i16) -> R::Response,
    reason: &str,
) -> Outcome {
    let (mut frame, corr, version) = match body(frame) {
        Ok(b) => b,
        Err(outcome) => return outcome,
    };
    let code = ResponseError::IllegalSaslState.code();
    let outcome = dispatch::sync(&mut frame, corr, version, |_: R| answer(code)).await;
    close_after(outcome, reason)
}

/// A SaslAuthenticate answer refusing the client with `message`.
fn refusal(message: String) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}

/// Sends `outcome`'s response, then closes the connection.
fn close_after(outcome: Outcome, reason: &str) -> Outcome {
    match outcome {
        Outcome::Respond(bytes) => Outcome::RespondAndClose(bytes, reason.to_string()),
        other => other,
    }
}
