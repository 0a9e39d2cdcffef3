//! A connection's settings: client id, timeouts, frame and queue bounds, TLS and SASL.

use std::time::Duration;

use crate::frame;

/// Settings for a connection.
#[derive(Debug, Clone)]
pub struct MessengerConfig {
    pub client_id: String,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_frame_bytes: usize,
    /// Bound on frames queued for the writer.
    pub write_queue_frames: usize,
    /// Speak TLS on the connection (the SSL security protocol); `None`: plaintext.
    /// `Some(Err(why))`: TLS was asked for but its settings cannot be used, so every
    /// connect fails with `why` (never falls back to plaintext).
    pub tls: Option<Result<crate::tls::ClientTls, String>>,
    /// Authenticate with SASL after ApiVersions (KIP-152); `None`: no SASL.
    pub sasl: Option<SaslCredentials>,
}

/// SASL credentials; `Debug` never shows the password.
#[derive(Clone)]
pub struct SaslCredentials {
    /// PLAIN when `None`, else SCRAM with this hash.
    pub scram: Option<crate::scram::Mechanism>,
    pub username: String,
    pub password: String,
}

impl SaslCredentials {
    pub(super) fn mechanism(&self) -> &'static str {
        self.scram.map_or("PLAIN", |m| m.name())
    }
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism())
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

impl Default for MessengerConfig {
    fn default() -> Self {
        Self {
            client_id: "kmirror".into(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_frame_bytes: frame::DEFAULT_MAX_FRAME_BYTES,
            write_queue_frames: 16,
            tls: None,
            sasl: None,
        }
    }
}
