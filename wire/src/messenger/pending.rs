//! A request on the wire waiting for its response: the timeout, the poisoned connection's
//! reason, and the response's header and body decoded at the request's version.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::protocol::Request;
use tokio::sync::oneshot;

use super::{RequestError, Shared, State};
use crate::frame;

/// A request on the wire whose response has not been read yet. Dropping it forgets the
/// request; its response, when it comes, is discarded (the connection stays in step).
pub struct Pending<R: Request> {
    pub(super) shared: Arc<Shared>,
    pub(super) correlation_id: i32,
    pub(super) version: i16,
    pub(super) timeout: Duration,
    pub(super) rx: oneshot::Receiver<Bytes>,
    pub(super) _request: std::marker::PhantomData<fn() -> R>,
}

impl<R: Request> std::fmt::Debug for Pending<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("correlation_id", &self.correlation_id)
            .finish()
    }
}

impl<R: Request> Pending<R> {
    /// Waits at least `timeout` for the response, e.g. for a JoinGroup, which the
    /// coordinator answers only once the rebalance completes.
    pub fn waiting_at_least(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = self.timeout.max(timeout);
        self
    }

    /// Waits for the response (up to the request timeout) and decodes it.
    pub async fn wait(mut self) -> Result<R::Response, RequestError> {
        let rx = &mut self.rx;
        let mut resp = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => {
                let reason = self
                    .shared
                    .poisoned()
                    .unwrap_or_else(|| Arc::from("closed"));
                return Err(RequestError::Poisoned { reason });
            }
            Err(_) => {
                return Err(RequestError::Timeout {
                    api_key: R::KEY,
                    timeout_ms: self.timeout.as_millis() as u64,
                })
            }
        };
        let header = frame::decode_response_header::<R::Response>(&mut resp, self.version)?;
        if header.correlation_id != self.correlation_id {
            return Err(RequestError::Correlation {
                expected: self.correlation_id,
                got: header.correlation_id,
            });
        }
        Ok(frame::decode_body(
            &mut resp,
            self.version,
            "response body",
        )?)
    }
}

impl<R: Request> Drop for Pending<R> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.shared.state.lock() {
            // Still on the wire: its response, when it comes, is dropped.
            if let State::Open(map) = &mut *st {
                if let Some(waiter) = map.get_mut(&self.correlation_id) {
                    *waiter = None;
                }
            }
        }
    }
}
