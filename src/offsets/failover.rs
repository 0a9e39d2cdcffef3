//! `kmirror failover`: moves a consumer group to a flow's target cluster at exactly the
//! positions it had on the source.
//!
//! 1. The group's committed source offsets: from the source, or, when the source does not
//!    answer (the datacenter is down), the ones the flow's group sync last read and kept
//!    with its progress.
//! 2. Waits (up to `--timeout`, showing progress) until every one of them is mirrored,
//!    re-reading the flow's progress from the target; an offset that cannot be translated
//!    (below the source log start, or before the offset map began) fails at once. With the
//!    source down the mirror cannot progress: where the group had read past it, the
//!    failover fails at once, saying how many records never reached the target, unless
//!    `--to-mirrored-end`, which commits the end of what was mirrored there.
//! 3. Refuses while the target group has active members: its consumers own its offsets;
//!    and, unless `--allow-rewind`, where the target group is already ahead of the
//!    translated offsets (it has consumed there since, e.g. after an earlier failover).
//! 4. Commits the translated offsets, with each commit's metadata (as read from the
//!    source, or as the group sync kept it), to the same group on the target (not with
//!    `--dry-run`) and prints what it did. Anything it could not do is an error (exit 1).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use kmirror_wire::backoff::{Backoff, BackoffConfig};
use kmirror_wire::errors::ErrorClass;

use crate::client::groups::Committed;
use crate::client::ClientError;
use crate::config::Topology;
use crate::mirror::progress::Progress;
use crate::offsets::cli::{find_flow, flow_offsets};
use crate::offsets::report::{render, FlowOffsets, PartitionOffsets};
use crate::offsets::Translation;

/// How long the source may take to answer before its stored offsets are used.
const SOURCE_DEADLINE: Duration = Duration::from_secs(15);
/// Between two looks at the flow's progress while waiting.
const POLL: Duration = Duration::from_secs(1);

/// What `kmirror failover` was asked.
pub struct Failover {
    pub flow: String,
    pub group: String,
    pub timeout: Duration,
    pub dry_run: bool,
    /// Commit where the target group is ahead of the translation, too.
    pub allow_rewind: bool,
    /// With the source down, commit the end of what was mirrored where the group had read
    /// past it.
    pub to_mirrored_end: bool,
}

/// Where the group's source offsets came from.
enum Origin {
    Source,
    Stored { read_at_ms: i64, why: String },
}

