//! Reading a flow's progress: every record of `__kmirror_progress` from its log start to
//! the end it had when the load began.
//!
//! Nothing here reads an error as "no progress": ListOffsets and Fetch error codes, an
//! empty (e.g. quota-throttled) Fetch response, a leader that has not caught up, and a
//! broken connection are all retried through [`ClusterClient::retry`] (the one classifier),
//! and the load ends only at the end offset. Giving up early would start partitions from
//! `start_from` and overwrite their real progress.

use std::future::Future;

use bytes::Bytes;
use kmirror_wire::errors::ResponseError;

use super::codec::Loaded;
use super::PROGRESS_TOPIC;
use crate::client::fetch;
use crate::client::{ClientError, ClusterClient};

/// One partition's answer to a Fetch of the progress topic.
#[derive(Debug, Clone, Default)]
pub(super) struct Read {
    pub error_code: i16,
    pub high_watermark: i64,
    pub records: Bytes,
}

/// Where progress is read from: the progress topic's partition on the target cluster, or
/// a scripted sequence of answers in tests.
pub(super) trait ProgressLog {
    /// `(log start, end)` by ListOffsets (earliest, latest), error codes checked.
    fn bounds(&self) -> impl Future<Output = Result<(i64, i64), ClientError>>;
    /// One Fetch at `offset`; `None` when the response holds no partition (throttled).
    fn read(&self, offset: i64) -> impl Future<Output = Result<Option<Read>, ClientError>>;
}

/// What one successful Fetch moved to.
enum Step {
    /// Whole batches, and the offset after the last.
    Batches(Vec<Bytes>, i64),
    /// Nothing to read below this offset.
    SkipTo(i64),
}

fn incomplete(client: &ClusterClient, what: &str) -> ClientError {
    ClientError::Incomplete {
        cluster: client.name().to_string(),
        what: what.to_string(),
    }
}

/// What the daemon found unreadable in the log at `offset`: its own finding, not a broker's
/// error code, and not retried (reading it again repeats it); an operator decides.
fn unreadable(client: &ClusterClient, offset: i64, e: impl std::fmt::Display) -> ClientError {
    ClientError::Refused {
        cluster: client.name().to_string(),
        what: format!("reading {PROGRESS_TOPIC} at offset {offset}: {e}"),
    }
}

/// Reads every record of the log, retrying whatever the classifier calls retriable.
pub(super) async fn read_all<L: ProgressLog>(
    flow: &str,
    log: &L,
    client: &ClusterClient,
) -> Result<Loaded, ClientError> {
    let (mut offset, end) = client
        .retry("reading the progress topic's offsets", None, || {
            log.bounds()
        })
        .await?;
    let mut loaded = Loaded::default();
    while offset < end {
        let step = client
            .retry("reading progress", None, || read_step(log, client, offset))
            .await?;
        match step {
            Step::Batches(batches, next) => {
                // A record the daemon cannot read is its own finding, not a broker's
                // error code: an operator decides (a newer kmirror's format, or not ours).
                for b in &batches {
                    loaded
                        .apply(flow, b)
                        .map_err(|e| unreadable(client, offset, e))?;
                }
                offset = next;
            }
            Step::SkipTo(next) => offset = next.min(end),
        }
    }
    Ok(loaded)
}

