//! One daemon's membership in a flow's ownership group: join, sync, heartbeat, rejoin when
//! the coordinator rebalances, leave at shutdown; what it owns is published on a watch
//! channel as its [`Role`].
//!
//! Ownership is sticky: every member says in its JoinGroup metadata whether it owns the
//! flow now, and the leader gives the flow to the member that does, or to itself when
//! none does ([`assign`]). An owner gives ownership up by itself when the coordinator has
//! not answered it for the session timeout less [`FENCE_MARGIN`]: by then the coordinator
//! may have removed it and handed the flow to another member, which must not find this
//! one still mirroring.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kmirror_wire::errors::{membership, ErrorClass, Membership};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use kmirror_wire::messenger::Messenger;

use super::lease::Lease;
use crate::client::membership::{JoinAnswer, Joined, MemberLanes, Timeouts};
use crate::client::{ClientError, ClusterClient};
use crate::telemetry::stats::FlowStats;

/// The timeouts members join with: a dead owner's flow moves to a standby within about
/// the session timeout. The rebalance timeout is the session timeout plus more than a
/// heartbeat interval and its retries, so a member that does not join a rebalance again is
/// removed when its session expires (counted from its last heartbeat, as its own deadline
/// is), never earlier by the rebalance's own timer.
pub const TIMEOUTS: Timeouts = Timeouts {
    session: Duration::from_secs(10),
    rebalance: Duration::from_secs(20),
};
/// How often a member heartbeats (Kafka's consumer: a third of the session timeout).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
/// An owner stops this long before the coordinator could expire its session.
pub const FENCE_MARGIN: Duration = Duration::from_secs(2);
/// An owner's progress is written until this long before the coordinator could expire its
/// session ([`super::lease`]).
pub const LEASE_MARGIN: Duration = Duration::from_millis(500);
const _: () = assert!(LEASE_MARGIN.as_millis() < FENCE_MARGIN.as_millis());
/// The wait before joining again after an error.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// The wait after an error an operator must fix (e.g. GROUP_AUTHORIZATION_FAILED).
const FATAL_RETRY_DELAY: Duration = Duration::from_secs(10);

/// Where a daemon stands with a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not (or no longer) in a generation of the group: joining, or cut off from it.
    Joining,
    /// In the group; another member owns the flow.
    Standby,
    /// This daemon owns the flow.
    Owner,
}

/// The assignment of the member that owns the flow; the others get an empty one.
const OWNER: &[u8] = b"owner";

/// A member's JoinGroup metadata.
#[derive(serde::Serialize, serde::Deserialize)]
struct Claim {
    /// It owns the flow now.
    owner: bool,
}

/// The leader's assignment of a generation: the flow goes to the member that owns it now
/// (the first in the coordinator's order, should two claim it), else to `leader`.
pub fn assign(leader: &str, members: &[(String, Bytes)]) -> Vec<(String, Bytes)> {
    let claims =
        |metadata: &Bytes| serde_json::from_slice::<Claim>(metadata).is_ok_and(|c| c.owner);
    let owner = members
        .iter()
        .find(|(_, metadata)| claims(metadata))
        .map_or(leader, |(id, _)| id.as_str());
    members
        .iter()
        .map(|(id, _)| {
            let assignment = if id == owner {
                Bytes::from_static(OWNER)
            } else {
                Bytes::new()
            };
            (id.clone(), assignment)
        })
        .collect()
}

/// What a member does after a membership error.
#[derive(Debug, PartialEq, Eq)]
enum After {
    /// Join again as the same member (a rebalance is under way).
    Rejoin,
    /// Its generation is over: give up ownership, join again.
    Fenced,
    /// The coordinator no longer knows it: give up ownership, join as a new member.
    FencedAsNew,
    /// Try again after a short wait (coordinator moved, connection lost).
    Retry,
    /// An operator must act (e.g. an ACL); try again now and then.
    Fatal,
}

/// How one JoinGroup and SyncGroup went.
enum Joining {
    /// In a generation: its member, whether it owns the flow, and when the SyncGroup was
    /// sent.
    Done(Joined, bool, Instant),
    /// The coordinator gave the new member its id, to join again with (KIP-394).
    MemberId(String),
    /// Failed; with the member id when the JoinGroup succeeded before the SyncGroup failed.
    Failed(Option<String>, ClientError),
}

