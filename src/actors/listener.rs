//! The listener: accepts TCP connections and starts an inbound connection actor for each.
//! Telling Kafka-protocol clients apart by the first byte comes with the Kafka face; today a
//! connection whose first frame is not ours is closed by its connection actor.
//!
//! Owns the accept loop only; the socket itself is shared with the node supervisor so that a
//! restarted listener (or a restarted node) accepts on the same port. A connection is accepted
//! only once one of `max.connections` slots is free (the rest wait in the kernel's backlog), and
//! one from an address that has its `max.connections.per.ip` already is closed at once. It must
//! never block or spin: a failed accept (out of descriptors, say) waits before the next, and
//! never stops the node.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::net::TcpListener;

use super::connection_slots::ConnectionSlots;
use super::inbound::InboundConnection;
use super::messages::{Close, InboundRequest};
use super::supervision::*;
use crate::protocol::Handshake;

/// Pause after a failed accept, so the loop never spins a core.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Pause after running out of descriptors (EMFILE, ENFILE): longer, as it lasts until some
/// connection or file closes, and each try costs a log line.
const OUT_OF_DESCRIPTORS_BACKOFF: Duration = Duration::from_secs(1);

pub struct Listener {
    /// Dropped on `Close`, so a stopped node frees its port.
    socket: Option<Arc<TcpListener>>,
    local: Handshake,
    driver: Recipient<InboundRequest>,
    closed: bool,
    budget: RestartBudget,
    node: Option<Recipient<SupervisionEvent>>,
    slots: Arc<ConnectionSlots>,
    tls: Option<Arc<crate::security::PeerTls>>,
}

impl Listener {
    pub fn new(
        socket: Arc<TcpListener>,
        local: Handshake,
        driver: Recipient<InboundRequest>,
        node: Option<Recipient<SupervisionEvent>>,
        slots: Arc<ConnectionSlots>,
        tls: Option<Arc<crate::security::PeerTls>>,
    ) -> Self {
        Listener {
            socket: Some(socket),
            local,
            driver,
            closed: false,
            budget: RestartBudget::default(),
            node,
            slots,
            tls,
        }
    }

    fn accept_next(&mut self, ctx: &mut Context<Self>) {
        let Some(socket) = self.socket.clone() else {
            return;
        };
        let slots = self.slots.clone();
        actix::fut::wrap_future::<_, Self>(async move {
            let permit = slots.wait_for_slot().await;
            (socket.accept().await, permit)
        })
        .map(|(result, permit), act, ctx| match result {
            Ok((stream, address)) => {
                match act.slots.admit(permit, address.ip()) {
                    Ok(slot) => {
                        let limits = act.slots.limits();
                        let (local, driver) = (act.local.clone(), act.driver.clone());
                        let tls = act.tls.clone();
                        InboundConnection::new(stream, local, driver, slot, limits, tls).start();
                    }
                    Err(e) => tracing::info!(peer = %address, reason = %e, "refused a connection"),
                }
                act.accept_next(ctx);
            }
            Err(e) => {
                let backoff = match e.raw_os_error() {
                    Some(code) if code == EMFILE || code == ENFILE => {
                        tracing::warn!(error = %e, "out of file descriptors: not accepting for a second");
                        OUT_OF_DESCRIPTORS_BACKOFF
                    }
                    _ => {
                        tracing::warn!(error = %e, "accept failed");
                        ACCEPT_ERROR_BACKOFF
                    }
                };
                ctx.run_later(backoff, |act, ctx| act.accept_next(ctx));
            }
        })
        .spawn(ctx);
    }
}

/// `errno` values of running out of descriptors (the process's, the system's): Rust has no stable
/// `ErrorKind` for them.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

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
