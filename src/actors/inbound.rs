//! One inbound connection from a peer (or an id-less client): checks its handshake, forwards its
//! requests to the driver and writes the answers back.
//!
//! A peer from another cluster, with another protocol version, or sending a corrupt frame is
//! disconnected with a log line; nothing it sent reaches the protocol core. So is one that has
//! not completed its handshake within `kraft.handshake.timeout.ms` (its frames limited to a few
//! KiB until then), one silent for `connections.max.idle.ms`, and one that sends a second
//! request on a channel (control, or fetch) before the first was answered: a correct peer keeps
//! one outstanding on each, so what a connection can make the node hold is bounded. Not
//! supervised: a panic kills only this actor, which drops the socket (and its connection slot),
//! and the peer's outbound connection dials again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use tokio::io::AsyncWrite;
use tokio_util::codec::FramedRead;

use super::connection_slots::ConnectionSlot;
use super::kafka_service::ClusterInfo;
use super::messages::{Close, InboundRequest, SendResponse};
use crate::config::ConnectionLimits;
use crate::metrics::FrameRejection;
use crate::protocol::{FrameCodec, FrameError, Handshake, InboundCodec, PeerMessage};
use crate::security::PeerStream;
use crate::types::NodeId;

/// Shortest interval between idle checks (a fraction of the idle limit otherwise).
const MIN_IDLE_CHECK: Duration = Duration::from_millis(10);

type Writer = FramedWrite<PeerMessage, Box<dyn AsyncWrite + Unpin + Send>, FrameCodec>;

pub struct InboundConnection {
    stream: Option<PeerStream>,
    local: Handshake,
    driver: Recipient<InboundRequest>,
    writer: Option<Writer>,
    remote: Option<Handshake>,
    peer_address: String,
    limits: ConnectionLimits,
    /// Held while the connection lives: its place among `max.connections`.
    slot: ConnectionSlot,
    /// When a frame last came in or an answer went out.
    last_activity: Instant,
    /// Whether a request is being answered, per channel: control, fetch.
    busy: [bool; 2],
    /// With TLS, the node ids the peer's certificate names (its handshake must claim one).
    certified: Option<Vec<NodeId>>,
    /// Where the racks peers announce are kept, for the Kafka face.
    cluster: Arc<ClusterInfo>,
}

/// A connection the listener has accepted (and, with TLS, authenticated) and found to start
/// with a peer frame.
pub struct Accepted {
    pub stream: PeerStream,
    pub peer_address: String,
    pub slot: ConnectionSlot,
    /// With TLS, the node ids the client's certificate names.
    pub certified: Option<Vec<NodeId>>,
}

impl InboundConnection {
    pub fn new(
        accepted: Accepted,
        local: Handshake,
        driver: Recipient<InboundRequest>,
        limits: ConnectionLimits,
        cluster: Arc<ClusterInfo>,
    ) -> Self {
        InboundConnection {
            stream: Some(accepted.stream),
            local,
            driver,
            writer: None,
            remote: None,
            peer_address: accepted.peer_address,
            limits,
            slot: accepted.slot,
            last_activity: Instant::now(),
            busy: [false; 2],
            certified: accepted.certified,
            cluster,
        }
    }

    fn attach(&mut self, stream: PeerStream, ctx: &mut Context<Self>) {
        ctx.add_stream(FramedRead::new(stream.read, InboundCodec::default()));
        self.writer = Some(FramedWrite::new(stream.write, FrameCodec, ctx));
    }

    /// With TLS, a handshake may claim only a node id the certificate names.
    fn check_claim(&self, remote: &Handshake) -> Result<(), String> {
        match (&self.certified, remote.node_id) {
            (Some(ids), Some(id)) if !ids.contains(&id) => Err(format!(
                "the handshake claims node {id}, the certificate names {ids:?}"
            )),
            _ => Ok(()),
        }
    }

    fn watch_deadlines(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(self.limits.handshake_timeout, |act, ctx| {
            if act.remote.is_none() {
                tracing::warn!(peer = %act.peer_address, timeout = ?act.limits.handshake_timeout, "no handshake in time; closing");
                act.refuse(FrameRejection::HandshakeTimeout, ctx);
            }
        });
        let period = (self.limits.idle / 4).max(MIN_IDLE_CHECK);
        ctx.run_interval(period, |act, ctx| {
            if act.last_activity.elapsed() >= act.limits.idle {
                tracing::info!(peer = %act.peer_address, idle = ?act.limits.idle, "closing an idle connection");
                act.close(ctx);
            }
        });
    }

