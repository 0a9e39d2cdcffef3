//! One client connection to one broker: correlation-id demultiplexing, pipelining,
//! timeouts, and poisoning.
//!
//! Requests are encoded by the caller's task and handed whole to a writer task through a
//! bounded channel, so a caller that is dropped mid-request never leaves half a frame on
//! the wire (cancellation safety). A reader task routes each response frame to its waiter
//! by correlation id. Any read or write failure *poisons* the connection: every in-flight
//! and future request fails with the same error, because a stream that lost a byte cannot
//! be trusted again. Reconnecting is the caller's (the client layer's) job.
//!
//! Versions are negotiated once, at connect, with ApiVersions (with the KIP-511 fallback to
//! v0 when the broker does not know our ApiVersions version).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::frame::{self, FrameError};
use crate::frame_reader::FrameReader;
use crate::frame_writer;
use crate::parts::Frame;
use crate::versions::{BrokerVersions, NoCommonVersion};

mod config;
mod pending;

pub use config::{MessengerConfig, SaslCredentials};
pub use pending::Pending;

/// Errors of a single request on a connection.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    #[error("connection to {addr} failed: {message}")]
    Connect { addr: String, message: String },
    #[error("connection is broken: {reason}")]
    Poisoned { reason: Arc<str> },
    #[error("request {api_key} timed out after {timeout_ms} ms")]
    Timeout { api_key: i16, timeout_ms: u64 },
    #[error("{0}")]
    Frame(Arc<FrameError>),
    #[error("{0}")]
    Version(Arc<NoCommonVersion>),
    #[error("response has correlation id {got}, expected {expected}")]
    Correlation { expected: i32, got: i32 },
    /// Withdrawn by its sender before it was written: `reason` says why.
    #[error("not sent: {reason}")]
    Withdrawn { reason: Arc<str> },
}

impl From<FrameError> for RequestError {
    fn from(e: FrameError) -> Self {
        Self::Frame(Arc::new(e))
    }
}
impl From<NoCommonVersion> for RequestError {
    fn from(e: NoCommonVersion) -> Self {
        Self::Version(Arc::new(e))
    }
}

enum State {
    /// Requests on the wire by correlation id: the waiter, or `None` once it stopped
    /// waiting (timed out or cancelled), so that its late response is known and dropped.
    Open(HashMap<i32, Option<oneshot::Sender<Bytes>>>),
    Poisoned(Arc<str>),
}

struct Shared {
    state: Mutex<State>,
    /// Woken when the connection breaks (for requests held by a throttle).
    broken: tokio::sync::Notify,
}

impl Shared {
    fn poison(&self, reason: &str) {
        let mut st = self.state.lock().expect("messenger state lock");
        if let State::Open(_) = &*st {
            // Dropping the senders wakes every waiter; they then read the poison reason.
            *st = State::Poisoned(Arc::from(reason));
            self.broken.notify_waiters();
        }
    }
    fn poisoned(&self) -> Option<Arc<str>> {
        match &*self.state.lock().expect("messenger state lock") {
            State::Poisoned(r) => Some(r.clone()),
            State::Open(_) => None,
        }
    }
}

