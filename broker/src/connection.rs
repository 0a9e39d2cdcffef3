//! One client connection: TLS (if the listener has it), then requests read and answered one
//! at a time, in order, as Kafka's SocketServer mutes a channel from a completed receive
//! until its response is sent; SASL (if enabled) before anything else, with frames held to
//! `sasl.server.max.receive.size` until it completes. A connection is closed when it sends
//! nothing, or reads none of an answer, for `connections.max.idle.ms`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use std::future::Future;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::acl::Caller;
use crate::dispatch::{self, Outcome};
use crate::state::Broker;

/// How long a client may take to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one accepted connection until the client leaves, an error, or `shutdown`.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let tls = broker
        .config
        .tls
        .clone()
        .filter(|_| broker.protocol().tls());
    let Some(tls) = tls else {
        let (read, write) = stream.into_split();
        return serve_frames(read, write, peer, None, broker, shutdown).await;
    };
    let accept = kmirror_wire::tls::TlsAcceptor::from(tls).accept(stream);
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accept).await {
        Ok(Ok(stream)) => {
            // Kafka: DefaultKafkaPrincipalBuilder.build (SSL: the certificate's subject).
            let subject = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|leaf| kmirror_wire::tls::certificate_subject(leaf));
            let principal = subject.map(|s| format!("User:{s}"));
            if let Some(p) = &principal {
                tracing::debug!(%peer, principal = %p, "TLS client authenticated by its certificate.");
            }
            let (read, write) = tokio::io::split(stream);
            serve_frames(read, write, peer, principal, broker, shutdown).await;
        }
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "TLS handshake failed; closing the connection.");
        }
        Err(_) => {
            tracing::warn!(%peer, timeout_ms = TLS_HANDSHAKE_TIMEOUT.as_millis() as u64, "TLS handshake timed out; closing the connection.");
        }
    }
}

/// Kafka's `sasl.server.max.receive.size` default: the largest frame read before SASL
/// authentication completes (512 KiB).
pub const SASL_SERVER_MAX_RECEIVE_BYTES: usize = 512 << 10;

