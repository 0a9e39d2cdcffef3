//! Group offset sync: every `groups.interval`, the committed offsets of the source groups a
//! flow's `groups` filter matches are translated through the flow's offset maps and
//! committed to the same group id on the target (`sync_offsets`), and written as
//! MirrorMaker 2 checkpoints (`mm2_compat`, [`super::mm2`]).
//!
//! Rules (what MirrorMaker 2's checkpoint task gets wrong is in notes/landscape.md):
//! - only partitions of topics the flow mirrors, and only offsets that translate (exact,
//!   gap, or approximate where the offset map was thinned: never past the exact offset);
//!   "not yet mirrored" waits for the next round, "below log start" and "before map" are
//!   reported;
//! - a target group with members is never moved (Kafka would refuse the admin commit
//!   anyway): its consumers own its offsets; members DescribeGroups does not show (a
//!   KIP-848 group on Kafka 4) are found by the commit's refusal, and the group is left
//!   alone the same way;
//! - one group's failure is that group's: it is reported for it and retried next round,
//!   and the other groups are synced; so is a source broker that cannot list its groups;
//! - a target offset never moves backwards unless the source group was rewound (its
//!   committed offset is below the one whose translation was last committed to the target,
//!   by this process or, through what is kept with the progress, an earlier one; so a
//!   rewind read while the target group had members still counts once they left);
//! - what is skipped is logged once per group and reason, not every round, and shown per
//!   group on `/status` and the status page;
//! - the source offsets read are kept with the flow's progress, so that `kmirror failover`
//!   can translate them when the source cluster is down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;

use kmirror_wire::errors::{membership, ResponseError};

use crate::client::groups::Committed;
use crate::client::{ClientError, ClusterClient};
use crate::config::{Flow, Groups};
use crate::mirror::progress::{Progress, SourcePartition};
use crate::offsets::mm2::{Checkpoint, Mm2Writer};
use crate::offsets::Translation;
use crate::telemetry::stats::FlowStats;

/// A failing round is logged at WARN once in this many.
const FAILED_ROUNDS_LOGGED_EVERY: u64 = 20;

/// Groups synced at the same time. A group takes four to six round trips (its source
/// offsets, the progress write, its target state and offsets, the commit): one after
/// another, 40 groups with the target 50 ms away took 15 s from the first synced to the
/// last, 16 at a time 1.7 s. Their progress writes take turns and carry every group noted
/// meanwhile, so they coalesce too.
const GROUPS_AT_ONCE: usize = 16;

/// One flow's group sync.
pub struct GroupSync {
    flow: Flow,
    groups: Groups,
    source: Arc<ClusterClient>,
    target: Arc<ClusterClient>,
    progress: Arc<Progress>,
    /// The last reason reported per group, so a reason is logged once.
    reported: HashMap<String, String>,
    /// The source brokers' listing failures of the last round, so each is logged once.
    unlisted: Vec<String>,
    /// Where `/status` shows each group's last round.
    stats: Arc<FlowStats>,
    /// MirrorMaker 2 checkpoints to write (`mm2_compat`), and the last one written per
    /// group and partition (only changes are written).
    mm2: Option<Arc<Mm2Writer>>,
    checkpointed: Mutex<HashMap<(String, SourcePartition), (i64, i64)>>,
    /// The target partitions' log starts, asked once per round for every group
    /// ([`Self::within_target_log`]).
    target_log_starts: Mutex<HashMap<(String, i32), Option<i64>>>,
}

/// What one round did for one group.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GroupRound {
    pub committed: Vec<Committed>,
    /// Partitions left alone, with why.
    pub skipped: Vec<(SourcePartition, String)>,
    /// Why the whole group was left alone.
    pub group_skipped: Option<String>,
    /// Why the group's round failed (retried next round; the other groups go on).
    pub failed: Option<String>,
}

impl GroupSync {
    pub fn new(
        flow: Flow,
        groups: Groups,
        source: Arc<ClusterClient>,
        target: Arc<ClusterClient>,
        progress: Arc<Progress>,
        stats: Arc<FlowStats>,
        mm2: Option<Arc<Mm2Writer>>,
    ) -> Self {
        Self {
            stats,
            mm2,
            checkpointed: Mutex::default(),
            target_log_starts: Mutex::default(),
            flow,
            groups,
            source,
            target,
            progress,
            reported: HashMap::new(),
            unlisted: Vec::new(),
        }
    }

