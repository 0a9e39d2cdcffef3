//! JoinGroup and SyncGroup requests waiting for their group's state machine, and the
//! answers it gives them.

use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use tokio::sync::oneshot;

use super::responses;
use super::state::{Outcome, ResponderId};
use super::Inner;

/// A request waiting for the state machine's answer.
pub(super) enum Waiter {
    Join {
        version: i16,
        tx: oneshot::Sender<JoinGroupResponse>,
    },
    Sync {
        version: i16,
        tx: oneshot::Sender<SyncGroupResponse>,
    },
}

impl Inner {
    /// A JoinGroup at `version` waiting for its answer.
    pub(super) fn register_join(
        &mut self,
        version: i16,
    ) -> (ResponderId, oneshot::Receiver<JoinGroupResponse>) {
        self.register(|tx| Waiter::Join { version, tx })
    }

    /// A SyncGroup at `version` waiting for its answer.
    pub(super) fn register_sync(
        &mut self,
        version: i16,
    ) -> (ResponderId, oneshot::Receiver<SyncGroupResponse>) {
        self.register(|tx| Waiter::Sync { version, tx })
    }

    fn register<T>(
        &mut self,
        waiter: impl FnOnce(oneshot::Sender<T>) -> Waiter,
    ) -> (ResponderId, oneshot::Receiver<T>) {
        let (tx, rx) = oneshot::channel();
        let id = self.next_responder;
        self.next_responder += 1;
        self.waiters.insert(id, waiter(tx));
        (id, rx)
    }

    /// Sends answers to waiting requests (a dropped receiver is a gone client).
    pub(super) fn dispatch(&mut self, outcomes: Vec<Outcome>) {
        for outcome in outcomes {
            match outcome {
                Outcome::Join(id, result) => match self.waiters.remove(&id) {
                    Some(Waiter::Join { version, tx }) => {
                        let _ = tx.send(responses::join_response(result, version));
                    }
                    other => tracing::warn!(
                        responder = id,
                        found = other.is_some(),
                        "No JoinGroup waiter for an outcome."
                    ),
                },
                Outcome::Sync(id, result) => match self.waiters.remove(&id) {
                    Some(Waiter::Sync { version, tx }) => {
                        let _ = tx.send(responses::sync_response(result, version));
                    }
                    other => tracing::warn!(
                        responder = id,
                        found = other.is_some(),
                        "No SyncGroup waiter for an outcome."
                    ),
                },
            }
        }
    }
}