/// Reads requests and writes responses on one connection (plaintext or TLS);
/// `tls_principal` is the client certificate's principal.
async fn serve_frames<R, W>(
    read: R,
    mut write: W,
    peer: SocketAddr,
    tls_principal: Option<String>,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut session = crate::sasl::Session::default();
    let mut caller = Caller {
        principal: tls_principal.unwrap_or_else(|| crate::acl::ANONYMOUS.to_string()),
        host: peer.ip().to_canonical(),
    };
    let mut sasl_principal = false;
    // Until SASL authentication completes, frames are held to Kafka's
    // sasl.server.max.receive.size: an unauthenticated client cannot make the broker read
    // and decode 100 MiB requests.
    // Kafka: SaslServerAuthenticator.authenticate (saslAuthRequestMaxReceiveSize)
    let sasl_listener = broker.config.sasl.is_some() && broker.protocol().sasl();
    let mut frame_limit_raised = !sasl_listener;
    let first_limit = if sasl_listener {
        SASL_SERVER_MAX_RECEIVE_BYTES.min(broker.config.max_frame_bytes)
    } else {
        broker.config.max_frame_bytes
    };
    let mut frames = FramedRead::new(read, kmirror_wire::frame::codec(first_limit));
    // One request at a time: the next is not read until the answer to this one is written,
    // so a client that does not read its answers holds one, not a queue of them.
    // Kafka: SocketServer.Processor (the channel is muted from a completed receive until
    // its response is sent)
    // A request read while the connection was throttled, answered next.
    let mut early = None;
    loop {
        let frame = match early.take() {
            Some(f) => Ok(f),
            None => tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                f = tokio::time::timeout(broker.config.connections_max_idle, frames.next()) => f,
            },
        };
        let frame = match frame {
            // Kafka: Selector.maybeCloseOldestConnection (connections.max.idle.ms)
            Err(_) => {
                tracing::debug!(%peer, idle_ms = broker.config.connections_max_idle.as_millis() as u64, "Closing idle connection.");
                break;
            }
            Ok(frame) => frame,
        };
        let frame = match frame {
            None => break,
            Some(Ok(f)) => f.freeze(),
            // A peer that went away is routine (Kafka: Selector logs it at debug).
            Some(Err(e)) if is_disconnect(&e) => {
                tracing::debug!(%peer, error = %e, "Connection closed by the peer.");
                break;
            }
            Some(Err(e)) if is_too_large(&e) => {
                // Kafka: NetworkReceive.readFrom (InvalidReceiveException)
                let limit_bytes = if frame_limit_raised {
                    broker.config.max_frame_bytes
                } else {
                    first_limit
                };
                // The codec reads the length without taking it from the buffer.
                let size = frames
                    .read_buffer()
                    .first_chunk::<4>()
                    .map(|prefix| i32::from_be_bytes(*prefix));
                match size {
                    Some(size) if size < 0 => {
                        tracing::warn!(%peer, size, "Closing connection: invalid request size (negative).");
                    }
                    _ => {
                        tracing::warn!(%peer, size, limit_bytes, "Closing connection: a request larger than socket.request.max.bytes (or, before SASL authentication, sasl.server.max.receive.size).");
                    }
                }
                break;
            }
            Some(Err(e)) => {
                tracing::warn!(%peer, error = %e, "Closing connection: unreadable frame.");
                break;
            }
        };
        let intercepted = match &broker.config.sasl {
            Some(_) if broker.protocol().sasl() => {
                let plain = broker.protocol().tls() || broker.config.sasl_plain_without_tls;
                {
                    let api_versions = broker
                        .versions
                        .range(kafka_protocol::messages::ApiKey::ApiVersions)
                        .unwrap_or(kafka_protocol::protocol::VersionRange { min: 0, max: 0 });
                    crate::sasl::intercept(
                        &broker.credentials,
                        plain,
                        api_versions,
                        &mut session,
                        peer,
                        &frame,
                    )
                    .await
                }
            }
            _ => None,
        };
        let outcome = match intercepted {
            Some(outcome) => outcome,
            None => {
                // Kafka: SASL's authorization id is the principal, even over mTLS.
                if let crate::sasl::Session::Done(user) = &session {
                    if !sasl_principal {
                        caller.principal = format!("User:{user}");
                        sasl_principal = true;
                    }
                }
                dispatch::handle(&broker, &caller, frame).await
            }
        };
        if !frame_limit_raised && matches!(session, crate::sasl::Session::Done(_)) {
            frames
                .decoder_mut()
                .set_max_frame_length(broker.config.max_frame_bytes);
            frame_limit_raised = true;
        }
        // Counted until written: a client that reads slowly or not at all holds it.
        let _held = match &outcome {
            Outcome::Respond(bytes)
            | Outcome::RespondAndClose(bytes, _)
            | Outcome::Throttled {
                response: Some(bytes),
                ..
            } => Some(crate::response_memory::Held::count(bytes.len())),
            _ => None,
        };
        match outcome {
            Outcome::Respond(bytes) => {
                if !respond(&mut write, &bytes, peer, &broker).await {
                    break;
                }
            }
            Outcome::RespondAndClose(bytes, reason) => {
                respond(&mut write, &bytes, peer, &broker).await;
                tracing::debug!(%peer, %reason, "Closing connection after the response.");
                break;
            }
            Outcome::NoResponse => {}
            Outcome::Throttled { response, throttle } => {
                if let Some(bytes) = &response {
                    if !respond(&mut write, bytes, peer, &broker).await {
                        break;
                    }
                }
                // Kafka: RequestChannel / SocketServer (a throttled client's channel is muted
                // until its throttle time has passed). A request that arrives meanwhile
                // waits; it is said, with how long after the response it came: one the
                // client sent before it read the response (pipelined) comes at once, and a
                // KIP-219 client sends nothing after. A client that goes away is let go at
                // once, and one muted longer than connections.max.idle.ms is then read
                // again (and closed by the idle check if it stays silent).
                let muted = tokio::time::Instant::now();
                let pause = tokio::time::sleep(throttle.min(broker.config.connections_max_idle));
                tokio::pin!(pause);
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    _ = &mut pause => {}
                    f = frames.next() => {
                        let Some(Ok(f)) = f else { break };
                        let after_ms = muted.elapsed().as_millis() as u64;
                        tracing::debug!(%peer, throttle_ms = throttle.as_millis() as u64, after_ms, "A request arrived from a throttled client before its throttle time passed; it waits (KIP-219).");
                        early = Some(Some(Ok(f)));
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = &mut pause => {}
                        }
                    }
                }
            }
            Outcome::Close(reason) => {
                tracing::warn!(%peer, %reason, "Closing connection.");
                break;
            }
        }
    }
}

