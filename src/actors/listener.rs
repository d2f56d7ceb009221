//! The listener: accepts TCP connections, completes the TLS handshake when the listener is SSL,
//! and sorts each connection by its first byte: 0xFF starts a kraft peer frame (an inbound peer
//! connection actor takes it), anything else is a Kafka client (a Kafka connection actor).
//! Both the TLS handshake and that first byte must arrive within `kraft.handshake.timeout.ms`.
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
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::connection_slots::{ConnectionSlot, ConnectionSlots};
use super::inbound::{Accepted, InboundConnection};
use super::kafka_connection::KafkaConnection;
use super::kafka_service::KafkaFace;
use super::messages::Close;
use super::supervision::*;
use crate::protocol::{Handshake, MAGIC};
use crate::security::{PeerStream, PeerTls, plain_stream};
use crate::types::NodeId;

/// Pause after a failed accept, so the loop never spins a core.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Pause after running out of descriptors (EMFILE, ENFILE): longer, as it lasts until some
/// connection or file closes, and each try costs a log line.
const OUT_OF_DESCRIPTORS_BACKOFF: Duration = Duration::from_secs(1);

pub struct Listener {
    /// Dropped on `Close`, so a stopped node frees its port.
    socket: Option<Arc<TcpListener>>,
    local: Handshake,
    face: KafkaFace,
    closed: bool,
    budget: RestartBudget,
    node: Option<Recipient<SupervisionEvent>>,
    slots: Arc<ConnectionSlots>,
    tls: Option<Arc<PeerTls>>,
}

impl Listener {
    pub fn new(
        socket: Arc<TcpListener>,
        local: Handshake,
        face: KafkaFace,
        node: Option<Recipient<SupervisionEvent>>,
        slots: Arc<ConnectionSlots>,
        tls: Option<Arc<PeerTls>>,
    ) -> Self {
        Listener {
            socket: Some(socket),
            local,
            face,
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
                    Ok(slot) => act.sort(stream, address.to_string(), slot),
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

    /// Hands an accepted connection to the actor for what it speaks, on its own task so a slow
    /// client never holds up accepting others.
    fn sort(&self, tcp: TcpStream, peer_address: String, slot: ConnectionSlot) {
        let (tls, limits) = (self.tls.clone(), self.slots.limits());
        let (local, face) = (self.local.clone(), self.face.clone());
        actix::spawn(async move {
            let opened = tokio::time::timeout(limits.handshake_timeout, open(tcp, tls)).await;
            let (stream, certified, first) = match opened {
                Ok(Ok(opened)) => opened,
                Ok(Err(e)) => {
                    tracing::warn!(peer = %peer_address, error = %e, "connection failed before its first byte; closing");
                    return;
                }
                Err(_) => {
                    tracing::warn!(peer = %peer_address, timeout = ?limits.handshake_timeout, "no handshake in time; closing");
                    slot.rejected_frame(crate::metrics::FrameRejection::HandshakeTimeout);
                    return;
                }
            };
            if first == MAGIC[0] {
                let driver = face.driver.clone().recipient();
                let accepted = Accepted {
                    stream,
                    peer_address,
                    slot,
                    certified,
                };
                let cluster = face.cluster.clone();
                InboundConnection::new(accepted, local, driver, limits, cluster).start();
            } else {
                KafkaConnection::new(stream, face, peer_address, slot, limits).start();
            }
        });
    }
}

/// The TLS handshake (if any), then the first byte, which is put back in front of the stream.
async fn open(
    tcp: TcpStream,
    tls: Option<Arc<PeerTls>>,
) -> std::io::Result<(PeerStream, Option<Vec<NodeId>>, u8)> {
    let (mut stream, certified) = match tls {
        Some(tls) => {
            let (stream, ids) = tls.accept(tcp).await?;
            (stream, Some(ids))
        }
        None => (plain_stream(tcp), None),
    };
    let mut first = [0u8; 1];
    if stream.read.read(&mut first).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    stream.read = Box::new(std::io::Cursor::new(first).chain(stream.read));
    Ok((stream, certified, first[0]))
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
