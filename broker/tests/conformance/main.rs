//! Conformance: one table of rules on which kmirror-broker must answer as Apache Kafka 4.x
//! does. Every row sends raw requests through the real server on 127.0.0.1:0 and names the
//! Kafka source of its rule; for each rule there are rows for both directions (what Kafka
//! accepts is accepted, what it refuses is refused with Kafka's error code).
//!
//! Rows live in one file per area (`produce.rs`, `versions.rs`, ...); [`harness`] runs
//! them all and reports every mismatch at once, not only the first.

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod admin;
mod admin_answers;
mod admin_configs;
mod api_versions;
mod authz;
mod diverging;
mod fetch;
mod fetch_answers;
mod groups;
mod list_offsets;
mod metadata;
mod multinode;
mod multinode_routing;
mod placement;
mod produce;
mod request_shape;
mod topic_limits;
mod topics;
mod transactions;
mod txn_offsets;
mod txn_tools;
mod user_scram;
mod versions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_answers_as_kafka_does() {
    let mut rows = Vec::new();
    rows.extend(produce::rows());
    rows.extend(admin::rows());
    rows.extend(admin_answers::rows());
    rows.extend(list_offsets::rows());
    rows.extend(topics::rows());
    rows.extend(metadata::rows());
    rows.extend(fetch::rows());
    rows.extend(fetch_answers::rows());
    rows.extend(topic_limits::rows());
    rows.extend(multinode::rows());
    rows.extend(placement::rows());
    rows.extend(request_shape::rows());
    rows.extend(diverging::rows());
    rows.extend(versions::rows());
    rows.extend(api_versions::rows());
    rows.extend(user_scram::rows());
    rows.extend(authz::rows());
    rows.extend(groups::rows());
    rows.extend(transactions::rows());
    rows.extend(txn_offsets::rows());
    rows.extend(txn_tools::rows());
    harness::run(rows).await;
}
