//! Client quotas (KIP-13, KIP-55, KIP-546): `producer_byte_rate` and `consumer_byte_rate`
//! per user, client id, or both, with `<default>` entities, set by AlterClientQuotas and
//! read by DescribeClientQuotas ([`crate::handlers::client_quotas`]), persisted in
//! `client-quotas.json` and shared by every node of the process. Each node measures its
//! clients on its own, as each Kafka broker does.
//!
//! A client over its quota is throttled as Kafka throttles it: a Produce is carried out and
//! answered with `throttle_time_ms`; a Fetch is answered empty, with `throttle_time_ms`,
//! its bytes not counted; and the connection reads nothing more until the throttle time has
//! passed (Kafka: KafkaApis.handleProduceRequest / handleFetchRequest,
//! ClientQuotaManager.recordAndGetThrottleTimeMs, RequestChannel's throttled channel).
//! `request_percentage`, `controller_mutation_rate` and IP quotas are refused: this broker
//! does not enforce them.

mod rate;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rate::Rate;

/// The file quotas are kept in, in the data directory.
pub const QUOTAS_FILE: &str = "client-quotas.json";

/// Entity types (Kafka: ClientQuotaEntity).
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// The quota keys of user and client-id entities (Kafka: QuotaConfig), and whether Kafka
/// takes them as whole numbers (LONG) rather than DOUBLE.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
const USER_AND_CLIENT_KEYS: [(&str, bool); 4] = [
    (PRODUCER_BYTE_RATE, true),
    (CONSUMER_BYTE_RATE, true),
    ("request_percentage", false),
    ("controller_mutation_rate", false),
];

/// One type of an entity in a lookup: absent, `<default>` (`Some(None)`) or named.
type Level = Option<Option<String>>;

/// An entity: each of its types with a name, `None` for `<default>`.
pub type Entity = BTreeMap<String, Option<String>>;

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Produce,
    Fetch,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Produce => PRODUCER_BYTE_RATE,
            Kind::Fetch => CONSUMER_BYTE_RATE,
        }
    }
}

/// One sensor: a node's, for one quota kind, by Kafka's metric tags (user, client id; empty
/// where the matched entity does not name that type).
type SensorKey = (i32, Kind, String, String);

/// A sensor unused this long is dropped (Kafka: ClientQuotaManager's
/// InactiveSensorExpirationTimeSeconds), so that clients with ever new ids under a
/// `<default>` quota do not grow the broker without end.
const SENSOR_IDLE_MS: u64 = 3_600_000;

/// A measured rate and when it was last used.
#[derive(Debug)]
struct Sensor {
    rate: Rate,
    used_ms: u64,
}

#[derive(Debug, Default)]
struct Sensors {
    by_key: HashMap<SensorKey, Sensor>,
    swept_ms: u64,
}

/// Every client quota of the process, and the rates measured against them.
#[derive(Debug, Default)]
pub struct ClientQuotas {
    /// `None`: memory only.
    file: Option<PathBuf>,
    quotas: RwLock<BTreeMap<Entity, BTreeMap<String, f64>>>,
    sensors: Mutex<Sensors>,
}

/// A refused alteration: Kafka's INVALID_REQUEST with its message, or a failed write.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Invalid(String),
    Io(String),
}

