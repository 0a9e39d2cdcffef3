//! The connections of one cluster client: one per broker and one to a bootstrap broker,
//! opened on demand.
//!
//! No lock is held while a connection is opened (TCP connect, TLS, ApiVersions and SASL,
//! within `connect_timeout` in all): the first caller starts the attempt, later callers
//! for the same endpoint await that same attempt, and callers for other endpoints are not
//! involved at all. One dead broker therefore stalls only the requests meant for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};
use kmirror_wire::messenger::Messenger;

use super::ClientError;

/// Where a connection goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Endpoint {
    /// Any of the configured bootstrap brokers.
    Bootstrap,
    /// Connection `lane` to the broker with this node id.
    Broker(i32, usize),
}

/// Opening a connection, as a future any number of callers can await.
pub(super) type Opening = BoxFuture<'static, Result<Arc<Messenger>, ClientError>>;

enum Slot {
    Ready(Arc<Messenger>),
    Opening {
        attempt: u64,
        future: Shared<Opening>,
    },
}

/// Connections by endpoint.
#[derive(Default)]
pub(super) struct Connections {
    slots: Mutex<HashMap<Endpoint, Slot>>,
    next_attempt: AtomicU64,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slots = self.slots.lock().expect("connections lock");
        f.debug_struct("Connections")
            .field("endpoints", &slots.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Connections {
    /// The live connection to `endpoint`; if there is none, joins the attempt under way or
    /// starts one with `open` (called without awaiting, so it must only build the future).
    pub(super) async fn get(
        &self,
        endpoint: Endpoint,
        open: impl FnOnce() -> Result<Opening, ClientError>,
    ) -> Result<Arc<Messenger>, ClientError> {
        let (attempt, future) = {
            let mut slots = self.slots.lock().expect("connections lock");
            match slots.get(&endpoint) {
                Some(Slot::Ready(m)) if !m.is_poisoned() => return Ok(m.clone()),
                Some(Slot::Opening { attempt, future }) => (*attempt, future.clone()),
                _ => {
                    let attempt = self.next_attempt.fetch_add(1, Ordering::Relaxed);
                    let future = open()?.shared();
                    slots.insert(
                        endpoint,
                        Slot::Opening {
                            attempt,
                            future: future.clone(),
                        },
                    );
                    (attempt, future)
                }
            }
        };
        let result = future.await;
        let mut slots = self.slots.lock().expect("connections lock");
        let current =
            matches!(slots.get(&endpoint), Some(Slot::Opening { attempt: a, .. }) if *a == attempt);
        if current {
            match &result {
                Ok(m) => {
                    slots.insert(endpoint, Slot::Ready(m.clone()));
                }
                Err(_) => {
                    // The next caller tries again; this attempt's waiters all see its error.
                    slots.remove(&endpoint);
                }
            }
        }
        result
    }

    /// Forgets `m` as the connection to `endpoint`, so the next caller opens a new one.
    pub(super) fn forget(&self, endpoint: Endpoint, m: &Arc<Messenger>) {
        let mut slots = self.slots.lock().expect("connections lock");
        if matches!(slots.get(&endpoint), Some(Slot::Ready(r)) if Arc::ptr_eq(r, m)) {
            slots.remove(&endpoint);
        }
    }
}
