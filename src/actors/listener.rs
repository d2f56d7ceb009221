//! The listener: accepts TCP connections and starts an inbound connection actor for each.
//! Telling Kafka-protocol clients apart by the first byte comes with the Kafka face; today a
//! connection whose first frame is not ours is closed by its connection actor.

use actix::prelude::*;
use tokio::net::TcpListener;

use super::inbound::InboundConnection;
use super::messages::InboundRequest;
use crate::protocol::Handshake;

/// Accepts connections on `listener` until the returned handle is aborted (or the actix system
/// stops).
pub fn spawn_listener(
    listener: std::net::TcpListener,
    local: Handshake,
    driver: Recipient<InboundRequest>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    Ok(actix::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    InboundConnection::new(stream, local.clone(), driver.clone()).start();
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            }
        }
    }))
}
