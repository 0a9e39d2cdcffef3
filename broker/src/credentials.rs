//! The SCRAM credential store: per (user, mechanism) the salt, iteration count, StoredKey
//! and ServerKey (never a password), shared by every connection and node of the process.
//! SASL authentication reads it ([`crate::sasl`]); DescribeUserScramCredentials and
//! AlterUserScramCredentials ([`crate::handlers::user_scram`]) read and change it, with
//! Kafka's validation and errors (`ScramControlManager.alterCredentials`).
//!
//! Persisted in the data directory as `scram-credentials.json` (user -> mechanism ->
//! Kafka's `ScramCredentialUtils` text, `salt=..,stored_key=..,server_key=..,iterations=..`),
//! replaced atomically after every change, mode 600. Without a data directory the store
//! lives in memory only.
//!
//! `--sasl-users` is a bootstrap: at start, every user of that file with no stored
//! credential gets SCRAM-SHA-256 and SCRAM-SHA-512 credentials (random salt, 4096
//! iterations), which are stored; a user already stored keeps its credentials, managed
//! through the admin API from then on. A user deleted through the API but still in the file
//! is created again at the next start: remove it from the file too.
//!
//! Not here: authorization of the admin APIs (CLUSTER DESCRIBE / ALTER).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use kafka_protocol::error::ResponseError;
use kmirror_wire::scram::{Credential, Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};

use crate::sasl::SaslUsers;

/// The store's file in the data directory.
pub const CREDENTIALS_FILE: &str = "scram-credentials.json";

/// Credentials of one user, by mechanism.
pub type UserCredentials = BTreeMap<Mechanism, Credential>;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: String, reason: String },
}

/// A Kafka error code with its message, for one user of an alteration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ResponseError,
    pub message: String,
}

impl ApiError {
    fn new(code: ResponseError, message: &str) -> Self {
        Self {
            code,
            message: message.to_string(),
        }
    }
}

/// Remove the credential of `user` for the mechanism of Kafka type code `mechanism`.
#[derive(Debug, Clone)]
pub struct Deletion {
    pub user: String,
    pub mechanism: i8,
}

/// Create or replace a credential from a password the client salted itself.
#[derive(Clone)]
pub struct Upsertion {
    pub user: String,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

/// What an accepted alteration of one user does.
enum Change {
    Delete(Mechanism),
    Upsert(Mechanism, Credential),
}

/// Every SCRAM credential of the process.
#[derive(Debug)]
pub struct CredentialStore {
    /// `None`: memory only.
    file: Option<PathBuf>,
    users: RwLock<BTreeMap<String, UserCredentials>>,
}

impl CredentialStore {
    /// Loads the store of `data_dir` (none yet: empty) and adds the `bootstrap` users that
    /// have no stored credential, persisting them.
    pub fn open(
        data_dir: Option<&Path>,
        bootstrap: Option<&SaslUsers>,
    ) -> Result<Self, CredentialError> {
        let file = data_dir.map(|d| d.join(CREDENTIALS_FILE));
        let mut users = match &file {
            Some(path) => load(path)?,
            None => BTreeMap::new(),
        };
        let mut added = Vec::new();
        for (user, credentials) in bootstrap.map(SaslUsers::credentials).into_iter().flatten() {
            if !users.contains_key(user) {
                users.insert(user.clone(), credentials.clone());
                added.push(user.as_str());
            }
        }
        let store = Self {
            file,
            users: RwLock::new(BTreeMap::new()),
        };
        if !added.is_empty() {
            store.persist(&users)?;
            tracing::info!(users = ?added, "Stored SCRAM credentials for the new users of --sasl-users.");
        }
        *store.users.write().expect("credentials lock") = users;
        Ok(store)
    }

    /// The credential of `user` for `mechanism`.
    pub fn get(&self, user: &str, mechanism: Mechanism) -> Option<Credential> {
        self.read().get(user)?.get(&mechanism).cloned()
    }

