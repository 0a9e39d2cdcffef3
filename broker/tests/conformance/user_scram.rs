//! SCRAM credential admin rules: DescribeUserScramCredentials and AlterUserScramCredentials
//! v0, with Kafka's per-user errors (ScramImage.describe, ScramControlManager), on the
//! shared broker (no SASL listener needed: the APIs manage the store either way). Each row
//! uses user names of its own.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;

use crate::admin::{row, s};
use crate::harness::{Ctx, Got, Row};

const SHA_256: i8 = 1;
const SHA_512: i8 = 2;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const RESOURCE_NOT_FOUND: i16 = 91;
const DUPLICATE_RESOURCE: i16 = 92;
const UNACCEPTABLE_CREDENTIAL: i16 = 93;

fn upsertion(ctx: &Ctx, user: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
    ScramCredentialUpsertion::default()
        .with_name(s(&ctx.topic(user)))
        .with_mechanism(mechanism)
        .with_iterations(iterations)
        .with_salt(bytes::Bytes::from_static(b"salt-from-client"))
        .with_salted_password(bytes::Bytes::from_static(&[7; 64]))
}

/// The error code of the single result of an alteration, or a description of the answer.
async fn alter(ctx: &Ctx, req: AlterUserScramCredentialsRequest) -> Got {
    match ctx.m.send_at(&req, 0).await {
        Ok(r) if r.results.len() == 1 => Got::Code(r.results[0].error_code),
        Ok(r) => Got::Answer(format!("{} results", r.results.len())),
        Err(_) => Got::Closed,
    }
}

async fn upsert(ctx: Ctx, mechanism: i8, iterations: i32) -> Got {
    upsert_on(&ctx, mechanism, iterations).await
}

async fn upsert_on(ctx: &Ctx, mechanism: i8, iterations: i32) -> Got {
    let req = AlterUserScramCredentialsRequest::default()
        .with_upsertions(vec![upsertion(ctx, "u", mechanism, iterations)]);
    alter(ctx, req).await
}

async fn delete_missing(ctx: Ctx) -> Got {
    let req = AlterUserScramCredentialsRequest::default().with_deletions(vec![
        ScramCredentialDeletion::default()
            .with_name(s(&ctx.topic("nobody")))
            .with_mechanism(SHA_256),
    ]);
    alter(&ctx, req).await
}

async fn altered_twice(ctx: Ctx) -> Got {
    let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        upsertion(&ctx, "twice", SHA_256, 4096),
        upsertion(&ctx, "twice", SHA_512, 4096),
    ]);
    alter(&ctx, req).await
}

/// Creates a user, then describes it: its one mechanism and iteration count.
async fn described(ctx: Ctx) -> Got {
    let created = upsert_on(&ctx, SHA_512, 8192).await;
    if created != Got::Code(0) {
        return created;
    }
    let req = DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
        UserName::default().with_name(s(&ctx.topic("u"))),
    ]));
    match ctx.m.send_at(&req, 0).await {
        Ok(r) => {
            let got: Vec<_> = r
                .results
                .iter()
                .flat_map(|u| {
                    u.credential_infos
                        .iter()
                        .map(move |c| (u.error_code, c.mechanism, c.iterations))
                })
                .collect();
            if got == vec![(0, SHA_512, 8192)] {
                Got::Code(0)
            } else {
                Got::Answer(format!("{got:?}"))
            }
        }
        Err(_) => Got::Closed,
    }
}

/// Describes `names` (user names of this row); the error code of each result.
async fn describe_codes(ctx: Ctx, names: &[&str]) -> Got {
    let users = names
        .iter()
        .map(|n| UserName::default().with_name(s(&ctx.topic(n))))
        .collect();
    let req = DescribeUserScramCredentialsRequest::default().with_users(Some(users));
    match ctx.m.send_at(&req, 0).await {
        Ok(r) if r.results.len() == 1 => Got::Code(r.results[0].error_code),
        Ok(r) => Got::Answer(format!("{} results", r.results.len())),
        Err(_) => Got::Closed,
    }
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("AlterUserScramCredentials: an upsertion with 4096..16384 iterations is accepted",
            "ScramControlManager.validateUpsertion", Got::Code(0), |ctx| upsert(ctx, SHA_256, 16384).await),
        row!("AlterUserScramCredentials: fewer than 4096 iterations: UNACCEPTABLE_CREDENTIAL",
            "ScramControlManager.validateUpsertion", Got::Code(UNACCEPTABLE_CREDENTIAL),
            |ctx| upsert(ctx, SHA_256, 4095).await),
        row!("AlterUserScramCredentials: more than 16384 iterations: UNACCEPTABLE_CREDENTIAL",
            "ScramControlManager.validateUpsertion", Got::Code(UNACCEPTABLE_CREDENTIAL),
            |ctx| upsert(ctx, SHA_512, 16385).await),
        row!("AlterUserScramCredentials: an unknown mechanism: UNSUPPORTED_SASL_MECHANISM",
            "ScramControlManager.validateScramUsernameAndMechanism", Got::Code(UNSUPPORTED_SASL_MECHANISM),
            |ctx| upsert(ctx, 0, 4096).await),
        row!("AlterUserScramCredentials: deleting a credential that does not exist: RESOURCE_NOT_FOUND",
            "ScramControlManager.validateDeletion", Got::Code(RESOURCE_NOT_FOUND),
            |ctx| delete_missing(ctx).await),
        row!("AlterUserScramCredentials: one user altered twice: one DUPLICATE_RESOURCE result",
            "ScramControlManager.alterCredentials", Got::Code(DUPLICATE_RESOURCE),
            |ctx| altered_twice(ctx).await),
        row!("DescribeUserScramCredentials: a user's mechanisms and iterations",
            "ScramImage.describe", Got::Code(0), |ctx| described(ctx).await),
        row!("DescribeUserScramCredentials: a user without credentials: RESOURCE_NOT_FOUND",
            "ScramImage.describe", Got::Code(RESOURCE_NOT_FOUND),
            |ctx| describe_codes(ctx, &["ghost"]).await),
        row!("DescribeUserScramCredentials: a user named twice: one DUPLICATE_RESOURCE result",
            "ScramImage.describe", Got::Code(DUPLICATE_RESOURCE),
            |ctx| describe_codes(ctx, &["dup", "dup"]).await),
    ]
}