impl ClientQuotas {
    /// Loads the quotas of `data_dir` (none yet: none). A file that does not parse is an
    /// error: quotas silently dropped would let every client run unthrottled.
    pub fn open(data_dir: Option<&Path>) -> std::io::Result<Self> {
        let file = data_dir.map(|d| d.join(QUOTAS_FILE));
        let mut quotas = BTreeMap::new();
        if let Some(path) = &file {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let stored: Vec<(Entity, BTreeMap<String, f64>)> =
                        serde_json::from_slice(&bytes).map_err(|e| {
                            std::io::Error::other(format!("{}: {e}", path.display()))
                        })?;
                    quotas.extend(stored);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            file,
            quotas: RwLock::new(quotas),
            sensors: Mutex::default(),
        })
    }

    /// Every entity with its quotas.
    pub fn entries(&self) -> Vec<(Entity, BTreeMap<String, f64>)> {
        let quotas = self.quotas.read().expect("quotas lock");
        quotas.iter().map(|(e, v)| (e.clone(), v.clone())).collect()
    }

    /// Sets (`Some`) or removes (`None`) each key of `entity`, all or none (Kafka:
    /// ClientQuotaControlManager.alterClientQuotaEntity); `validate_only` changes nothing.
    pub fn alter(
        &self,
        entity: &Entity,
        ops: &BTreeMap<String, Option<f64>>,
        validate_only: bool,
    ) -> Result<(), Refusal> {
        validate_entity(entity)?;
        for (key, value) in ops {
            if let Some(v) = value {
                validate_value(key, *v)?;
            }
        }
        if validate_only {
            return Ok(());
        }
        let mut quotas = self.quotas.write().expect("quotas lock");
        let mut next = quotas.clone();
        let values = next.entry(entity.clone()).or_default();
        for (key, value) in ops {
            match value {
                Some(v) => values.insert(key.clone(), *v),
                None => values.remove(key),
            };
        }
        if values.is_empty() {
            next.remove(entity);
        }
        self.persist(&next)?;
        *quotas = next;
        Ok(())
    }

    fn persist(&self, quotas: &BTreeMap<Entity, BTreeMap<String, f64>>) -> Result<(), Refusal> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let list: Vec<_> = quotas.iter().collect();
        let bytes = serde_json::to_vec_pretty(&list).expect("quotas serialise");
        crate::fsutil::write_atomic(path, &bytes)
            .map_err(|e| Refusal::Io(format!("{}: {e}", path.display())))
    }

    /// The quota on `user` (the principal's name) and `client_id` for `kind`, and the
    /// sensor tags it is measured under (Kafka: DefaultQuotaCallback, most specific first).
    fn quota_for(&self, kind: Kind, user: &str, client_id: &str) -> Option<(f64, String, String)> {
        let quotas = self.quotas.read().expect("quotas lock");
        if quotas.is_empty() {
            return None;
        }
        let named = |s: &str| Some(Some(s.to_string()));
        let levels: [(Level, Level); 8] = [
            (named(user), named(client_id)),
            (named(user), Some(None)),
            (named(user), None),
            (Some(None), named(client_id)),
            (Some(None), Some(None)),
            (Some(None), None),
            (None, named(client_id)),
            (None, Some(None)),
        ];
        // Kafka: DefaultQuotaCallback.quotaLimit (an empty client id matches no client-id
        // entity, not even <default>).
        levels.into_iter().find_map(|(u, c)| {
            if (c.is_some() && client_id.is_empty()) || (u.is_some() && user.is_empty()) {
                return None;
            }
            let mut entity = Entity::new();
            let tags = (
                if u.is_some() { user } else { "" }.to_string(),
                if c.is_some() { client_id } else { "" }.to_string(),
            );
            if let Some(u) = u {
                entity.insert(USER.into(), u);
            }
            if let Some(c) = c {
                entity.insert(CLIENT_ID.into(), c);
            }
            let quota = *quotas.get(&entity)?.get(kind.key())?;
            Some((quota, tags.0, tags.1))
        })
    }

    /// The most a Fetch of this client may return: its quota over the window, or `None`
    /// without a quota (Kafka: ClientQuotaManager.getMaxValueInQuotaWindow, which
    /// KafkaApis.handleFetchRequest caps `max_bytes` by).
    pub fn fetch_bytes_in_window(&self, principal: &str, client_id: &str) -> Option<i32> {
        let user = principal.strip_prefix("User:").unwrap_or(principal);
        let (quota, _, _) = self.quota_for(Kind::Fetch, user, client_id)?;
        let most = quota * (rate::SAMPLES as f64 - 1.0) * rate::SAMPLE_WINDOW_MS as f64 / 1_000.0;
        Some(most.min(i32::MAX as f64) as i32)
    }

    /// Counts `bytes` of `kind` for a client of node `node_id`, and returns how long it is
    /// throttled (0: within its quota, or no quota applies).
    pub fn record(
        &self,
        node_id: i32,
        kind: Kind,
        principal: &str,
        client_id: &str,
        bytes: usize,
    ) -> u64 {
        let user = principal.strip_prefix("User:").unwrap_or(principal);
        let Some((quota, user_tag, client_tag)) = self.quota_for(kind, user, client_id) else {
            return 0;
        };
        let now = now_ms();
        let mut sensors = self.sensors.lock().expect("sensors lock");
        if now.saturating_sub(sensors.swept_ms) >= SENSOR_IDLE_MS / 60 {
            sensors.swept_ms = now;
            sensors
                .by_key
                .retain(|_, s| now.saturating_sub(s.used_ms) < SENSOR_IDLE_MS);
        }
        let sensor = sensors
            .by_key
            .entry((node_id, kind, user_tag, client_tag))
            .or_insert_with(|| Sensor {
                rate: Rate::new(now),
                used_ms: now,
            });
        sensor.used_ms = now;
        let rate = &mut sensor.rate;
        rate.record(bytes as f64, now);
        let throttle_ms = rate.throttle_ms(quota, now);
        if throttle_ms > 0 && kind == Kind::Fetch {
            // Kafka: KafkaApis.handleFetchRequest (a throttled Fetch is answered empty, so
            // its bytes are taken back: ClientQuotaManager.unrecordQuotaSensor).
            rate.record(-(bytes as f64), now);
        }
        throttle_ms
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::Invalid(message.into())
}

