//! Setting a connection up is held to what is left of the connect timeout.

use std::time::Duration;

use super::{Messenger, MessengerConfig, RequestError};

/// The TCP connect and the TLS handshake took most of the connect timeout: ApiVersions
/// gets what is left, not a connect timeout of its own.
#[tokio::test]
async fn the_setup_gets_what_is_left_of_the_connect_timeout() {
    let (client, _silent_peer) = tokio::io::duplex(1 << 16);
    let (read, write) = tokio::io::split(client);
    let config = MessengerConfig {
        connect_timeout: Duration::from_secs(60),
        ..MessengerConfig::default()
    };
    let left = tokio::time::Instant::now() + Duration::from_millis(100);
    let setup = Messenger::over_until("silent".into(), read, write, config, left);
    match tokio::time::timeout(Duration::from_secs(30), setup).await {
        Ok(Err(RequestError::Connect { message, .. })) => {
            assert!(message.contains("did not answer ApiVersions"), "{message}")
        }
        Ok(other) => panic!("set up against a silent peer: {:?}", other.err()),
        Err(_) => panic!("the setup took a connect timeout of its own"),
    }
}

/// A connect timeout too long for the clock is a long wait, not a panic.
#[tokio::test]
async fn a_connect_timeout_of_centuries_does_not_overflow_the_clock() {
    let deadline = super::setup_deadline(Duration::MAX);
    assert!(deadline > tokio::time::Instant::now() + Duration::from_secs(3600));
}
