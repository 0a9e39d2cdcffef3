//! Rebuilding a run of waiting batches into one (merges, gaps, LogAppendTime) or one batch
//! into parts (splits ahead of the target's refusal), owned so that it can run on any
//! thread; a rebuilt batch is written where its sources were when it fits.

use std::sync::Arc;

use bytes::BytesMut;
use kmirror_wire::rebuild::Rebuilder;

use super::{Permits, Ready, ShapeError, Unit};
use crate::mirror::source_runs::part_offsets;

/// A run of waiting batches to rebuild into one, owned, so that it can be rebuilt on any
/// thread.
pub struct Rebuild {
    pub(super) run: Vec<Unit>,
    /// The compression codec of its batches (attribute bits 0-2).
    pub(super) codec: i16,
    /// Into how many batches its one batch is split; 1: the run is rebuilt into one.
    pub(super) parts: usize,
    /// The first batch's record count when it could go as it is alone.
    pub(super) forward_records: Option<i32>,
    pub(super) skip_below: i64,
    pub(super) batch_bytes: usize,
}

/// What rebuilding a run gave.
pub enum Rebuilt {
    Ready(Ready),
    /// One batch split into parts, in order.
    Parts(Vec<Ready>),
    /// Several batches merged came out over `batch_bytes`: the run, given back whole.
    TooLarge {
        run: Vec<Unit>,
        codec: i16,
        forward_records: Option<i32>,
    },
}

impl Rebuild {
    /// Bytes of the source batches to rebuild.
    pub fn source_bytes(&self) -> usize {
        self.run.iter().map(|u| u.data.len()).sum()
    }

    /// The compression codec of its batches, as Kafka numbers them (attribute bits 0-2).
    pub fn codec(&self) -> i16 {
        self.codec
    }

    /// Rebuilds the run into one batch in `rebuilder`'s buffers, or gives it back when
    /// several batches merged come out over `batch_bytes`.
    pub fn run(self, rebuilder: &mut Rebuilder) -> Result<Rebuilt, ShapeError> {
        if self.parts > 1 {
            return self.split(rebuilder);
        }
        let Rebuild {
            mut run,
            codec,
            forward_records,
            skip_below,
            batch_bytes,
            ..
        } = self;
        let mut permits = Permits::new();
        for u in &run {
            if let Some(p) = &u.permit {
                if !permits.last().is_some_and(|l| Arc::ptr_eq(l, p)) {
                    permits.push(p.clone());
                }
            }
        }
        // A rebuilt batch made of the last batches of its fetched buffer gets a buffer of
        // its own size, that buffer is freed, and the charge shrinks to match: a merge
        // usually saves a quarter or more (one compression context instead of many), which
        // goes back to fetching now instead of at the ack. Otherwise it is written in place.
        let own_buffer = permits.len() == 1
            && Arc::strong_count(&permits[0])
                == 1 + run
                    .iter()
                    .filter(|u| {
                        u.permit
                            .as_ref()
                            .is_some_and(|p| Arc::ptr_eq(p, &permits[0]))
                    })
                    .count();
        let first_source_offset = run[0].base_offset;
        let last = run.last().expect("non-empty");
        let (next_source_offset, leader_epoch) = (last.next_source_offset, last.leader_epoch);
        let raws: Vec<&[u8]> = run.iter().map(|u| &u.data[..]).collect();
        let rebuilt = if raws.len() > 1 {
            rebuilder.rebuild_verified(&raws, skip_below)?
        } else {
            rebuilder.rebuild(&raws, skip_below)?
        };
        drop(raws);
        let (data, records, source_runs) = match rebuilt {
            Some(r) if run.len() > 1 && r.bytes.len() > batch_bytes => {
                return Ok(Rebuilt::TooLarge {
                    run,
                    codec,
                    forward_records,
                })
            }
            Some(r) if own_buffer => (BytesMut::from(r.bytes), r.records, r.source_runs),
            Some(r) => (
                in_place(std::mem::take(&mut run), r.bytes),
                r.records,
                r.source_runs,
            ),
            None => (BytesMut::new(), 0, Vec::new()),
        };
        // Its sources' charges go with them, so the one left can shrink.
        drop(run);
        if own_buffer {
            if let Some(share) = Arc::get_mut(&mut permits[0]) {
                share.shrink_to(data.len());
            }
        }
        Ok(Rebuilt::Ready(Ready {
            data,
            records,
            first_source_offset,
            next_source_offset,
            leader_epoch,
            source_runs,
            permits,
        }))
    }

    /// Splits the run's one batch into `parts` batches, each holding the batch's memory
    /// charge until acknowledged.
    fn split(self, rebuilder: &mut Rebuilder) -> Result<Rebuilt, ShapeError> {
        let unit = self.run.into_iter().next().expect("one unit");
        let parts = rebuilder.split(&unit.data, self.parts)?;
        let records: Vec<i32> = parts.iter().map(|p| p.records).collect();
        let run = (
            unit.base_offset,
            records.iter().map(|&r| i64::from(r)).sum(),
        );
        let offsets = part_offsets(vec![run], &records, unit.next_source_offset);
        let ready = parts
            .into_iter()
            .zip(offsets)
            .map(|(part, at)| Ready {
                data: part.bytes,
                records: part.records,
                first_source_offset: at.first_source_offset,
                next_source_offset: at.next_source_offset,
                leader_epoch: unit.leader_epoch,
                source_runs: at.source_runs,
                permits: unit.permit.iter().cloned().collect(),
            })
            .collect();
        Ok(Rebuilt::Parts(ready))
    }
}

/// Puts a rebuilt batch where its source batches were, when they lie end to end in one
/// buffer (a fetched chunk) and it fits, which recompressing several batches into one
/// nearly always does: it then occupies memory already charged to the flow's budget.
/// Otherwise it is copied into a buffer of its own.
fn in_place(run: Vec<Unit>, rebuilt: &[u8]) -> BytesMut {
    let mut parts = run.into_iter().map(|u| u.data);
    let Some(mut region) = parts.next() else {
        return BytesMut::from(rebuilt);
    };
    for part in parts {
        if region.as_ptr().wrapping_add(region.len()) != part.as_ptr() {
            return BytesMut::from(rebuilt);
        }
        // Contiguous pieces of one buffer: joined without a copy.
        region.unsplit(part);
    }
    if rebuilt.len() > region.len() {
        return BytesMut::from(rebuilt);
    }
    region[..rebuilt.len()].copy_from_slice(rebuilt);
    region.truncate(rebuilt.len());
    region
}