/// Kafka: ClientQuotaControlManager.validateEntity and configKeysForEntityType.
fn validate_entity(entity: &Entity) -> Result<(), Refusal> {
    if entity.is_empty() {
        return Err(invalid("Invalid empty client quota entity"));
    }
    for (kind, name) in entity {
        if ![USER, CLIENT_ID, IP].contains(&kind.as_str()) {
            return Err(invalid(format!(
                "Unhandled client quota entity type: {kind}"
            )));
        }
        if name.as_deref() == Some("") {
            return Err(invalid(format!("Empty {kind} not supported")));
        }
    }
    if entity.contains_key(IP) {
        if entity.len() > 1 {
            return Err(invalid(
                "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId",
            ));
        }
        return Err(invalid(
            "IP quotas (connection_creation_rate) are not enforced by kmirror-broker",
        ));
    }
    Ok(())
}

/// Kafka: ClientQuotaControlManager.validateQuotaKeyValue, then this broker's refusal of
/// the keys it does not enforce.
fn validate_value(key: &str, value: f64) -> Result<(), Refusal> {
    let Some((_, whole)) = USER_AND_CLIENT_KEYS.iter().find(|(k, _)| *k == key) else {
        return Err(invalid(format!("Invalid configuration key {key}")));
    };
    if value <= 0.0 || value.is_nan() {
        return Err(invalid(format!("Quota {key} must be greater than 0")));
    }
    if *whole {
        if value > i64::MAX as f64 {
            return Err(invalid(format!(
                "Proposed value for {key} is too large for a LONG."
            )));
        }
        if (value % 1.0).abs() > 1e-6 {
            return Err(invalid(format!("{key} cannot be a fractional value.")));
        }
    }
    if key != PRODUCER_BYTE_RATE && key != CONSUMER_BYTE_RATE {
        return Err(invalid(format!("{key} is not enforced by kmirror-broker")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(pairs: &[(&str, Option<&str>)]) -> Entity {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    fn set(q: &ClientQuotas, e: &Entity, key: &str, v: f64) {
        let ops = BTreeMap::from([(key.to_string(), Some(v))]);
        q.alter(e, &ops, false).unwrap();
    }

    #[test]
    fn the_most_specific_entity_wins_and_names_the_sensor() {
        let q = ClientQuotas::default();
        set(&q, &entity(&[(CLIENT_ID, None)]), CONSUMER_BYTE_RATE, 1.0);
        set(&q, &entity(&[(USER, None)]), CONSUMER_BYTE_RATE, 2.0);
        set(
            &q,
            &entity(&[(USER, Some("alice")), (CLIENT_ID, Some("c"))]),
            CONSUMER_BYTE_RATE,
            3.0,
        );
        let got = |u: &str, c: &str| q.quota_for(Kind::Fetch, u, c);
        assert_eq!(got("alice", "c"), Some((3.0, "alice".into(), "c".into())));
        assert_eq!(
            got("alice", "d"),
            Some((2.0, "alice".into(), String::new()))
        );
        assert_eq!(q.quota_for(Kind::Produce, "alice", "c"), None);
        q.alter(
            &entity(&[(USER, None)]),
            &BTreeMap::from([(CONSUMER_BYTE_RATE.to_string(), None)]),
            false,
        )
        .unwrap();
        assert_eq!(got("bob", "d"), Some((1.0, String::new(), "d".into())));
    }

    #[test]
    fn kafkas_refusals() {
        let q = ClientQuotas::default();
        let ok = entity(&[(CLIENT_ID, Some("c"))]);
        let refused = |e: &Entity, key: &str, v: f64| match q.alter(
            e,
            &BTreeMap::from([(key.to_string(), Some(v))]),
            true,
        ) {
            Err(Refusal::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(&Entity::new(), CONSUMER_BYTE_RATE, 1.0),
            "Invalid empty client quota entity"
        );
        assert_eq!(
            refused(&ok, "consumer_byte_rat", 1.0),
            "Invalid configuration key consumer_byte_rat"
        );
        assert_eq!(
            refused(&ok, CONSUMER_BYTE_RATE, 0.0),
            "Quota consumer_byte_rate must be greater than 0"
        );
        assert_eq!(
            refused(&ok, PRODUCER_BYTE_RATE, 1.5),
            "producer_byte_rate cannot be a fractional value."
        );
        assert_eq!(
            refused(&entity(&[("group", Some("g"))]), CONSUMER_BYTE_RATE, 1.0),
            "Unhandled client quota entity type: group"
        );
        assert_eq!(
            refused(&entity(&[(USER, Some(""))]), CONSUMER_BYTE_RATE, 1.0),
            "Empty user not supported"
        );
        assert!(refused(&ok, "request_percentage", 50.0).contains("not enforced"));
        assert!(q.entries().is_empty(), "validate_only changes nothing");
    }

    #[test]
    fn quotas_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let q = ClientQuotas::open(Some(dir.path())).unwrap();
        set(
            &q,
            &entity(&[(USER, None), (CLIENT_ID, Some("c"))]),
            PRODUCER_BYTE_RATE,
            1024.0,
        );
        let again = ClientQuotas::open(Some(dir.path())).unwrap();
        assert_eq!(again.entries(), q.entries());
        assert_eq!(again.entries().len(), 1);
    }

    #[test]
    fn a_fetch_over_its_quota_is_throttled_and_not_counted() {
        let q = ClientQuotas::default();
        set(
            &q,
            &entity(&[(CLIENT_ID, Some("c"))]),
            CONSUMER_BYTE_RATE,
            1_000.0,
        );
        // 10 s worth at once is within the quota; more is not.
        assert_eq!(q.record(1, Kind::Fetch, "User:ANONYMOUS", "c", 10_000), 0);
        assert!(q.record(1, Kind::Fetch, "User:ANONYMOUS", "c", 10_000) > 0);
        // Taken back: the same again is throttled again, not twice as long.
        let first = q.record(1, Kind::Fetch, "User:ANONYMOUS", "c", 10_000);
        assert!((9_000..=10_100).contains(&first), "{first}");
        // Another node measures on its own; another client is not limited.
        assert_eq!(q.record(2, Kind::Fetch, "User:ANONYMOUS", "c", 10_000), 0);
        assert_eq!(q.record(1, Kind::Fetch, "User:ANONYMOUS", "d", 1 << 30), 0);
    }

    #[test]
    fn an_empty_client_id_matches_no_client_id_entity() {
        let q = ClientQuotas::default();
        set(&q, &entity(&[(CLIENT_ID, None)]), PRODUCER_BYTE_RATE, 1.0);
        set(
            &q,
            &entity(&[(USER, Some("u")), (CLIENT_ID, None)]),
            PRODUCER_BYTE_RATE,
            2.0,
        );
        assert_eq!(q.quota_for(Kind::Produce, "u", ""), None);
        set(&q, &entity(&[(USER, Some("u"))]), PRODUCER_BYTE_RATE, 3.0);
        assert_eq!(
            q.quota_for(Kind::Produce, "u", ""),
            Some((3.0, "u".into(), String::new()))
        );
    }
}