    /// Closes the connection over a frame it will not take, counting why.
    fn refuse(&mut self, reason: FrameRejection, ctx: &mut Context<Self>) {
        self.slot.rejected_frame(reason);
        self.close(ctx);
    }

    fn close(&mut self, ctx: &mut Context<Self>) {
        if let Some(mut writer) = self.writer.take() {
            writer.close();
        }
        ctx.stop();
    }
}

impl Actor for InboundConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let stream = self.stream.take().expect("started once");
        self.attach(stream, ctx);
        self.watch_deadlines(ctx);
    }
}

impl StreamHandler<Result<PeerMessage, FrameError>> for InboundConnection {
    fn handle(&mut self, item: Result<PeerMessage, FrameError>, ctx: &mut Context<Self>) {
        self.last_activity = Instant::now();
        match (item, self.remote.is_some()) {
            (Ok(PeerMessage::Handshake(remote)), false) => match self
                .local
                .accepts(&remote)
                .and_then(|()| self.check_claim(&remote))
            {
                Ok(()) => {
                    if let Some(writer) = self.writer.as_mut() {
                        writer.write(PeerMessage::Handshake(self.local.clone()));
                    }
                    if let Some(id) = remote.node_id {
                        let (rack, dir) = (remote.rack.as_deref(), remote.directory_id);
                        self.cluster.peer_announced(id, rack, dir);
                    }
                    self.remote = Some(remote);
                }
                Err(reason) => {
                    tracing::warn!(peer = %self.peer_address, reason, "refusing connection");
                    self.refuse(FrameRejection::PeerHandshake, ctx);
                }
            },
            (Ok(PeerMessage::Request { request, .. }), true) if request.insanity().is_some() => {
                tracing::warn!(peer = %self.peer_address, request = request.name(), reason = request.insanity(), "invalid request; closing");
                self.refuse(FrameRejection::PeerInvalidRequest, ctx);
            }
            (Ok(PeerMessage::Request { request, .. }), true)
                if request.sender() != self.remote.as_ref().and_then(|r| r.node_id) =>
            {
                // A peer may only speak for the node it said it is in its handshake.
                tracing::warn!(peer = %self.peer_address, request = request.name(), sender = ?request.sender(), "request sent on behalf of another node; closing");
                self.refuse(FrameRejection::PeerImpersonation, ctx);
            }
            (Ok(PeerMessage::Request { request, .. }), true)
                if self.busy[usize::from(request.is_fetch())] =>
            {
                tracing::warn!(peer = %self.peer_address, request = request.name(), "a second request on a channel before the first was answered; closing");
                self.refuse(FrameRejection::PeerPipelined, ctx);
            }
            (
                Ok(PeerMessage::Request {
                    correlation_id,
                    request,
                }),
                true,
            ) => {
                self.busy[usize::from(request.is_fetch())] = true;
                let connection = ctx.address().recipient();
                let request = InboundRequest {
                    connection,
                    closer: ctx.address().recipient(),
                    correlation_id,
                    request,
                };
                // A stopped node closes its connections, so peers notice at once. `do_send`
                // ignores the mailbox capacity; the driver bounds what it keeps waiting.
                if self.driver.connected() {
                    self.driver.do_send(request);
                } else {
                    self.close(ctx);
                }
            }
            (Ok(_), _) => {
                tracing::warn!(peer = %self.peer_address, "protocol error: unexpected message; closing");
                self.refuse(FrameRejection::PeerUnexpected, ctx);
            }
            (Err(e), _) => {
                tracing::warn!(peer = %self.peer_address, error = %e, "bad frame; closing the connection");
                self.refuse(FrameRejection::PeerBadFrame, ctx);
            }
        }
    }
}

impl Handler<SendResponse> for InboundConnection {
    type Result = ();

    fn handle(&mut self, msg: SendResponse, _: &mut Context<Self>) {
        self.busy[usize::from(msg.response.is_fetch())] = false;
        self.last_activity = Instant::now();
        if let Some(writer) = self.writer.as_mut() {
            writer.write(PeerMessage::Response {
                correlation_id: msg.correlation_id,
                response: msg.response,
            });
        }
    }
}

impl WriteHandler<FrameError> for InboundConnection {}

impl Handler<Close> for InboundConnection {
    type Result = ();
    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        tracing::debug!(peer = %self.peer_address, "closing: the node stopped");
        self.close(ctx);
    }
}
