//! DescribeUserScramCredentials (API 50) and AlterUserScramCredentials (API 51), v0: list
//! the SCRAM mechanisms and iteration counts of users, and create, replace or delete their
//! credentials in the process's [`crate::credentials::CredentialStore`], with Kafka's
//! errors and messages. The client salts the password itself; only StoredKey and ServerKey
//! derived from it are kept.
//!
//! Not here: authorization. Kafka requires DESCRIBE (API 50) or ALTER (API 51) on the
//! CLUSTER resource and answers CLUSTER_AUTHORIZATION_FAILED for the whole request; the
//! check belongs where each handler says so, with the broker at hand.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::message;
use crate::credentials::{Deletion, Upsertion};
use crate::state::Broker;

// Kafka: ScramImage.describe (KafkaApis.handleDescribeUserScramCredentialsRequest, KRaft)
pub fn describe(
    broker: &Broker,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let store = &broker.credentials;
    // Null or empty: every user. Otherwise each name once, in request order, marked when
    // it was named more than once.
    let mut named: Vec<(String, bool)> = Vec::new();
    match req.users.filter(|u| !u.is_empty()) {
        None => named.extend(store.users().into_iter().map(|u| (u, false))),
        Some(users) => {
            let mut index: HashMap<String, usize> = HashMap::new();
            for user in users {
                let name = user.name.to_string();
                match index.get(&name) {
                    Some(&i) => named[i].1 = true,
                    None => {
                        index.insert(name.clone(), named.len());
                        named.push((name, false));
                    }
                }
            }
        }
    }
    let results = named
        .into_iter()
        .map(|(user, twice)| {
            let result = DescribeUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user.clone()));
            if twice {
                return result
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(message(format!(
                        "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                    )));
            }
            let infos: Vec<CredentialInfo> = store
                .mechanisms(&user)
                .into_iter()
                .map(|(m, iterations)| {
                    CredentialInfo::default()
                        .with_mechanism(m.type_code())
                        .with_iterations(iterations as i32)
                })
                .collect();
            if infos.is_empty() {
                return result
                    .with_error_code(ResponseError::ResourceNotFound.code())
                    .with_error_message(message(format!(
                        "Attempt to describe a user credential that does not exist: {user}"
                    )));
            }
            result.with_credential_infos(infos)
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

// Kafka: ControllerApis.handleAlterUserScramCredentials -> ScramControlManager.alterCredentials
pub fn alter(
    broker: &Broker,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let deletions = req
        .deletions
        .into_iter()
        .map(|d| Deletion {
            user: d.name.to_string(),
            mechanism: d.mechanism,
        })
        .collect();
    let upsertions = req
        .upsertions
        .into_iter()
        .map(|u| Upsertion {
            user: u.name.to_string(),
            mechanism: u.mechanism,
            iterations: u.iterations,
            salt: u.salt.to_vec(),
            salted_password: u.salted_password.to_vec(),
        })
        .collect();
    let results = broker
        .credentials
        .alter(deletions, upsertions)
        .into_iter()
        .map(|(user, outcome)| {
            let result =
                AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
            match outcome {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code.code())
                    .with_error_message(message(e.message)),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