    /// Every user with at least one credential, ordered by name.
    pub fn users(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// The (mechanism, iterations) of `user`'s credentials; empty for an unknown user.
    pub fn mechanisms(&self, user: &str) -> Vec<(Mechanism, u32)> {
        self.read()
            .get(user)
            .map(|c| c.iter().map(|(m, c)| (*m, c.iterations)).collect())
            .unwrap_or_default()
    }

    /// SASL/PLAIN: whether `password` is `user`'s, checked against its SCRAM-SHA-512
    /// credential, or its SCRAM-SHA-256 one if it has only that.
    pub fn verify_plain(&self, user: &str, password: &str) -> bool {
        let found = self.read().get(user).and_then(|c| {
            // Mechanisms are ordered SHA-256 < SHA-512: the last is the strongest.
            let (m, c) = c.iter().next_back()?;
            Some((*m, c.clone()))
        });
        found.is_some_and(|(m, c)| c.verify_password(m, password))
    }

    /// AlterUserScramCredentials: validates every deletion and upsertion as Kafka's
    /// `ScramControlManager.alterCredentials` does, applies the accepted ones together and
    /// persists them. One result per user: deletions first, then upsertions, then errors.
    pub fn alter(
        &self,
        deletions: Vec<Deletion>,
        upsertions: Vec<Upsertion>,
    ) -> Vec<(String, Result<(), ApiError>)> {
        let mut users = self.users.write().expect("credentials lock");
        let mut order: Vec<String> = Vec::new();
        let mut accepted: HashMap<String, Change> = HashMap::new();
        let mut errors: HashMap<String, ApiError> = HashMap::new();
        let duplicate = || {
            ApiError::new(
                ResponseError::DuplicateResource,
                "A user credential cannot be altered twice in the same request",
            )
        };
        // Kafka keeps the first error of a user and refuses a second alteration of it.
        let mut decide = |user: String, verdict: &dyn Fn() -> Result<Change, ApiError>| {
            if errors.contains_key(&user) {
                return;
            }
            order.push(user.clone());
            match accepted
                .remove(&user)
                .map_or_else(verdict, |_| Err(duplicate()))
            {
                Ok(change) => accepted.insert(user, change).map(drop),
                Err(e) => errors.insert(user, e).map(drop),
            };
        };
        for d in &deletions {
            decide(d.user.clone(), &|| {
                validate_deletion(&users, d).map(Change::Delete)
            });
        }
        for u in &upsertions {
            decide(u.user.clone(), &|| validate_upsertion(u));
        }
        let mut seen = std::collections::HashSet::new();
        order.retain(|u| seen.insert(u.clone()));
        let mut next = users.clone();
        apply(&mut next, &accepted);
        let stored = if accepted.is_empty() {
            Ok(())
        } else {
            self.persist(&next).map(|()| *users = next)
        };
        if let Err(e) = &stored {
            tracing::warn!(error = %e, "Cannot persist SCRAM credentials; the alteration is not applied.");
        }
        let is_delete = |u: &String| matches!(accepted.get(u), Some(Change::Delete(_)));
        let is_upsert = |u: &String| matches!(accepted.get(u), Some(Change::Upsert(..)));
        let result = |u: &String| {
            let stored = stored
                .as_ref()
                .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, &e.to_string()));
            (u.clone(), stored.copied())
        };
        let mut results = Vec::with_capacity(order.len());
        results.extend(order.iter().filter(|u| is_delete(u)).map(result));
        results.extend(order.iter().filter(|u| is_upsert(u)).map(result));
        results.extend(
            order
                .iter()
                .filter_map(|u| Some((u.clone(), Err(errors.get(u)?.clone())))),
        );
        for (user, outcome) in &results {
            match outcome {
                Ok(()) => tracing::info!(%user, "Altered SCRAM credentials."),
                Err(e) => {
                    tracing::debug!(%user, code = ?e.code, message = %e.message, "Refused a SCRAM credential alteration.")
                }
            }
        }
        results
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, UserCredentials>> {
        self.users.read().expect("credentials lock")
    }