    /// Syncs every `interval` until dropped; errors are logged and the next round retries.
    /// A round that fails (a cluster down) is logged at WARN the first time and every
    /// [`FAILED_ROUNDS_LOGGED_EVERY`]th time after, and its end at INFO.
    pub async fn run(mut self) {
        let mut failed_rounds = 0u64;
        loop {
            match self.round().await {
                Err(e) => {
                    failed_rounds += 1;
                    if failed_rounds % FAILED_ROUNDS_LOGGED_EVERY == 1 {
                        tracing::warn!(flow = %self.flow.name, error = %e, failed_rounds, "Group offset sync failed; retrying next round.");
                    }
                }
                Ok(_) if failed_rounds > 0 => {
                    tracing::info!(flow = %self.flow.name, failed_rounds, "Group offset sync works again.");
                    failed_rounds = 0;
                }
                Ok(_) => {}
            }
            tokio::time::sleep(self.groups.interval).await;
        }
    }

    /// One round over every matching source group.
    pub async fn round(&mut self) -> Result<HashMap<String, GroupRound>, ClientError> {
        self.target_log_starts
            .lock()
            .expect("log starts lock")
            .clear();
        let (mut groups, unlisted) = self.source.list_groups().await?;
        let unlisted: Vec<String> = unlisted.iter().map(ToString::to_string).collect();
        if unlisted != self.unlisted {
            for e in &unlisted {
                tracing::warn!(flow = %self.flow.name, error = %e, "A source broker did not list its groups; they are synced when it does.");
            }
            self.unlisted = unlisted;
        }
        groups.retain(|g| self.groups.filter.matches(g));
        let mut out = HashMap::new();
        let this = &*self;
        // Set by a failure that is not one group's: the groups not started yet wait for
        // the next round instead of each meeting it.
        let stop = &AtomicBool::new(false);
        let results: Vec<_> = futures::stream::iter(groups)
            .map(|group| async move {
                if stop.load(Ordering::Relaxed) {
                    return (group, None);
                }
                let result = this.sync_group(&group).await;
                if matches!(&result, Err(e) if !matches!(e, ClientError::Broker { .. })) {
                    stop.store(true, Ordering::Relaxed);
                }
                (group, Some(result))
            })
            .buffer_unordered(GROUPS_AT_ONCE)
            .collect()
            .await;
        // A broker's refusal for one group (no ACL for it on the target, its coordinator
        // moving or loading) is that group's: the others are synced all the same. Any
        // other failure (a cluster unreachable, the progress not written) fails the round
        // (the groups synced in it stay synced).
        let mut round_error = None;
        for (group, result) in results {
            let Some(result) = result else {
                continue;
            };
            let result = match result {
                Ok(result) => result,
                Err(e @ ClientError::Broker { .. }) => GroupRound {
                    failed: Some(format!("{e}; retried next round")),
                    ..GroupRound::default()
                },
                Err(e) => {
                    round_error.get_or_insert(e);
                    continue;
                }
            };
            self.report(&group, &result);
            out.insert(group, result);
        }
        match round_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// `wanted`'s target offsets raised to the log starts of their partitions on the
    /// target cluster, where the target deleted the records below (its own retention,
    /// which may be shorter than the source's): committed below it, the group's consumers
    /// would reset by `auto.offset.reset` (to the end, by default) and skip what the
    /// target still holds. Also for a group already committed there: the target's
    /// retention may pass it later. Each partition's log start is asked once per round,
    /// for every group, several at a time; one that does not answer leaves its offset.
    async fn within_target_log(&self, wanted: &mut [(SourcePartition, i64, Committed)]) {
        let missing: std::collections::BTreeSet<(String, i32)> = {
            let known = self.target_log_starts.lock().expect("log starts lock");
            wanted
                .iter()
                .map(|(_, _, c)| (c.topic.clone(), c.partition))
                .filter(|k| !known.contains_key(k))
                .collect()
        };
        let asked: Vec<_> = futures::stream::iter(missing)
            .map(|(topic, partition)| async move {
                let start = self.target.log_start(&topic, partition).await;
                ((topic, partition), start)
            })
            .buffer_unordered(GROUPS_AT_ONCE)
            .collect()
            .await;
        let mut known = self.target_log_starts.lock().expect("log starts lock");
        known.extend(asked);
        for (_, _, c) in wanted.iter_mut() {
            if let Some(Some(start)) = known.get(&(c.topic.clone(), c.partition)) {
                c.offset = c.offset.max(*start);
            }
        }
    }

    async fn sync_group(&self, group: &str) -> Result<GroupRound, ClientError> {
        let mut round = GroupRound::default();
        // Per partition, the source offset whose translation the target group was last
        // given (maybe by an earlier process; else what was last read, for a partition
        // with no such note): an offset below it means the source group was rewound. Not
        // what was last read: a rewind read while the target group's consumers were active
        // is still one when they have left.
        let previous: HashMap<SourcePartition, i64> = self
            .progress
            .synced_group(group)
            .map(|stored| {
                let key =
                    |(topic, partition, offset)| (SourcePartition { topic, partition }, offset);
                let mut previous: HashMap<SourcePartition, i64> =
                    stored.offsets.into_iter().map(key).collect();
                previous.extend(stored.committed.into_iter().map(key));
                previous
            })
            .unwrap_or_default();
        let mut wanted: Vec<(SourcePartition, i64, Committed)> = Vec::new();
        let mut read = Vec::new();
        let mut metadata = Vec::new();
        for c in self.source.committed_offsets(group).await? {
            let sp = SourcePartition {
                topic: c.topic.clone(),
                partition: c.partition,
            };
            let Some(translation) = self.progress.translate(&sp, c.offset, None) else {
                continue; // not a topic of this flow
            };
            read.push((c.topic.clone(), c.partition, c.offset));
            if !c.metadata.is_empty() {
                metadata.push((c.topic.clone(), c.partition, c.metadata.clone()));
            }
            match translation.target_offset() {
                Some(offset) => wanted.push((
                    sp,
                    c.offset,
                    Committed {
                        topic: self.flow.rename(&c.topic),
                        partition: c.partition,
                        offset,
                        metadata: c.metadata.clone(),
                    },
                )),
                None => round.skipped.push((sp, describe(&translation, c.offset))),
            }
        }
        // Kept with the progress, for a failover while the source is down; written before
        // anything is committed on the target, so a synced target group has them stored.
        let now = crate::telemetry::stats::now_ms();
        if !read.is_empty() && self.progress.note_group(group, read, metadata, now) {
            self.progress.write(&self.target).await?;
        }
        if wanted.is_empty() {
            return Ok(round);
        }
        self.within_target_log(&mut wanted).await;
        self.checkpoint(group, &wanted).await?;
        if !self.groups.sync_offsets {
            return Ok(round);
        }
        let state = self.target.group_state(group).await?;
        if state.members > 0 {
            round.group_skipped = Some(format!(
                "the target group has {} active member(s) (state {}); its consumers own its offsets",
                state.members, state.state
            ));
            return Ok(round);
        }
        let current: HashMap<(String, i32), (i64, String)> = self
            .target
            .committed_offsets(group)
            .await?
            .into_iter()
            .map(|c| ((c.topic, c.partition), (c.offset, c.metadata)))
            .collect();
        let mut commit = Vec::new();
        let mut sources = Vec::new();
        // Already at the translation: as good as committed.
        let mut in_sync = Vec::new();
        for (sp, source_offset, target) in wanted {
            let rewound = previous.get(&sp).is_some_and(|&last| source_offset < last);
            match current.get(&(target.topic.clone(), target.partition)) {
                // A commit's metadata can change alone (Kafka Streams' stream time).
                Some((now, metadata)) if *now == target.offset && *metadata == target.metadata => {
                    in_sync.push((sp.topic, sp.partition, source_offset));
                }
                Some(&(now, _)) if now > target.offset && !rewound => round.skipped.push((
                    sp,
                    format!(
                        "the target group is at {now}, ahead of {} (source offset {source_offset}); it is not moved backwards unless the source group is rewound",
                        target.offset
                    ),
                )),
                _ => {
                    commit.push(target);
                    sources.push((sp.topic, sp.partition, source_offset));
                }
            }
        }
        self.progress.note_committed(group, &in_sync);
        if commit.is_empty() {
            return Ok(round);
        }
        match self.target.commit_offsets(group, &commit).await {
            Ok(()) => {
                self.progress.note_committed(group, &sources);
                round.committed = commit;
            }
            // Members DescribeGroups does not show (a KIP-848 group: Kafka 4 describes it
            // as Dead) or that joined since: ConsumerGroup / ClassicGroup
            // .validateOffsetCommit refuse an admin commit to a group with members.
            Err(ClientError::Broker { error, .. }) if owned_by_members(error) => {
                round.group_skipped = Some(format!(
                    "the target group has active members (its coordinator refused the commit with {error}); its consumers own its offsets"
                ));
            }
            Err(e) => return Err(e),
        }
        Ok(round)
    }

    /// Writes MirrorMaker 2 checkpoints for the translated partitions that changed.
    async fn checkpoint(
        &self,
        group: &str,
        wanted: &[(SourcePartition, i64, Committed)],
    ) -> Result<(), ClientError> {
        let Some(mm2) = &self.mm2 else {
            return Ok(());
        };
        let changed: Vec<_> = {
            let checkpointed = self.checkpointed.lock().expect("checkpointed lock");
            wanted
                .iter()
                .filter(|(sp, source_offset, target)| {
                    let key = (group.to_string(), sp.clone());
                    checkpointed.get(&key) != Some(&(*source_offset, target.offset))
                })
                .collect()
        };
        let checkpoints: Vec<Checkpoint> = changed
            .iter()
            .map(|(_, source_offset, target)| Checkpoint {
                group: group.to_string(),
                topic: target.topic.clone(),
                partition: target.partition,
                upstream_offset: *source_offset,
                offset: target.offset,
                metadata: target.metadata.clone(),
            })
            .collect();
        mm2.checkpoints(&checkpoints).await?;
        let mut checkpointed = self.checkpointed.lock().expect("checkpointed lock");
        for (sp, source_offset, target) in changed {
            checkpointed.insert(
                (group.to_string(), sp.clone()),
                (*source_offset, target.offset),
            );
        }
        Ok(())
    }

    fn report(&mut self, group: &str, round: &GroupRound) {
        let flow = &self.flow.name;
        if !round.committed.is_empty() {
            tracing::info!(flow = %flow, group, partitions = round.committed.len(), "Synced group offsets to the target.");
        }
        if let Some(failed) = &round.failed {
            self.stats.group_synced(group, 0, Some(failed.clone()));
            if self.reported.get(group) != Some(failed) {
                tracing::warn!(flow = %flow, group, error = %failed, "Group offset sync failed for this group.");
                self.reported.insert(group.to_string(), failed.clone());
            }
            return;
        }
        let reason = round.group_skipped.clone().or_else(|| {
            (!round.skipped.is_empty()).then(|| {
                round
                    .skipped
                    .iter()
                    .map(|(sp, why)| format!("{} {}: {why}", sp.topic, sp.partition))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        });
        self.stats
            .group_synced(group, round.committed.len(), reason.clone());
        match reason {
            Some(reason) if self.reported.get(group) != Some(&same_kind(&reason)) => {
                tracing::info!(flow = %flow, group, reason = %reason, "Group offsets not synced.");
                self.reported.insert(group.to_string(), same_kind(&reason));
            }
            Some(_) => {}
            None => {
                self.reported.remove(group);
            }
        }
    }
}

/// A reason without its numbers: a group ahead of the mirror is one reason while the
/// offsets in its text change from round to round.
fn same_kind(reason: &str) -> String {
    reason.chars().filter(|c| !c.is_ascii_digit()).collect()
}

/// Whether an OffsetCommit refusal means the group has members of its own: a classic
/// member's refusals (a static member's FENCED_INSTANCE_ID too), or a KIP-848 group's
/// stale member epoch.
fn owned_by_members(error: ResponseError) -> bool {
    membership(error.code()).is_some() || error == ResponseError::StaleMemberEpoch
}

/// Why a source offset has no target offset yet, in words.
pub fn describe(translation: &Translation, source_offset: i64) -> String {
    match translation {
        Translation::NotYet { mirrored_through } => format!(
            "source offset {source_offset} is not mirrored yet (mirrored below {mirrored_through})"
        ),
        Translation::BelowLogStart { log_start, .. } => format!(
            "source offset {source_offset} is below the source log start {log_start}, which is not mirrored yet"
        ),
        Translation::BeforeMap { map_start } => format!(
            "source offset {source_offset} is before the offset map, which begins at {map_start} (not mirrored, or mirrored into another target topic)"
        ),
        Translation::Exact { target_offset } | Translation::Gap { target_offset } => {
            format!("translates to {target_offset}")
        }
        Translation::Approximate { target_offset } => {
            format!("translates to {target_offset}, at or before the exact offset (the offset map was thinned there)")
        }
        Translation::BelowTargetLogStart {
            target_offset,
            translated,
        } => format!(
            "translates to {translated}, below the target's log start {target_offset} (the target deleted those records): goes on from there"
        ),
    }
}
