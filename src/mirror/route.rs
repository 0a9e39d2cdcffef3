//! Where a partition's batches go: its lane to the target leader and the target partition
//! as Produce names it (with the topic id the target reports). Looking them up costs two
//! metadata locks, a connection and a lane lookup (a lock and a hash each) and a copy of
//! the topic name, more than the rest of sending a small batch, so each pipeline keeps
//! its route and looks it up again only when the target's metadata changes or the lane's
//! connection fails: a leader move, a new topic id or a lost connection all come with new
//! metadata or a dead lane.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use kafka_protocol::protocol::StrBytes;

use crate::client::metadata::MetadataSnapshot;
use crate::client::produce::ProduceTarget;
use crate::client::produce_lane::ProduceLane;
use crate::client::{ClientError, ClusterClient};

/// One partition's way to its target leader, found from one metadata snapshot.
pub struct Route {
    /// That snapshot, by identity only: an idle partition must not keep a whole cluster's
    /// old metadata alive (a `Weak` frees it; its allocation, never reused while the
    /// `Weak` lives, still tells it apart from a newer one).
    metadata: Weak<MetadataSnapshot>,
    pub lane: ProduceLane,
    pub target: ProduceTarget,
}

/// The route the partition's last batch took.
#[derive(Default)]
pub struct RouteCache(Mutex<Option<Arc<Route>>>);

impl RouteCache {
    /// The route to `partition` of `topic` on the lane `ticket` names: the last one while
    /// the target's metadata is the same snapshot and its lane lives, else looked up again.
    pub async fn get(
        &self,
        target: &ClusterClient,
        topic: &str,
        partition: i32,
        ticket: usize,
    ) -> Result<Arc<Route>, ClientError> {
        let metadata = target.metadata();
        if let Some(route) = self.0.lock().expect("route lock").as_ref() {
            if std::ptr::eq(route.metadata.as_ptr(), Arc::as_ptr(&metadata)) && route.lane.is_live()
            {
                return Ok(route.clone());
            }
        }
        let lane = target.produce_lane(topic, partition, ticket).await?;
        let route = Arc::new(Route {
            target: ProduceTarget {
                topic: StrBytes::from_string(topic.to_string()),
                topic_id: metadata.topic_id(topic),
                partition,
            },
            lane,
            metadata: Arc::downgrade(&metadata),
        });
        *self.0.lock().expect("route lock") = Some(route.clone());
        Ok(route)
    }

    /// The round trip of the last route's lane ([`ProduceLane::round_trip`]); `None` before
    /// the first batch was sent.
    pub fn round_trip(&self) -> Option<Duration> {
        self.0
            .lock()
            .expect("route lock")
            .as_ref()
            .map(|r| r.lane.round_trip())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route is reused while the target's metadata is the same snapshot, looked up again
    /// from a new one, and does not keep the old snapshot alive.
    #[tokio::test]
    async fn a_route_lasts_as_long_as_its_metadata_snapshot() {
        let (broker, client) = crate::client::local_cluster_with_topic("target", "routed", 2).await;

        let cache = RouteCache::default();
        assert_eq!(cache.round_trip(), None, "no route yet");
        let first = cache.get(&client, "routed", 1, 0).await.unwrap();
        assert_eq!(first.target.topic.as_str(), "routed");
        assert_eq!(first.target.partition, 1);
        assert_eq!(first.target.topic_id, client.metadata().topic_id("routed"));
        assert!(first.lane.is_live());
        assert_eq!(cache.round_trip(), Some(first.lane.round_trip()));
        let again = cache.get(&client, "routed", 1, 0).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "same snapshot, same route");

        client.refresh_metadata().await.unwrap();
        assert!(
            first.metadata.upgrade().is_none(),
            "the route kept the replaced snapshot alive"
        );
        let fresh = cache.get(&client, "routed", 1, 0).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &fresh), "a new snapshot, a new route");
        assert!(fresh.lane.is_live());
        let _ = broker.shutdown().await;
    }

    /// A route whose lane died is not reused, though the metadata snapshot is the same.
    #[tokio::test]
    async fn a_route_whose_lane_died_is_looked_up_again() {
        let (broker, client) = crate::client::local_cluster_with_topic("target", "routed", 1).await;
        let cache = RouteCache::default();
        let first = cache.get(&client, "routed", 0, 0).await.unwrap();
        let snapshot = client.metadata();

        let _ = broker.shutdown().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while first.lane.is_live() {
            assert!(
                std::time::Instant::now() < deadline,
                "the lane outlived its broker"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(Arc::ptr_eq(&snapshot, &client.metadata()), "same snapshot");
        match cache.get(&client, "routed", 0, 0).await {
            Ok(again) => assert!(
                !Arc::ptr_eq(&first, &again),
                "the dead lane's route came back"
            ),
            Err(e) => tracing::debug!(%e, "no broker to route to, as expected"),
        }
    }
}