/// Runs a failover; the text to print, or what could not be done.
pub async fn failover(topology: &Topology, args: &Failover) -> Result<String, String> {
    let flow = find_flow(topology, &args.flow)?;
    let mut offsets = flow_offsets(topology, flow).await?;
    let group = &args.group;
    let (committed, origin) = source_offsets(&offsets, group).await?;
    if committed.is_empty() {
        return Err(format!(
            "group {group} has no committed offsets on the topics flow {} mirrors",
            flow.name
        ));
    }
    let mut out = String::new();
    if let Origin::Stored { read_at_ms, why } = &origin {
        let age_s = (crate::telemetry::stats::now_ms() - read_at_ms) / 1000;
        let _ = writeln!(
            out,
            "The source cluster did not answer ({why}); using the offsets of group {group} the group sync read {age_s} s ago."
        );
    }
    let deadline = Instant::now() + args.timeout;
    let with_log_start = matches!(origin, Origin::Source);
    // Target offsets committed where the group had read past the mirror (source down,
    // `--to-mirrored-end`).
    let mut mirrored_ends: HashMap<(String, i32), i64> = HashMap::new();
    let rows = loop {
        let mut rows = Vec::new();
        for c in &committed {
            if let Some(row) = offsets
                .one(&c.topic, c.partition, c.offset, with_log_start)
                .await
            {
                rows.push(row);
            }
        }
        if let Some(bad) = rows
            .iter()
            .find(|r| matches!(r.translation, Translation::BeforeMap { .. }))
        {
            return Err(format!(
                "{} partition {} offset {} cannot be translated:\n{}",
                bad.topic,
                bad.partition,
                bad.source_offset,
                render(&rows)
            ));
        }
        let waiting: Vec<&PartitionOffsets> = rows
            .iter()
            .filter(|r| r.translation.target_offset().is_none())
            .collect();
        if waiting.is_empty() {
            break rows;
        }
        // With the source down the mirror cannot get there: waiting is pointless.
        if matches!(origin, Origin::Stored { .. }) {
            let ends = past_the_mirror(&offsets, group, &waiting, &rows, args).await?;
            let _ = writeln!(out, "{}", ends.said);
            mirrored_ends = ends.target_offsets;
            break rows;
        }
        let behind: Vec<String> = waiting.iter().map(|r| behind(r)).collect();
        // A dry run says what a failover would wait for, and does not wait.
        if args.dry_run {
            let _ = writeln!(
                out,
                "Not mirrored yet (a failover waits for these, up to --timeout): {}",
                behind.join("; ")
            );
            break rows;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} partition(s) of group {group} were not mirrored within {:?}:\n{}",
                waiting.len(),
                args.timeout,
                render(&rows)
            ));
        }
        eprintln!("waiting for the mirror: {}", behind.join("; "));
        tokio::time::sleep(POLL).await;
        reread(&mut offsets).await?;
    };
    let target = &offsets.target;
    let state = target
        .group_state(group)
        .await
        .map_err(|e| format!("cannot describe group {group} on the target: {e}"))?;
    if state.members > 0 {
        return Err(format!(
            "group {group} has {} active member(s) on the target (state {}); stop its consumers there first",
            state.members, state.state
        ));
    }
    let metadata: HashMap<(&str, i32), &str> = committed
        .iter()
        .map(|c| ((c.topic.as_str(), c.partition), c.metadata.as_str()))
        .collect();
    let commit: Vec<Committed> = rows
        .iter()
        .filter_map(|r| {
            let end = mirrored_ends.get(&(r.topic.clone(), r.partition)).copied();
            Some(Committed {
                topic: r.target_topic.clone(),
                partition: r.partition,
                offset: r.translation.target_offset().or(end)?,
                metadata: metadata
                    .get(&(r.topic.as_str(), r.partition))
                    .map_or_else(String::new, |m| m.to_string()),
            })
        })
        .collect();
    // A target group ahead of the translation has consumed there since: moving it back
    // would have its consumers read those records again.
    let current: HashMap<(String, i32), i64> = target
        .committed_offsets(group)
        .await
        .map_err(|e| format!("cannot read the offsets of group {group} on the target: {e}"))?
        .into_iter()
        .map(|c| ((c.topic, c.partition), c.offset))
        .collect();
    let backwards: Vec<String> = commit
        .iter()
        .filter_map(|c| {
            let now = *current.get(&(c.topic.clone(), c.partition))?;
            (now > c.offset).then(|| {
                format!(
                    "{} {}: at {now}, would go to {}",
                    c.topic, c.partition, c.offset
                )
            })
        })
        .collect();
    if !backwards.is_empty() {
        let said = format!(
            "group {group} on the target is ahead of the translated offsets on {} partition(s) ({}): it has consumed there since (an earlier failover?)",
            backwards.len(),
            backwards.join("; ")
        );
        if args.allow_rewind {
            let _ = writeln!(out, "{said}; moving it back (--allow-rewind).");
        } else if args.dry_run {
            let _ = writeln!(
                out,
                "{said}; a failover refuses to move it back without --allow-rewind."
            );
        } else {
            return Err(format!(
                "{said}. Not moving it back, which would have its consumers read those records again; pass --allow-rewind to do so.\n{}",
                render(&rows)
            ));
        }
    }
    let deleted = rows
        .iter()
        .filter(|r| matches!(r.translation, Translation::BelowTargetLogStart { .. }))
        .count();
    if deleted > 0 {
        let _ = writeln!(
            out,
            "On {deleted} partition(s) the target no longer holds the records from the translated offset on (its retention, or DeleteRecords, deleted them): the group goes on from the target's log start there."
        );
    }
    if args.dry_run {
        let _ = writeln!(
            out,
            "Dry run: would commit these offsets to group {group} on {}:",
            flow.target
        );
    } else {
        target.commit_offsets(group, &commit).await.map_err(|e| {
            format!("cannot commit the offsets of group {group} on the target: {e}")
        })?;
        let _ = writeln!(
            out,
            "Committed these offsets to group {group} on {}; start its consumers there.",
            flow.target
        );
    }
    out.push_str(&render(&rows));
    Ok(out)
}

/// Where the group had read past the mirror while the source is down: what to say, and the
/// target offsets of the mirror's end on those partitions to commit.
struct MirroredEnds {
    said: String,
    target_offsets: HashMap<(String, i32), i64>,
}

/// With the source down, the partitions on which the group read past what was mirrored
/// can never be translated: refused at once (not after `--timeout`), saying how many
/// records the group read there that never reached the target; with `--to-mirrored-end`
/// (or in a dry run, to show it) the end of what was mirrored there.
async fn past_the_mirror(
    offsets: &FlowOffsets,
    group: &str,
    waiting: &[&PartitionOffsets],
    rows: &[PartitionOffsets],
    args: &Failover,
) -> Result<MirroredEnds, String> {
    let mut target_offsets = HashMap::new();
    let mut unmirrored = 0i64;
    let mut ends = Vec::new();
    let mut unknown = Vec::new();
    for r in waiting {
        let Translation::NotYet { mirrored_through } = r.translation else {
            continue;
        };
        unmirrored += r.source_offset - mirrored_through;
        let end = offsets
            .one(&r.topic, r.partition, mirrored_through, false)
            .await
            .and_then(|e| e.translation.target_offset());
        match end {
            Some(end) => {
                target_offsets.insert((r.topic.clone(), r.partition), end);
                ends.push(format!("{} {}: {end}", r.target_topic, r.partition));
            }
            None => unknown.push(format!("{} {}", r.target_topic, r.partition)),
        }
    }
    let behind: Vec<String> = waiting.iter().map(|r| behind(r)).collect();
    let said = format!(
        "The source does not answer, so the mirror cannot reach where group {group} had read on {} partition(s) ({}): up to {unmirrored} record(s) it read on the source never reached the target.",
        waiting.len(),
        behind.join("; ")
    );
    // Nothing of the flow's reached a partition yet (the daemon had not acknowledged a
    // batch there when the source went down): there is no mirrored end to start from, and
    // --to-mirrored-end cannot help.
    if !unknown.is_empty() {
        return Err(format!(
            "{said} On {} the end of the mirror is not known (nothing was acknowledged there yet), so there is no end to start the group at and --to-mirrored-end cannot help; wait for the source, or set the group's offsets on those partitions of the target by hand (e.g. kafka-consumer-groups.sh --reset-offsets).\n{}",
            unknown.join(", "),
            render(rows)
        ));
    }
    if !args.to_mirrored_end && !args.dry_run {
        return Err(format!(
            "{said} Pass --to-mirrored-end to start the group where the mirror ends on those partitions ({}); should the source come back and the daemon mirror those records, the group reads them again there.\n{}",
            ends.join("; "),
            render(rows)
        ));
    }
    let how = if args.to_mirrored_end {
        "committing the end of what was mirrored there (--to-mirrored-end)"
    } else {
        "a failover refuses unless --to-mirrored-end, which commits the end of what was mirrored there"
    };
    Ok(MirroredEnds {
        said: format!("{said} {how}: {}.", ends.join("; ")),
        target_offsets,
    })
}

