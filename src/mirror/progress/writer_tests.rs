//! The progress writer against a target that accepts and never answers: a stop does not
//! wait for the request timeout of a write already under way; and against one that is
//! down when the drain ends: the final write retries for its least time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::fixtures::{pos, sp};
use super::{codec, Progress, PROGRESS_TOPIC};
use crate::client::{ClientConfig, ClusterClient};
use kmirror_wire::backoff::BackoffConfig;
use kmirror_wire::messenger::MessengerConfig;

/// What a proxy does while its flag is set.
#[derive(Clone, Copy)]
enum Broken {
    /// Holds what it reads, connections kept open: a target that answers nothing.
    Frozen,
    /// Closes a connection at its next request and every new one: a target that is down.
    Down,
}

/// Copies `from` to `to` until either closes; while `flag` is set, as `broken` says.
async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    (flag, broken): (Arc<AtomicBool>, Broken),
) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if flag.load(Ordering::Relaxed) {
            match broken {
                Broken::Frozen => std::future::pending::<()>().await,
                Broken::Down => return,
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A proxy in front of `upstream`, broken as `broken` says while `flag` is set.
async fn proxy(listener: TcpListener, upstream: String, flag: Arc<AtomicBool>, broken: Broken) {
    while let Ok((client, _)) = listener.accept().await {
        if matches!(broken, Broken::Down) && flag.load(Ordering::Relaxed) {
            continue;
        }
        let Ok(server) = TcpStream::connect(&upstream).await else {
            return;
        };
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        tokio::spawn(copy(client_read, server_write, (flag.clone(), broken)));
        tokio::spawn(copy(server_read, client_write, (flag.clone(), broken)));
    }
}

/// A broker behind a [`proxy`] broken as `broken` says while the flag returned is set, a
/// client of it (the client's defaults: a request not answered fails after 30 s) and
/// `__kmirror_progress` there.
async fn target_behind(
    broken: Broken,
) -> (
    kmirror_broker::RunningBroker,
    Arc<ClusterClient>,
    Arc<AtomicBool>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap().to_string();
    let broker = kmirror_broker::start(kmirror_broker::BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        advertised_listener: Some(proxy_addr.clone()),
        ..kmirror_broker::BrokerConfig::default()
    })
    .await
    .unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    tokio::spawn(proxy(
        listener,
        broker.local_addr.to_string(),
        flag.clone(),
        broken,
    ));
    let target = Arc::new(ClusterClient::new(ClientConfig {
        cluster: "target".into(),
        bootstrap: vec![proxy_addr],
        messenger: MessengerConfig::default(),
        backoff: BackoffConfig::default(),
        replication_factor: None,
    }));
    target.refresh_metadata().await.unwrap();
    target.create_topic(PROGRESS_TOPIC, 1, &[]).await.unwrap();
    target.refresh_metadata().await.unwrap();
    (broker, target, flag)
}

#[tokio::test]
async fn a_stop_does_not_wait_for_a_write_the_target_never_answers() {
    let (broker, target, frozen) = target_behind(Broken::Frozen).await;
    let progress = Arc::new(Progress::new("f", codec::Loaded::default(), 1 << 20));
    progress.advance(&sp(0), pos(5));
    progress.write(&target).await.unwrap();

    // The target stops answering; a position changes, and the writer starts writing it.
    frozen.store(true, Ordering::Relaxed);
    progress.advance(&sp(0), pos(9));
    let stop = CancellationToken::new();
    let writer = tokio::spawn(progress.clone().run_writer(
        target.clone(),
        Duration::from_millis(10),
        stop.clone(),
        crate::mirror::Drain::new(Duration::ZERO),
    ));
    while progress.writing.try_lock().is_ok() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    // The final write gets FINAL_WRITE_LEAST (3 s) here; the one under way would have held
    // the stop for the 30 s request timeout.
    let ended = tokio::time::timeout(Duration::from_secs(15), writer).await;
    assert!(ended.is_ok(), "the writer still waits for an answer");
    // What the cut-short write took is still to be written.
    assert!(!progress.take().entries.is_empty());
    let _ = broker.shutdown().await;
}

/// A drain that used all its time leaves the final write FINAL_WRITE_LEAST (3 s), its
/// retries included: a target down when the drain ends and back half a second later is
/// written to.
#[tokio::test]
async fn the_final_write_retries_for_its_least_time_after_the_drain() {
    let (broker, target, down) = target_behind(Broken::Down).await;
    let progress = Arc::new(Progress::new("f", codec::Loaded::default(), 1 << 20));
    progress.advance(&sp(0), pos(5));
    progress.write(&target).await.unwrap();

    down.store(true, Ordering::Relaxed);
    progress.advance(&sp(0), pos(9));
    let stop = CancellationToken::new();
    stop.cancel();
    tokio::spawn({
        let down = down.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            down.store(false, Ordering::Relaxed);
        }
    });
    progress
        .clone()
        .run_writer(
            target.clone(),
            Duration::from_millis(10),
            stop,
            crate::mirror::Drain::new(Duration::ZERO),
        )
        .await;
    assert!(
        progress.take().entries.is_empty(),
        "the final write gave up while the target was down"
    );
    let _ = broker.shutdown().await;
}

/// A write that fails is remembered with the time of the first failure, for `/readyz`,
/// until one succeeds.
#[test]
fn failing_writes_are_kept_from_the_first_until_one_succeeds() {
    let progress = Progress::new("f", codec::Loaded::default(), 1 << 20);
    assert_eq!(progress.write_failing(), None);
    let refused = |why: &str| crate::client::ClientError::NoBroker {
        cluster: "west".into(),
        reason: why.into(),
    };
    progress.note_write(Err(&refused("connection refused")));
    let (since, _) = progress.write_failing().unwrap();
    progress.note_write(Err(&refused("timed out")));
    let (again, error) = progress.write_failing().unwrap();
    assert_eq!(again, since, "failing since the first failure");
    assert!(error.contains("timed out"), "the last error: {error}");
    progress.note_write(Ok(()));
    assert_eq!(progress.write_failing(), None);
}