/// A connection to one broker.
pub struct Messenger {
    addr: String,
    config: MessengerConfig,
    client_id: StrBytes,
    next_correlation_id: AtomicI32,
    shared: Arc<Shared>,
    writer: mpsc::Sender<Frame>,
    versions: BrokerVersions,
    /// The ApiVersions round trip on the fresh connection: the network's round trip plus
    /// a broker's cheapest answer, before any queueing.
    round_trip: Duration,
    /// Nothing is written before this: the broker throttled the client and reads nothing
    /// from the connection until then ([`Self::throttle`]).
    not_before: Mutex<Option<tokio::time::Instant>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Messenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messenger")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for Messenger {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The ApiVersions request this client sends: from v3 Kafka refuses one without a valid
/// client software name and version (ApiVersionsRequest.isValid).
pub fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("kmirror"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")))
}

/// When a connection set up now must be ready; a timeout too long for the clock (a
/// configured `connect_timeout` of centuries) is a year.
fn setup_deadline(connect_timeout: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(connect_timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

impl Messenger {
    /// Connects over TCP (and TLS when configured) and negotiates versions, all of it
    /// within the connect timeout, as librdkafka's socket.connection.setup.timeout.ms.
    pub async fn connect(addr: &str, config: MessengerConfig) -> Result<Self, RequestError> {
        let connect_err = |message: String| RequestError::Connect {
            addr: addr.to_string(),
            message,
        };
        let deadline = setup_deadline(config.connect_timeout);
        let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err(format!("timed out after {:?}", config.connect_timeout)))?
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        match config.tls.clone() {
            None => {
                let (r, w) = stream.into_split();
                Self::over_until(addr.to_string(), r, w, config, deadline).await
            }
            Some(Err(why)) => Err(connect_err(format!("TLS settings cannot be used: {why}"))),
            Some(Ok(tls)) => {
                let name = tls
                    .server_name_for(addr)
                    .map_err(|e| connect_err(e.to_string()))?;
                let handshake = crate::tls::TlsConnector::from(tls.config).connect(name, stream);
                let stream = tokio::time::timeout_at(deadline, handshake)
                    .await
                    .map_err(|_| {
                        connect_err(format!(
                            "TLS handshake not done within the connect timeout ({:?})",
                            config.connect_timeout
                        ))
                    })?
                    .map_err(|e| {
                        // A plaintext listener reads the ClientHello as a frame far too
                        // large and closes the connection (Kafka: InvalidReceiveException).
                        let hint = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                            " (the broker closed the connection during the handshake: its listener may speak PLAINTEXT or SASL_PLAINTEXT; then leave `tls` out)"
                        } else {
                            ""
                        };
                        connect_err(format!("TLS handshake failed: {e}{hint}"))
                    })?;
                let (r, w) = tokio::io::split(stream);
                Self::over_until(addr.to_string(), r, w, config, deadline).await
            }
        }
    }

    /// Runs the protocol over any byte stream (tests use in-memory duplex streams), set up
    /// within the connect timeout.
    pub async fn over<R, W>(
        addr: String,
        read: R,
        write: W,
        config: MessengerConfig,
    ) -> Result<Self, RequestError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let deadline = setup_deadline(config.connect_timeout);
        Self::over_until(addr, read, write, config, deadline).await
    }