/// Writes one response; false when the connection is done: the write failed, or the
/// client read nothing of it for `connections.max.idle.ms`. A write under way finishes at
/// shutdown too, within the server's grace period.
async fn respond<W: AsyncWrite + Unpin>(
    write: &mut W,
    bytes: &Bytes,
    peer: SocketAddr,
    broker: &Broker,
) -> bool {
    let idle = broker.config.connections_max_idle;
    let mut write = Progressing::new(write, idle);
    match kmirror_wire::frame_writer::write_frame(&mut write, bytes).await {
        Ok(()) => true,
        // Kafka: Selector.maybeCloseOldestConnection (no activity for connections.max.idle.ms)
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            tracing::debug!(%peer, idle_ms = idle.as_millis() as u64, "Closing connection: the client reads no response.");
            false
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "Closing connection: the response could not be written.");
            false
        }
    }
}

/// A writer that fails with `TimedOut` once a write or flush has waited `idle` without
/// the client taking a byte: a slow reader keeps its connection, a stalled one does not.
struct Progressing<'a, W> {
    inner: &'a mut W,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<'a, W: AsyncWrite + Unpin> Progressing<'a, W> {
    fn new(inner: &'a mut W, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// `polled`, with the deadline moved on by progress and checked while waiting.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
        progressed: impl FnOnce(&T) -> bool,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Ready(Ok(v)) => {
                if progressed(&v) {
                    let next = tokio::time::Instant::now() + self.idle;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(v))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
                Poll::Pending => Poll::Pending,
            },
            err => err,
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Progressing<'_, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.inner).poll_write(cx, buf);
        this.watch(cx, polled, |n| *n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, polled, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.inner).poll_flush(cx);
        this.watch(cx, polled, |_| true)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Whether a read failed because the peer reset or dropped the connection.
fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    ) || is_closed_mid_frame(e)
}

/// The peer closed the connection in the middle of a frame (tokio-util's length codec at
/// the end of the stream): a client going away, as routine as a reset.
fn is_closed_mid_frame(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Other && e.to_string() == "bytes remaining on stream"
}

/// A frame whose length prefix is above the connection's limit.
fn is_too_large(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<tokio_util::codec::LengthDelimitedCodecError>())
}

#[cfg(test)]
mod read_error_tests {
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    /// The length codec's errors are told apart: a frame above the limit, and a peer
    /// gone in the middle of a frame (routine, not an unreadable frame).
    #[test]
    fn frame_errors_are_told_apart() {
        let mut codec = kmirror_wire::frame::codec(100);
        let mut big = BytesMut::from(&1_000u32.to_be_bytes()[..]);
        let e = codec.decode(&mut big).unwrap_err();
        assert!(super::is_too_large(&e) && !super::is_disconnect(&e), "{e}");
        let mut codec = kmirror_wire::frame::codec(100);
        let mut half = BytesMut::from(&[0, 0, 0, 10, 1, 2][..]);
        let e = codec.decode_eof(&mut half).unwrap_err();
        assert!(super::is_disconnect(&e) && !super::is_too_large(&e), "{e}");
    }
}
