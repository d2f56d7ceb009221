//! The listener: accepts TCP connections and starts an inbound connection actor for each.
//! Telling Kafka-protocol clients apart by the first byte comes with the Kafka face; today a
//! connection whose first frame is not ours is closed by its connection actor.
//!
//! Owns the accept loop only; the socket itself is shared with the node supervisor so that a
//! restarted listener (or a restarted node) accepts on the same port. It must never block or
//! spin: a failed accept waits before the next.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::net::TcpListener;

use super::inbound::InboundConnection;
use super::messages::{Close, InboundRequest};
use super::supervision::*;
use crate::protocol::Handshake;

/// Pause after a failed accept (e.g. out of file descriptors), so the loop never spins a core.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

pub struct Listener {
    /// Dropped on `Close`, so a stopped node frees its port.
    socket: Option<Arc<TcpListener>>,
    local: Handshake,
    driver: Recipient<InboundRequest>,
    closed: bool,
    budget: RestartBudget,
    node: Option<Recipient<SupervisionEvent>>,
}

impl Listener {
    pub fn new(
        socket: Arc<TcpListener>,
        local: Handshake,
        driver: Recipient<InboundRequest>,
        node: Option<Recipient<SupervisionEvent>>,
    ) -> Self {
        Listener {
            socket: Some(socket),
            local,
            driver,
            closed: false,
            budget: RestartBudget::default(),
            node,
        }
    }

    fn accept_next(&mut self, ctx: &mut Context<Self>) {
        let Some(socket) = self.socket.clone() else {
            return;
        };
        actix::fut::wrap_future::<_, Self>(async move { socket.accept().await })
            .map(|result, act, ctx| match result {
                Ok((stream, _)) => {
                    InboundConnection::new(stream, act.local.clone(), act.driver.clone()).start();
                    act.accept_next(ctx);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    ctx.run_later(ACCEPT_ERROR_BACKOFF, |act, ctx| act.accept_next(ctx));
                }
            })
            .spawn(ctx);
    }
}

/// Converts a bound std listener for use by [`Listener`].
pub fn adopt(listener: std::net::TcpListener) -> std::io::Result<Arc<TcpListener>> {
    listener.set_nonblocking(true)?;
    Ok(Arc::new(TcpListener::from_std(listener)?))
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.accept_next(ctx);
    }
}

impl Supervised for Listener {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        if !self.closed {
            on_restart(ctx, ActorKind::Listener, &mut self.budget, &self.node);
        }
    }
}

impl Handler<Close> for Listener {
    type Result = ();
    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        self.closed = true;
        self.socket = None;
        ctx.stop();
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<InjectFault> for Listener {
    type Result = ();
    fn handle(&mut self, msg: InjectFault, ctx: &mut Context<Self>) {
        apply_fault(ctx, ActorKind::Listener, msg.0);
    }
}