/// The membership decisions of Kafka's consumer (AbstractCoordinator), by error.
fn after(e: &ClientError) -> After {
    if let ClientError::Broker { error, .. } = e {
        match membership(error.code()) {
            Some(Membership::Rejoin) => return After::Rejoin,
            Some(Membership::Fenced) => return After::Fenced,
            Some(Membership::FencedAsNew) => return After::FencedAsNew,
            None => {}
        }
    }
    match e.class() {
        ErrorClass::Fatal => After::Fatal,
        _ => After::Retry,
    }
}

pub struct Member {
    pub target: Arc<ClusterClient>,
    pub group: String,
    /// The flow's counters: its name, and why this member is outside the group.
    pub stats: Arc<FlowStats>,
    /// Where this daemon stands with the flow now.
    pub role: watch::Sender<Role>,
    /// Cancelled to leave the group.
    pub leave: CancellationToken,
    lanes: MemberLanes,
    /// The coordinator's node id, until an error says to look it up again.
    coordinator: Mutex<Option<i32>>,
    member_id: String,
    /// What its JoinGroup says: it owned the flow in the last generation it synced, and
    /// the coordinator has not said since that it is out of it. An owner that gave the
    /// flow up only because the coordinator was slow to answer keeps claiming it, so it
    /// gets it back if it is still in that generation.
    claim: bool,
    /// When the request behind the coordinator's last answer to this member was sent.
    last_answer: Instant,
    /// Held while this member owns the flow and its session cannot have expired.
    lease: Lease,
    /// The last fatal error reported, so it is reported once.
    reported: Option<String>,
}

impl Member {
    pub fn new(
        target: Arc<ClusterClient>,
        group: String,
        stats: Arc<FlowStats>,
        role: watch::Sender<Role>,
        leave: CancellationToken,
        lease: Lease,
    ) -> Self {
        stats.set_joining(Some(format!("joining its ownership group {group}")));
        Self {
            target,
            group,
            stats,
            role,
            leave,
            lanes: MemberLanes::new(),
            coordinator: Mutex::new(None),
            member_id: String::new(),
            claim: false,
            last_answer: Instant::now(),
            lease,
            reported: None,
        }
    }

    /// Connection `lane` to the coordinator, looked up when not known.
    async fn connection(&self, lane: usize) -> Result<Arc<Messenger>, ClientError> {
        let known = *self.coordinator.lock().expect("coordinator lock");
        let node = match known {
            Some(node) => node,
            None => {
                let node = self.target.coordinator_id(&self.group).await?;
                *self.coordinator.lock().expect("coordinator lock") = Some(node);
                node
            }
        };
        self.target.broker_lane(node, lane).await
    }

    /// The coordinator answered a request sent at `sent`: the session runs from then.
    fn answered(&mut self, sent: Instant) {
        self.last_answer = sent;
        self.renew_lease();
    }

    /// An owner's lease runs until its session could expire, less [`LEASE_MARGIN`]: past
    /// the fence (an owner cut off from the coordinator still writes its progress once),
    /// never past the session (after which another daemon may own the flow).
    fn renew_lease(&self) {
        if *self.role.borrow() == Role::Owner {
            self.lease
                .hold_until((self.last_answer + TIMEOUTS.session - LEASE_MARGIN).into_std());
        }
    }

    fn set_owner(&self, owns: bool, generation_id: i32) {
        let role = if owns { Role::Owner } else { Role::Standby };
        let before = self.role.send_replace(role);
        self.renew_lease();
        if before == role {
            return;
        }
        if owns {
            tracing::info!(flow = %self.stats.name, group = %self.group, member_id = %self.member_id, generation_id, "This kmirror owns the flow now; mirroring starts.");
        } else {
            tracing::info!(flow = %self.stats.name, group = %self.group, member_id = %self.member_id, generation_id, "Another kmirror owns the flow; this one stands by.");
        }
    }

    /// Takes itself for out of the group: an owner gives the flow up at once, as another
    /// member may own it now.
    fn fence(&self, why: &dyn std::fmt::Display) {
        self.stats
            .set_joining(Some(format!("joining its ownership group {}", self.group)));
        if self.role.send_replace(Role::Joining) == Role::Owner {
            tracing::warn!(flow = %self.stats.name, group = %self.group, member_id = %self.member_id, reason = %why, "Flow ownership lost; mirroring stops (another kmirror may own the flow now).");
        }
    }