    /// Writes `users` to the store's file (atomically, mode 600); nothing in memory only.
    fn persist(&self, users: &BTreeMap<String, UserCredentials>) -> Result<(), CredentialError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let text: BTreeMap<&str, BTreeMap<&str, String>> = users
            .iter()
            .map(|(user, c)| {
                let c = c.iter().map(|(m, c)| (m.name(), c.to_kafka_string()));
                (user.as_str(), c.collect())
            })
            .collect();
        let bytes = serde_json::to_vec_pretty(&text).expect("credentials serialise");
        crate::fsutil::write_atomic_private(path, &bytes).map_err(|source| CredentialError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

/// Applies accepted alterations; a user whose last credential is deleted goes.
fn apply(users: &mut BTreeMap<String, UserCredentials>, accepted: &HashMap<String, Change>) {
    for (user, change) in accepted {
        match change {
            Change::Delete(m) => {
                let emptied = users.get_mut(user).is_some_and(|c| {
                    c.remove(m);
                    c.is_empty()
                });
                if emptied {
                    users.remove(user);
                }
            }
            Change::Upsert(m, c) => {
                users.entry(user.clone()).or_default().insert(*m, c.clone());
            }
        }
    }
}

/// Reads the store's file; a missing file is an empty store.
fn load(path: &Path) -> Result<BTreeMap<String, UserCredentials>, CredentialError> {
    let shown = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(CredentialError::Io {
                path: shown,
                source,
            })
        }
    };
    restrict_mode(path).map_err(|source| CredentialError::Io {
        path: shown.clone(),
        source,
    })?;
    let corrupt = |reason: String| CredentialError::Corrupt {
        path: shown.clone(),
        reason,
    };
    let text: BTreeMap<String, BTreeMap<String, String>> =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut users = BTreeMap::new();
    for (user, by_mechanism) in text {
        let mut credentials = UserCredentials::new();
        for (name, value) in by_mechanism {
            let m = Mechanism::from_name(&name)
                .ok_or_else(|| corrupt(format!("user {user}: unknown mechanism {name}")))?;
            let c = Credential::from_kafka_string(&value)
                .map_err(|e| corrupt(format!("user {user}, {name}: {e}")))?;
            credentials.insert(m, c);
        }
        if !credentials.is_empty() {
            users.insert(user, credentials);
        }
    }
    Ok(users)
}

/// Makes the store's file readable by its owner only, if someone loosened its mode.
fn restrict_mode(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "The SCRAM credentials file was readable by others; setting its mode to 600.");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Kafka: ScramControlManager.validateScramUsernameAndMechanism
fn validate_user_and_mechanism(user: &str, mechanism: i8) -> Result<Mechanism, ApiError> {
    if user.is_empty() {
        return Err(ApiError::new(
            ResponseError::UnacceptableCredential,
            "Username must not be empty",
        ));
    }
    Mechanism::from_type(mechanism).ok_or_else(|| {
        ApiError::new(
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism",
        )
    })
}

/// Kafka: ScramControlManager.validateDeletion
fn validate_deletion(
    users: &BTreeMap<String, UserCredentials>,
    d: &Deletion,
) -> Result<Mechanism, ApiError> {
    let m = validate_user_and_mechanism(&d.user, d.mechanism)?;
    if !users.get(&d.user).is_some_and(|c| c.contains_key(&m)) {
        return Err(ApiError::new(
            ResponseError::ResourceNotFound,
            "Attempt to delete a user credential that does not exist",
        ));
    }
    Ok(m)
}

/// Kafka: ScramControlManager.validateUpsertion, then finishUpsertion (StoredKey and
/// ServerKey from the salted password).
fn validate_upsertion(u: &Upsertion) -> Result<Change, ApiError> {
    let m = validate_user_and_mechanism(&u.user, u.mechanism)?;
    if u.iterations < MIN_ITERATIONS as i32 {
        return Err(ApiError::new(
            ResponseError::UnacceptableCredential,
            "Too few iterations",
        ));
    }
    if u.iterations > MAX_ITERATIONS as i32 {
        return Err(ApiError::new(
            ResponseError::UnacceptableCredential,
            "Too many iterations",
        ));
    }
    let credential = Credential::from_salted_password(
        m,
        u.salt.clone(),
        &u.salted_password,
        u.iterations as u32,
    );
    Ok(Change::Upsert(m, credential))
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