async fn read_step<L: ProgressLog>(
    log: &L,
    client: &ClusterClient,
    offset: i64,
) -> Result<Step, ClientError> {
    let Some(read) = log.read(offset).await? else {
        return Err(incomplete(
            client,
            "reading progress: the Fetch response held no data (throttled?)",
        ));
    };
    if read.error_code == ResponseError::OffsetOutOfRange.code() {
        // The log start moved past `offset` (retention): what lay below is gone, and the
        // load continues from the new start. Anything else is not a move of the start.
        let (start, _) = log.bounds().await?;
        if start > offset {
            return Ok(Step::SkipTo(start));
        }
    }
    if let Some(e) =
        ClientError::from_code(client.name(), "reading progress", read.error_code, None)
    {
        return Err(e);
    }
    // A batch that cannot even be walked (its length below the v2 header, a magic other
    // than 2) is no partial answer, which the walk ends at without error: it is in the
    // log, and reading it again would only repeat it. An operator decides, as for a CRC.
    let sliced =
        fetch::slice(&read.records, offset, &[]).map_err(|e| unreadable(client, offset, e))?;
    match sliced.next_offset {
        Some(next) => Ok(Step::Batches(sliced.batches, next)),
        // An answer without error and without records while the high watermark is beyond
        // `offset` means no batch lies in between (the cleaner removed it): move on.
        None if read.records.is_empty() && read.high_watermark > offset => {
            Ok(Step::SkipTo(read.high_watermark))
        }
        // A leader behind the end we saw (after an election), or only part of a batch.
        None => Err(incomplete(
            client,
            &format!("reading progress: no whole batch at offset {offset} yet"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::{encode, Entry};
    use super::super::fixtures::{pos, sp};
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;

    use crate::client::ClientConfig;
    use kmirror_wire::backoff::BackoffConfig;
    use kmirror_wire::messenger::{MessengerConfig, RequestError};

    /// A progress log that answers from a script, in order, and records what was asked.
    #[derive(Default)]
    struct Scripted {
        bounds: Mutex<VecDeque<Result<(i64, i64), ClientError>>>,
        reads: Mutex<VecDeque<Result<Option<Read>, ClientError>>>,
        asked: Mutex<Vec<i64>>,
    }

    impl ProgressLog for Scripted {
        async fn bounds(&self) -> Result<(i64, i64), ClientError> {
            self.bounds
                .lock()
                .unwrap()
                .pop_front()
                .expect("a scripted bounds answer")
        }
        async fn read(&self, offset: i64) -> Result<Option<Read>, ClientError> {
            self.asked.lock().unwrap().push(offset);
            self.reads
                .lock()
                .unwrap()
                .pop_front()
                .expect("a scripted read answer")
        }
    }

    /// A client that never connects (no bootstrap), retrying at once.
    fn client() -> ClusterClient {
        ClusterClient::new(ClientConfig {
            cluster: "target".into(),
            bootstrap: Vec::new(),
            messenger: MessengerConfig::default(),
            backoff: BackoffConfig {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(1),
                ..BackoffConfig::default()
            },
            replication_factor: None,
        })
    }

    fn broker(error: ResponseError) -> ClientError {
        ClientError::Broker {
            cluster: "target".into(),
            what: "scripted".into(),
            error,
            message: None,
        }
    }

    /// The batch a broker would return at `base`: `entries` with their log offsets.
    fn stored(base: i64, entries: &[Entry]) -> Bytes {
        let raw = encode("f", entries, 1, 1 << 20).unwrap().remove(0).bytes;
        let mut raw = raw.to_vec();
        kmirror_wire::batch::set_base_offset(&mut raw, base);
        Bytes::from(raw)
    }

    fn data(records: Bytes, high_watermark: i64) -> Result<Option<Read>, ClientError> {
        Ok(Some(Read {
            error_code: 0,
            high_watermark,
            records,
        }))
    }

    fn code(error: ResponseError) -> Result<Option<Read>, ClientError> {
        Ok(Some(Read {
            error_code: error.code(),
            high_watermark: -1,
            records: Bytes::new(),
        }))
    }

    /// Findings 5, 6 and 12: errors on ListOffsets, error codes and empty (throttled)
    /// Fetch answers, a broken connection and a leader behind the end are all retried;
    /// the load reads to the end and keeps the newest position of every partition.
    #[tokio::test]
    async fn transient_errors_and_empty_answers_are_retried_to_the_end() {
        let log = Scripted::default();
        *log.bounds.lock().unwrap() = VecDeque::from([
            Err(broker(ResponseError::OffsetNotAvailable)),
            Err(ClientError::Request {
                cluster: "target".into(),
                source: RequestError::Connect {
                    addr: "x".into(),
                    message: "refused".into(),
                },
            }),
            Ok((0, 4)),
        ]);
        let first = stored(
            0,
            &[
                Entry::Position(sp(0), pos(5)),
                Entry::Position(sp(1), pos(7)),
            ],
        );
        let second = stored(
            2,
            &[Entry::Position(sp(0), pos(9)), Entry::Marker(Vec::new())],
        );
        *log.reads.lock().unwrap() = VecDeque::from([
            code(ResponseError::NotLeaderOrFollower),
            data(first, 4),
            Ok(None),              // throttled: an empty response
            data(Bytes::new(), 2), // a new leader whose high watermark is behind
            code(ResponseError::KafkaStorageError),
            data(second, 4),
        ]);
        let loaded = read_all("f", &log, &client()).await.unwrap();
        assert_eq!(loaded.positions.len(), 2);
        assert_eq!(loaded.positions[&sp(0)], pos(9));
        assert_eq!(loaded.positions[&sp(1)], pos(7));
        assert!(loaded.marker);
        assert_eq!(*log.asked.lock().unwrap(), [0, 0, 2, 2, 2, 2]);
    }

    /// A moved log start continues from the new start; a gap up to the high watermark (no
    /// batch left there) ends the load instead of spinning.
    #[tokio::test]
    async fn a_moved_log_start_and_a_trailing_gap_are_stepped_over() {
        let log = Scripted::default();
        *log.bounds.lock().unwrap() = VecDeque::from([Ok((0, 10)), Ok((3, 10))]);
        *log.reads.lock().unwrap() = VecDeque::from([
            code(ResponseError::OffsetOutOfRange),
            data(stored(3, &[Entry::Position(sp(0), pos(1))]), 10),
            data(Bytes::new(), 10),
        ]);
        let loaded = read_all("f", &log, &client()).await.unwrap();
        assert_eq!(loaded.positions[&sp(0)], pos(1));
        assert_eq!(*log.asked.lock().unwrap(), [0, 3, 4]);
    }

    /// A progress record the daemon cannot read ends the load with an error of its own
    /// naming the topic and offset, not with a Kafka error code the broker never sent.
    #[tokio::test]
    async fn an_unreadable_record_is_refused_not_blamed_on_the_broker() {
        use kafka_protocol::records::Compression;
        let bad = kmirror_wire::records::record(
            0,
            1,
            Some(Bytes::from_static(b"f#group:g")),
            Some(Bytes::from_static(b"not json")),
        );
        let mut raw = kmirror_wire::records::encode(&[bad], Compression::None)
            .unwrap()
            .to_vec();
        kmirror_wire::batch::set_base_offset(&mut raw, 3);
        let log = Scripted::default();
        *log.bounds.lock().unwrap() = VecDeque::from([Ok((3, 4))]);
        *log.reads.lock().unwrap() = VecDeque::from([data(Bytes::from(raw), 4)]);
        let e = read_all("f", &log, &client()).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Refused { what, .. }
                if what.contains(PROGRESS_TOPIC) && what.contains("offset 3")),
            "{e:?}"
        );
        assert_eq!(e.class(), kmirror_wire::errors::ErrorClass::Fatal);
    }

    /// A batch that fails its CRC stops the load with an error naming the topic and
    /// offset (an operator decides), never read as "no progress" there.
    #[tokio::test]
    async fn a_corrupt_batch_is_refused_naming_its_offset() {
        let log = Scripted::default();
        *log.bounds.lock().unwrap() = VecDeque::from([Ok((0, 1))]);
        let mut bad = stored(0, &[Entry::Position(sp(0), pos(5))]).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0x55;
        *log.reads.lock().unwrap() = VecDeque::from([data(Bytes::from(bad), 1)]);
        let e = read_all("f", &log, &client()).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Refused { what, .. }
                if what.contains("offset 0") && what.contains("Cyclic redundancy check")),
            "{e:?}"
        );
    }

    /// A batch that cannot be walked (here: magic 1) stops the load with an error naming
    /// the topic and offset, as a CRC failure does, instead of being read again forever.
    #[tokio::test]
    async fn an_unwalkable_batch_is_refused_not_read_again() {
        let log = Scripted::default();
        *log.bounds.lock().unwrap() = VecDeque::from([Ok((0, 1))]);
        let mut bad = stored(0, &[Entry::Position(sp(0), pos(5))]).to_vec();
        bad[16] = 1; // the magic byte
        *log.reads.lock().unwrap() = VecDeque::from([data(Bytes::from(bad), 1)]);
        let e = read_all("f", &log, &client()).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Refused { what, .. }
                if what.contains(PROGRESS_TOPIC) && what.contains("offset 0") && what.contains("magic 1")),
            "{e:?}"
        );
        assert_eq!(*log.asked.lock().unwrap(), [0]);
    }

    /// A fatal error (e.g. no permission) ends the load with that error, never as
    /// "no progress".
    #[tokio::test]
    async fn a_fatal_error_is_returned_not_read_as_empty() {
        let log = Scripted::default();
        *log.bounds.lock().unwrap() = VecDeque::from([Ok((0, 2))]);
        *log.reads.lock().unwrap() =
            VecDeque::from([code(ResponseError::TopicAuthorizationFailed)]);
        let e = read_all("f", &log, &client()).await.unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::Broker {
                    error: ResponseError::TopicAuthorizationFailed,
                    ..
                }
            ),
            "{e}"
        );
    }
}
