//! Flow ownership (`exclusive: true`): of the kmirror processes running a flow of the same
//! name into the same target cluster, one mirrors it and the others stand by. Without it,
//! two daemons on one flow (a systemd unit left enabled on two hosts) would each mirror
//! everything, so every record would reach the target twice; MirrorMaker 2 avoids the same
//! through Kafka Connect's group.
//!
//! Each daemon joins the classic group `kmirror.<flow>` on the flow's target cluster, where
//! its progress lives, with kmirror's own protocol type ([`member`]). The member that owns
//! the flow runs it; when it stops (SIGTERM: it drains, then leaves the group) or dies (its
//! session of [`member::TIMEOUTS`] expires) a standby takes over from the progress the
//! owner stored. An owner that cannot reach the coordinator stops mirroring before its
//! session could expire, so two daemons never mirror the flow at once for longer than the
//! requests already in flight; records acknowledged after the owner's last progress write
//! are mirrored again by the next owner (at-least-once, as after a crash). An owner stopped
//! past its session (SIGSTOP, a stalled host) writes no progress when it runs again: its
//! [`lease`] lapsed, and its positions are older than those the next owner stored.

pub mod lease;
pub mod member;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::flow::FlowRunner;
use super::Drain;
use crate::client::ClusterClient;
use crate::config::Flow;
use crate::telemetry::stats::FlowStats;
use member::{Member, Role};

/// The ownership group of flow `flow` on its target cluster.
pub fn group_id(flow: &str) -> String {
    format!("kmirror.{flow}")
}

/// Runs `flow` whenever this daemon owns it, until `stop`; then drains it and leaves the
/// group, so a standby takes over at once.
pub async fn run_exclusive(
    flow: Flow,
    (source, target): (Arc<ClusterClient>, Arc<ClusterClient>),
    stats: Arc<FlowStats>,
    stop: CancellationToken,
    drain_deadline: Duration,
) {
    let group = group_id(&flow.name);
    let (role_tx, mut role) = watch::channel(Role::Joining);
    let leave = CancellationToken::new();
    let lease = lease::Lease::default();
    let member = tokio::spawn(
        Member::new(
            target.clone(),
            group.clone(),
            stats.clone(),
            role_tx,
            leave.clone(),
            lease.clone(),
        )
        .run(),
    );
    tracing::info!(flow = %flow.name, group = %group, cluster = %target.name(), "Joining the flow's ownership group (exclusive: true); the flow is mirrored once this kmirror owns it.");
    'owned: loop {
        // Until this daemon owns the flow: a standby is ready, one still joining is not.
        loop {
            let now = *role.borrow_and_update();
            stats.set_standby(now == Role::Standby);
            if now == Role::Joining {
                stats.set_started(false);
            }
            if now == Role::Owner {
                break;
            }
            tokio::select! {
                _ = stop.cancelled() => break 'owned,
                changed = role.changed() => if changed.is_err() { break 'owned },
            }
        }
        stats.set_standby(false);
        let lost = stop.child_token();
        let runner = FlowRunner::new(flow.clone(), source.clone(), target.clone(), stats.clone())
            .with_lease(lease.clone());
        let drain = Drain::new(drain_deadline);
        let mut run = std::pin::pin!(runner.run(lost.clone(), drain.clone()));
        let ended = tokio::select! {
            _ = &mut run => true,
            _ = role.wait_for(|r| *r != Role::Owner) => false,
        };
        if ended {
            // It ended by itself: stopped, or an error that needs an operator. The
            // membership stays, so no standby takes over a flow that needs one.
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = role.wait_for(|r| *r != Role::Owner) => {}
            }
        } else {
            // Another daemon may own the flow soon: nothing more is sent (what a pipeline
            // holds is dropped, to be mirrored by the next owner), and the progress of
            // what was acknowledged gets one write.
            drain.abandon();
            lost.cancel();
            run.await;
        }
        if stop.is_cancelled() {
            break;
        }
    }
    leave.cancel();
    let _ = member.await;
}