    /// When a member in a generation must take itself for out of it unless the
    /// coordinator answers first.
    fn deadline(&self) -> Option<Instant> {
        (*self.role.borrow() != Role::Joining)
            .then(|| self.last_answer + TIMEOUTS.session - FENCE_MARGIN)
    }

    /// Runs `fut`, fencing this member if the deadline passes meanwhile; `None` once the
    /// member is to leave.
    async fn guarded<T>(&self, fut: impl Future<Output = T>) -> Option<T> {
        let mut fut = std::pin::pin!(fut);
        loop {
            let deadline = self.deadline();
            tokio::select! {
                _ = self.leave.cancelled() => return None,
                v = &mut fut => return Some(v),
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.fence(&format_args!("no answer from the group coordinator for {} s", (TIMEOUTS.session - FENCE_MARGIN).as_secs()));
                }
            }
        }
    }

    /// One JoinGroup and, once in a generation, its SyncGroup.
    async fn join(&self) -> Joining {
        let m = match self.connection(self.lanes.member).await {
            Ok(m) => m,
            Err(e) => return Joining::Failed(None, e),
        };
        let claim = serde_json::to_vec(&Claim { owner: self.claim }).expect("a claim serialises");
        let joined = match self
            .target
            .join_group(&m, &self.group, &self.member_id, claim.into(), TIMEOUTS)
            .await
        {
            Ok(JoinAnswer::Joined(joined)) => joined,
            Ok(JoinAnswer::MemberIdRequired(id)) => return Joining::MemberId(id),
            Err(e) => return Joining::Failed(None, e),
        };
        let assignments = if joined.leader {
            assign(&joined.member_id, &joined.members)
        } else {
            Vec::new()
        };
        let sent = Instant::now();
        match self
            .target
            .sync_group(&m, &self.group, &joined, &assignments)
            .await
        {
            Ok(assignment) => Joining::Done(joined, assignment == OWNER, sent),
            Err(e) => Joining::Failed(Some(joined.member_id), e),
        }
    }

    /// Acts on a membership error: `None` to join again now, else how long to wait before
    /// the next request.
    fn failed(&mut self, e: ClientError) -> Option<Duration> {
        match after(&e) {
            After::Rejoin => None,
            After::Fenced => {
                self.fence(&e);
                self.claim = false;
                None
            }
            After::FencedAsNew => {
                self.fence(&e);
                self.claim = false;
                self.member_id.clear();
                None
            }
            After::Retry => {
                *self.coordinator.lock().expect("coordinator lock") = None;
                tracing::debug!(flow = %self.stats.name, group = %self.group, error = %e, "Group membership request failed; retrying.");
                Some(RETRY_DELAY)
            }
            After::Fatal => {
                *self.coordinator.lock().expect("coordinator lock") = None;
                self.stats.set_joining(Some(format!(
                    "cannot join its ownership group {}: {e}",
                    self.group
                )));
                if self.reported.as_deref() != Some(&e.to_string()) {
                    self.stats.failed("ownership", &e);
                    tracing::error!(flow = %self.stats.name, group = %self.group, error = %e, retry_in_s = FATAL_RETRY_DELAY.as_secs(), "Cannot join the flow's ownership group; the flow is not mirrored by this kmirror until it can (exclusive: true).");
                    self.reported = Some(e.to_string());
                }
                Some(FATAL_RETRY_DELAY)
            }
        }
    }

    /// Runs the membership until `leave`, then leaves the group.
    pub async fn run(mut self) {
        'member: loop {
            let Some(step) = self.guarded(self.join()).await else {
                break;
            };
            let joined = match step {
                Joining::Done(joined, owns, sent) => {
                    self.member_id = joined.member_id.clone();
                    self.answered(sent);
                    self.reported = None;
                    self.stats.set_joining(None);
                    self.claim = owns;
                    self.set_owner(owns, joined.generation_id);
                    joined
                }
                Joining::MemberId(id) => {
                    self.member_id = id;
                    continue;
                }
                Joining::Failed(member_id, e) => {
                    if let Some(id) = member_id {
                        self.member_id = id;
                    }
                    if let Some(delay) = self.failed(e) {
                        if self.guarded(tokio::time::sleep(delay)).await.is_none() {
                            break;
                        }
                    }
                    continue;
                }
            };
            // Heartbeats until a rebalance, or until this member took itself for out of
            // the generation (then it joins again to find out who owns the flow).
            let mut wait = HEARTBEAT_INTERVAL;
            while *self.role.borrow() != Role::Joining {
                if self.guarded(tokio::time::sleep(wait)).await.is_none() {
                    break 'member;
                }
                let sent = Instant::now();
                let beat = async {
                    let m = self.connection(self.lanes.member).await?;
                    self.target.heartbeat(&m, &self.group, &joined).await
                };
                let Some(beat) = self.guarded(beat).await else {
                    break 'member;
                };
                match beat {
                    Ok(()) => {
                        self.answered(sent);
                        wait = HEARTBEAT_INTERVAL;
                    }
                    Err(e) => {
                        if after(&e) == After::Rejoin {
                            // Still a member: the coordinator counts this heartbeat.
                            self.answered(sent);
                        }
                        match self.failed(e) {
                            None => break,
                            // Sooner than a heartbeat interval, so that a coordinator that
                            // moved is found again before the deadline.
                            Some(delay) => wait = delay,
                        }
                    }
                }
            }
        }
        self.role.send_replace(Role::Joining);
        self.lease.end();
        if !self.member_id.is_empty() {
            self.leave_group().await;
        }
    }

    /// LeaveGroup, on a connection of its own (a JoinGroup may be waiting on the other).
    async fn leave_group(&self) {
        let leave = async {
            let m = self.connection(self.lanes.leave).await?;
            self.target
                .leave_group(&m, &self.group, &self.member_id)
                .await
        };
        match tokio::time::timeout(Duration::from_secs(5), leave).await {
            Ok(Ok(())) => {
                tracing::debug!(flow = %self.stats.name, group = %self.group, member_id = %self.member_id, "Left the flow's ownership group.");
            }
            Ok(Err(e)) => {
                tracing::debug!(flow = %self.stats.name, group = %self.group, error = %e, "Cannot leave the flow's ownership group; the coordinator removes this member after the session timeout.");
            }
            Err(_) => {
                tracing::debug!(flow = %self.stats.name, group = %self.group, "Leaving the flow's ownership group timed out; the coordinator removes this member after the session timeout.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmirror_wire::errors::ResponseError;

    fn claim(owner: bool) -> Bytes {
        serde_json::to_vec(&Claim { owner }).unwrap().into()
    }

    fn owner_of(assignments: &[(String, Bytes)]) -> Vec<&str> {
        assignments
            .iter()
            .filter(|(_, a)| a.as_ref() == OWNER)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    #[test]
    fn the_owner_keeps_the_flow_and_without_one_the_leader_takes_it() {
        let members = vec![
            ("a".to_string(), claim(false)),
            ("b".to_string(), claim(true)),
            ("c".to_string(), Bytes::from_static(b"not json")),
        ];
        let assigned = assign("a", &members);
        assert_eq!(assigned.len(), 3, "every member gets an assignment");
        assert_eq!(owner_of(&assigned), ["b"]);
        let none = vec![
            ("a".to_string(), claim(false)),
            ("c".to_string(), claim(false)),
        ];
        assert_eq!(owner_of(&assign("c", &none)), ["c"]);
        let both = vec![
            ("a".to_string(), claim(true)),
            ("b".to_string(), claim(true)),
        ];
        assert_eq!(owner_of(&assign("b", &both)), ["a"], "exactly one owner");
    }

    #[test]
    fn membership_errors_follow_kafkas_consumer() {
        let broker = |error| ClientError::Broker {
            cluster: "t".into(),
            what: "heartbeat".into(),
            error,
            message: None,
        };
        assert_eq!(
            after(&broker(ResponseError::RebalanceInProgress)),
            After::Rejoin
        );
        assert_eq!(
            after(&broker(ResponseError::IllegalGeneration)),
            After::Fenced
        );
        assert_eq!(
            after(&broker(ResponseError::UnknownMemberId)),
            After::FencedAsNew
        );
        assert_eq!(after(&broker(ResponseError::NotCoordinator)), After::Retry);
        assert_eq!(
            after(&broker(ResponseError::GroupAuthorizationFailed)),
            After::Fatal
        );
    }
}