    /// [`Messenger::over`], set up (ApiVersions, SASL) by `deadline`: what is left of the
    /// connect timeout after the TCP connect and the TLS handshake.
    async fn over_until<R, W>(
        addr: String,
        read: R,
        write: W,
        config: MessengerConfig,
        deadline: tokio::time::Instant,
    ) -> Result<Self, RequestError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::Open(HashMap::new())),
            broken: tokio::sync::Notify::new(),
        });
        let (tx, rx) = mpsc::channel::<Frame>(config.write_queue_frames);
        let writer = tokio::spawn(write_loop(write, rx, shared.clone()));
        let reader = tokio::spawn(read_loop(
            FrameReader::new(read, config.max_frame_bytes),
            shared.clone(),
        ));
        let mut m = Self {
            client_id: StrBytes::from_string(config.client_id.clone()),
            addr,
            config,
            next_correlation_id: AtomicI32::new(1),
            shared,
            writer: tx,
            versions: BrokerVersions::default(),
            round_trip: Duration::ZERO,
            not_before: Mutex::new(None),
            tasks: vec![writer, reader],
        };
        // Setting the connection up (ApiVersions, SASL) is held to the connect timeout, as
        // librdkafka's socket.connection.setup.timeout.ms: a broker that accepts connections
        // and never answers must not cost a client the whole request timeout before it
        // tries the next bootstrap address.
        let setup_timeout = m.config.connect_timeout;
        let setup = async {
            let started = tokio::time::Instant::now();
            m.versions = m.negotiate().await?;
            m.round_trip = started.elapsed();
            if let Some(sasl) = m.config.sasl.clone() {
                m.authenticate(&sasl).await?;
            }
            Ok::<(), RequestError>(())
        };
        match tokio::time::timeout_at(deadline, setup).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(RequestError::Connect {
                    addr: m.addr.clone(),
                    message: format!(
                        "connected, but the broker did not answer ApiVersions (or SASL) within the connect timeout ({setup_timeout:?})"
                    ),
                })
            }
        }
        Ok(m)
    }

    /// SASL: SaslHandshake v1 with the mechanism, then SaslAuthenticate with
    /// `\0user\0password` (PLAIN, RFC 4616) or the two SCRAM rounds (RFC 5802), checking
    /// the server's signature. A refusal fails the connection with the broker's message,
    /// which never holds the password.
    async fn authenticate(&self, sasl: &SaslCredentials) -> Result<(), RequestError> {
        let refused = |message: String| RequestError::Connect {
            addr: self.addr.clone(),
            message,
        };
        let mechanism = sasl.mechanism();
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let version = self.versions.pick_within::<SaslHandshakeRequest>(
            kafka_protocol::protocol::VersionRange { min: 1, max: 1 },
        )?;
        let resp = self.send_at(&handshake, version).await?;
        // Kafka: ILLEGAL_SASL_STATE (34) from a listener without SASL (KafkaApis
        // handleSaslHandshakeRequest outside an exchange), UNSUPPORTED_SASL_MECHANISM (33)
        // with the listener's mechanisms otherwise.
        const ILLEGAL_SASL_STATE: i16 = 34;
        if resp.error_code == ILLEGAL_SASL_STATE {
            return Err(refused(format!(
                "SASL/{mechanism}: this listener of the broker does not use SASL (error {ILLEGAL_SASL_STATE}, ILLEGAL_SASL_STATE); remove `sasl` for it, or point the cluster at its SASL listener"
            )));
        }
        if resp.error_code != 0 {
            let enabled: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(refused(format!(
                "SASL/{mechanism} is not enabled on the broker (error {}, enabled: {})",
                resp.error_code,
                enabled.join(", ")
            )));
        }
        let version = self.versions.pick::<SaslAuthenticateRequest>()?;
        let failed = |what: String| {
            refused(format!(
                "SASL/{mechanism} authentication as {} failed: {what}",
                sasl.username
            ))
        };
        let round = |token: Vec<u8>| async move {
            let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
            let resp = self.send_at(&req, version).await?;
            if resp.error_code != 0 {
                return Err(failed(
                    resp.error_message
                        .as_deref()
                        .unwrap_or("no reason given")
                        .to_string(),
                ));
            }
            Ok(resp.auth_bytes)
        };
        match sasl.scram {
            None => {
                let mut token = Vec::with_capacity(2 + sasl.username.len() + sasl.password.len());
                token.push(0);
                token.extend_from_slice(sasl.username.as_bytes());
                token.push(0);
                token.extend_from_slice(sasl.password.as_bytes());
                round(token).await?;
            }
            Some(m) => {
                let (mut client, first) =
                    crate::scram::Client::new(m, &sasl.username, &sasl.password);
                let server_first = round(first).await?;
                let last = client.final_message(&server_first).map_err(failed)?;
                let server_final = round(last).await?;
                client.verify(&server_final).map_err(failed)?;
            }
        }
        Ok(())
    }

    async fn negotiate(&self) -> Result<BrokerVersions, RequestError> {
        let resp: ApiVersionsResponse = self.send_at(&api_versions_request(), 3).await?;
        if resp.error_code == kafka_protocol::error::ResponseError::UnsupportedVersion.code() {
            // KIP-511: the broker answered at v0 with its ApiVersions range; retry at v0.
            let resp: ApiVersionsResponse = self.send_at(&ApiVersionsRequest::default(), 0).await?;
            return Ok(BrokerVersions::from_response(&resp));
        }
        Ok(BrokerVersions::from_response(&resp))
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The round trip measured when the connection was opened (ApiVersions).
    pub fn round_trip(&self) -> Duration {
        self.round_trip
    }

    /// The least of [`Messenger::round_trip`] and `more` further ApiVersions round trips:
    /// one sample may have met a busy moment. A request that fails adds no sample.
    pub async fn least_round_trip(&self, more: usize) -> Duration {
        let mut least = self.round_trip;
        for _ in 0..more {
            let started = tokio::time::Instant::now();
            match self.send(&api_versions_request()).await {
                Ok((r, _)) if r.error_code == 0 => least = least.min(started.elapsed()),
                _ => break,
            }
        }
        least
    }

    /// What the broker advertised.
    pub fn versions(&self) -> &BrokerVersions {
        &self.versions
    }

    /// Whether the connection is still usable.
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned().is_some()
    }

    /// Sends `req` at the highest common version and waits for its response.
    pub async fn send<R: Request>(&self, req: &R) -> Result<(R::Response, i16), RequestError> {
        let version = self.versions.pick::<R>()?;
        Ok((self.send_at(req, version).await?, version))
    }

    /// Sends `req` at `version` and waits for its response.
    pub async fn send_at<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, RequestError> {
        self.enqueue_at(req, version).await?.wait().await
    }

    /// Writes `req` to the connection now and returns a handle to await its response
    /// later. Requests enqueued one after another reach the broker in that order, which
    /// is what pipelined, ordered produce needs.
    pub async fn enqueue_at<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<Pending<R>, RequestError> {
        self.enqueue_sharing(req, version, &[]).await
    }

    /// [`Self::enqueue_at`] with `shared` payloads (a Produce request's record batches):
    /// the frame references them instead of copying them, and holds them until it is
    /// written.
    pub async fn enqueue_sharing<R: Request>(
        &self,
        req: &R,
        version: i16,
        shared: &[Bytes],
    ) -> Result<Pending<R>, RequestError> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame =
            frame::encode_request_sharing(correlation_id, version, &self.client_id, req, shared)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.state.lock().expect("messenger state lock");
            match &mut *st {
                State::Open(map) => {
                    map.insert(correlation_id, Some(tx));
                }
                State::Poisoned(r) => return Err(RequestError::Poisoned { reason: r.clone() }),
            }
        }
        let pending = Pending {
            shared: self.shared.clone(),
            correlation_id,
            version,
            timeout: self.config.request_timeout,
            rx,
            _request: std::marker::PhantomData,
        };
        // If enqueueing fails, dropping `pending` removes the waiter.
        self.enqueue(frame).await?;
        Ok(pending)
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_no_response<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<(), RequestError> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = frame::encode_request(correlation_id, version, &self.client_id, req)?;
        self.enqueue(frame.into()).await
    }

    /// Holds every request on this connection for `wait` (a response's `throttle_time_ms`:
    /// KIP-219 asks a client to send nothing more to a throttled connection until then).
    pub fn throttle(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut t = self.not_before.lock().expect("throttle lock");
        *t = Some(t.map_or(until, |t| t.max(until)));
    }

    /// Waits until the connection is no longer throttled ([`Self::throttle`]), or is
    /// broken: a caller that times its request starts the clock after this.
    pub async fn throttled(&self) {
        let not_before = *self.not_before.lock().expect("throttle lock");
        let Some(t) = not_before.filter(|t| *t > tokio::time::Instant::now()) else {
            return;
        };
        let broken = self.shared.broken.notified();
        tokio::pin!(broken);
        broken.as_mut().enable();
        if self.shared.poisoned().is_some() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(t) => {}
            _ = broken => {}
        }
    }

    async fn enqueue(&self, frame: Frame) -> Result<(), RequestError> {
        self.throttled().await;
        self.writer.send(frame).await.map_err(|_| {
            let reason = self
                .shared
                .poisoned()
                .unwrap_or_else(|| Arc::from("writer stopped"));
            RequestError::Poisoned { reason }
        })
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    write: W,
    rx: mpsc::Receiver<Frame>,
    shared: Arc<Shared>,
) {
    if let Err(e) = frame_writer::write_frames(write, rx).await {
        shared.poison(&format!("write failed: {e}"));
    }
}

async fn read_loop<R: AsyncRead + Unpin>(mut frames: FrameReader<R>, shared: Arc<Shared>) {
    loop {
        let frame = match frames.next().await {
            Ok(Some(f)) => f,
            Err(e) => {
                shared.poison(&format!("read failed: {e}"));
                return;
            }
            Ok(None) => {
                shared.poison("connection closed by broker");
                return;
            }
        };
        if frame.len() < 4 {
            shared.poison("response frame shorter than its header");
            return;
        }
        let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let waiter = match &mut *shared.state.lock().expect("messenger state lock") {
            State::Open(map) => map.remove(&correlation_id),
            State::Poisoned(_) => return,
        };
        match waiter {
            Some(Some(w)) => {
                let _ = w.send(frame);
            }
            // Its request timed out or was cancelled: dropped.
            Some(None) => {}
            // No request has this id: the stream is out of step, and every later response
            // could be matched to the wrong request.
            // Kafka: NetworkClient.correlate (CorrelationIdMismatchException)
            None => {
                shared.poison(&format!(
                    "the broker answered correlation id {correlation_id}, which no request on this connection has"
                ));
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "setup_tests.rs"]
mod setup_tests;

#[cfg(test)]
#[path = "read_tests.rs"]
mod read_tests;