/// The group's committed offsets on the flow's partitions, from the source or as stored.
async fn source_offsets(
    offsets: &FlowOffsets,
    group: &str,
) -> Result<(Vec<Committed>, Origin), String> {
    let live = tokio::time::timeout(SOURCE_DEADLINE, read_while_answering(offsets, group)).await;
    let why = match live {
        Ok(Ok(committed)) => {
            let mirrored = committed
                .into_iter()
                .filter(|c| offsets.mirrors(&c.topic, c.partition))
                .collect();
            return Ok((mirrored, Origin::Source));
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {SOURCE_DEADLINE:?}"),
    };
    match offsets.progress.synced_group(group) {
        Some(stored) => Ok((
            stored
                .offsets
                .into_iter()
                .map(|(topic, partition, offset)| {
                    let metadata = stored
                        .metadata
                        .iter()
                        .find(|(t, p, _)| *t == topic && *p == partition)
                        .map_or_else(String::new, |(_, _, m)| m.clone());
                    Committed {
                        topic,
                        partition,
                        offset,
                        metadata,
                    }
                })
                .collect(),
            Origin::Stored {
                read_at_ms: stored.read_at_ms,
                why,
            },
        )),
        None => {
            let flow = &offsets.flow.name;
            // The group sync keeps what it reads of the groups the flow's filter matches.
            let kept = match &offsets.flow.groups {
                Some(g) if g.filter.matches(group) => {
                    "the group sync has not read its offsets yet".to_string()
                }
                Some(_) => "it is not one of the flow's groups (groups.include / exclude), whose offsets the group sync keeps".to_string(),
                None => "the flow has no groups block, so no group sync keeps offsets".to_string(),
            };
            Err(format!(
                "the source cluster did not answer ({why}), and flow {flow} kept no offsets of group {group}: {kept}"
            ))
        }
    }
}

/// The group's committed offsets on the source, asked again while the source answers
/// with an error worth retrying (its coordinator loading the groups after a restart, or
/// moving): the source is up, and its offsets are newer than the stored ones. A source
/// that does not answer at all is not waited for.
async fn read_while_answering(
    offsets: &FlowOffsets,
    group: &str,
) -> Result<Vec<Committed>, ClientError> {
    // Ends before SOURCE_DEADLINE, so that the last answer, not the timeout, is reported.
    let mut backoff = Backoff::new(BackoffConfig {
        max: Duration::from_secs(1),
        deadline: Some(SOURCE_DEADLINE - Duration::from_secs(2)),
        ..BackoffConfig::default()
    });
    loop {
        match offsets.source.committed_offsets(group).await {
            Err(e @ ClientError::Broker { .. }) if e.class() != ErrorClass::Fatal => {
                let Some(delay) = backoff.next_delay() else {
                    return Err(e);
                };
                tracing::debug!(group, error = %e, "The source answered with a retriable error; asking again.");
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

/// Reads the flow's progress again (the daemon keeps mirroring meanwhile).
async fn reread(offsets: &mut FlowOffsets) -> Result<(), String> {
    offsets.progress = Progress::read(&offsets.flow.name, &offsets.target, Duration::from_secs(30))
        .await
        .map_err(|e| {
            format!(
                "cannot read the progress of flow {}: {e}",
                offsets.flow.name
            )
        })?;
    Ok(())
}

/// How far the mirror is from a partition's group offset, for a failover waiting on it.
fn behind(r: &PartitionOffsets) -> String {
    match r.translation {
        Translation::NotYet { mirrored_through } => format!(
            "{} {}: mirrored below {mirrored_through}, group at {}",
            r.topic, r.partition, r.source_offset
        ),
        _ => format!("{} {}", r.topic, r.partition),
    }
}
