//! The table runner: a [`Row`] is one rule, one request (or a few), one expected answer.
//!
//! Rows that need no special broker settings share one broker, each on topics of its own
//! ([`Ctx::topic`]); a row with `config` gets a broker of its own. Each row has a time
//! limit, so a broker that hangs fails the row instead of the suite.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use kmirror_broker::{BrokerConfig, RunningBroker};
use kmirror_wire::messenger::{Messenger, MessengerConfig};

use crate::common;

/// What a row observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// The error code of the answer (0 = accepted).
    Code(i16),
    /// The broker closed the connection.
    Closed,
    /// An answer whose values differ from Kafka's, described (rows that check values).
    Answer(String),
    /// A number the row reads from an accepted answer (a version, an offset, a count).
    Value(i64),
}

pub type RowFuture = Pin<Box<dyn Future<Output = Got> + Send>>;

/// One rule.
pub struct Row {
    /// What is checked, e.g. "Produce v3+: two batches for one partition".
    pub rule: &'static str,
    /// Where Kafka implements it, e.g. "LogValidator.validateBatch".
    pub kafka: &'static str,
    pub expect: Got,
    /// Broker settings for this row; `None` = the shared default broker.
    pub config: Option<fn(&mut BrokerConfig)>,
    pub run: fn(Ctx) -> RowFuture,
}

/// What a row gets: the broker's address and a fresh connection.
pub struct Ctx {
    pub addr: String,
    pub m: Messenger,
    pub prefix: String,
}

impl Ctx {
    /// A topic name no other row uses.
    pub fn topic(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// `req` at `version` on this row's connection; a closed connection is [`Got::Closed`].
    pub async fn ask<R: kafka_protocol::protocol::Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, Got> {
        self.m.send_at(req, version).await.map_err(|_| Got::Closed)
    }

    /// Another connection to the same broker.
    pub async fn connect(&self) -> Messenger {
        Messenger::connect(&self.addr, MessengerConfig::default())
            .await
            .expect("connect")
    }
}

/// A broker emulating Kafka 2.8 (ZooKeeper mode: ZkAdminManager answers admin requests).
pub fn kafka_2_8(c: &mut BrokerConfig) {
    c.emulate_kafka = kmirror_broker::KafkaRelease::V2_8;
}

/// The broker settings every row starts from: time retention off (rows use small
/// timestamps), everything else Kafka's defaults.
pub fn base_config() -> BrokerConfig {
    common::config(None)
}

async fn start(config: Option<fn(&mut BrokerConfig)>) -> RunningBroker {
    let mut c = base_config();
    if let Some(f) = config {
        f(&mut c);
    }
    kmirror_broker::start(c).await.expect("broker starts")
}

/// Runs every row; panics with the list of rows whose answer differs from Kafka's.
pub async fn run(rows: Vec<Row>) {
    let shared = start(None).await;
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let own = match row.config {
            Some(_) => Some(start(row.config).await),
            None => None,
        };
        let addr = own.as_ref().unwrap_or(&shared).local_addr.to_string();
        let m = Messenger::connect(&addr, MessengerConfig::default())
            .await
            .expect("connect");
        let ctx = Ctx {
            addr,
            m,
            prefix: format!("row{i}"),
        };
        let got = match tokio::time::timeout(Duration::from_secs(20), (row.run)(ctx)).await {
            Ok(got) => got,
            Err(_) => {
                failures.push(format!("{} ({}): timed out", row.rule, row.kafka));
                continue;
            }
        };
        if got != row.expect {
            failures.push(format!(
                "{} ({}): expected {:?}, got {got:?}",
                row.rule, row.kafka, row.expect
            ));
        }
        if let Some(b) = own {
            b.shutdown().await.expect("shutdown");
        }
    }
    println!(
        "{} conformance rows, {} differ from Kafka",
        rows.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "rows differing from Kafka:\n{}",
        failures.join("\n")
    );
}

/// The error code of a partition-level answer, or `Closed` when the request failed
/// because the connection was closed.
pub fn code_or_closed<T>(
    r: Result<T, kmirror_wire::messenger::RequestError>,
    code: impl FnOnce(T) -> i16,
) -> Got {
    match r {
        Ok(v) => Got::Code(code(v)),
        Err(_) => Got::Closed,
    }
}
