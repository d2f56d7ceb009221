//! One outbound connection to a peer: connects (and reconnects with backoff), exchanges
//! handshakes, writes the driver's requests and hands back the responses.
//!
//! Owns the socket and the correlation ids in flight on it. It must never hold a request it
//! cannot send: while disconnected a request fails at once, so the protocol core backs off and
//! retries on its own schedule.
//!
//! Supervised: after a panic or a stop it fails what was in flight and connects afresh.

use std::time::Duration;

use std::sync::Arc;

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::messages::{Close, PeerEvent, SendRequest};
use super::supervision::*;
use crate::protocol::{FrameCodec, FrameError, Handshake, PeerMessage};
use crate::security::{PeerStream, PeerTls, plain_stream};
use crate::types::NodeId;

/// First wait before reconnecting; doubled after each failure up to [`MAX_RECONNECT_BACKOFF`].
const MIN_RECONNECT_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between reconnection attempts: short enough that a restarted peer is found
/// well within an election timeout.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_millis(1000);
/// Requests remembered as in flight on one connection. The core sends at most two at a time per
/// peer (one fetch, one control); the rest are requests the core timed out long ago whose answers
/// never came (the peer restarted its core), so past this the oldest is forgotten.
const MAX_IN_FLIGHT: usize = 64;

type Writer = FramedWrite<PeerMessage, Box<dyn AsyncWrite + Unpin + Send>, FrameCodec>;

pub struct OutboundConnection {
    peer: NodeId,
    address: String,
    local: Handshake,
    driver: Recipient<PeerEvent>,
    writer: Option<Writer>,
    /// The peer answered our handshake: requests may flow.
    ready: bool,
    in_flight: std::collections::VecDeque<u64>,
    backoff: Duration,
    /// The current connection's read stream, cancelled on disconnect so that a stale stream's
    /// end can never tear down a newer connection.
    reader: Option<SpawnHandle>,
    span: tracing::Span,
    /// Closed by the driver: never reconnect.
    closed: bool,
    budget: RestartBudget,
    node: Option<Recipient<SupervisionEvent>>,
    /// Mutual TLS, when the quorum listener is SSL: the peer's certificate must name `peer`.
    tls: Option<Arc<PeerTls>>,
    /// A bootstrap server (`controller.quorum.bootstrap.servers`), known by the negative id the
    /// node gave it: its certificate and handshake name its real node id, which is accepted.
    bootstrap: bool,
}

impl OutboundConnection {
    pub fn new(
        peer: NodeId,
        address: String,
        local: Handshake,
        driver: Recipient<PeerEvent>,
        node: Option<Recipient<SupervisionEvent>>,
        tls: Option<Arc<PeerTls>>,
    ) -> Self {
        let span = tracing::info_span!("peer", node_id = ?local.node_id, peer_id = %peer);
        OutboundConnection {
            peer,
            address,
            local,
            driver,
            writer: None,
            ready: false,
            in_flight: std::collections::VecDeque::new(),
            backoff: MIN_RECONNECT_BACKOFF,
            reader: None,
            span,
            closed: false,
            budget: RestartBudget::default(),
            node,
            tls,
            bootstrap: false,
        }
    }

    /// The same connection to a bootstrap server: the id it answers with is not checked
    /// against the (negative) one it is known by.
    pub fn to_bootstrap_server(mut self) -> Self {
        self.bootstrap = true;
        self
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        let address = self.address.clone();
        let (tls, peer) = (
            self.tls.clone(),
            Some(self.peer).filter(|_| !self.bootstrap),
        );
        actix::fut::wrap_future::<_, Self>(async move {
            let tcp = TcpStream::connect(&address).await?;
            match tls {
                None => Ok(plain_stream(tcp)),
                Some(tls) => tls.connect(tcp, host_of(&address), peer).await,
            }
        })
        .map(|result: std::io::Result<PeerStream>, act, ctx| match result {
            Ok(stream) => act.attach(stream, ctx),
            Err(e) => {
                if act.tls.is_some() {
                    tracing::warn!(address = %act.address, error = %e, "TLS connection to the peer failed");
                }
                act.retry_later(ctx)
            }
        })
        .spawn(ctx);
    }

    fn attach(&mut self, stream: PeerStream, ctx: &mut Context<Self>) {
        self.reader = Some(ctx.add_stream(FramedRead::new(stream.read, FrameCodec)));
        let mut writer = FramedWrite::new(stream.write, FrameCodec, ctx);
        writer.write(PeerMessage::Handshake(self.local.clone()));
        self.writer = Some(writer);
    }

    fn retry_later(&mut self, ctx: &mut Context<Self>) {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_RECONNECT_BACKOFF);
        ctx.run_later(wait, |act, ctx| act.connect(ctx));
    }

    /// The connection is gone: fail what was in flight and reconnect later.
    fn disconnected(&mut self, ctx: &mut Context<Self>) {
        // Both the reader and the writer may report the same loss: act once per connection.
        let Some(reader) = self.reader.take() else {
            return;
        };
        ctx.cancel_future(reader);
        tracing::debug!(address = %self.address, in_flight = self.in_flight.len(), "disconnected");
        if let Some(mut writer) = self.writer.take() {
            writer.close();
        }
        self.ready = false;
        self.fail_in_flight();
        self.retry_later(ctx);
    }

    fn fail_in_flight(&mut self) {
        for correlation_id in self.in_flight.drain(..) {
            self.driver.do_send(PeerEvent::Failed {
                to: self.peer,
                correlation_id,
            });
        }
    }

    fn send(&mut self, msg: SendRequest) {
        let Some(writer) = self.writer.as_mut().filter(|_| self.ready) else {
            tracing::debug!(
                connected = self.writer.is_some(),
                "request refused: not connected"
            );
            self.driver.do_send(PeerEvent::Failed {
                to: self.peer,
                correlation_id: msg.correlation_id,
            });
            return;
        };
        writer.write(PeerMessage::Request {
            correlation_id: msg.correlation_id,
            request: msg.request,
        });
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back(msg.correlation_id);
    }
}

impl Actor for OutboundConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
    }
}

impl Supervised for OutboundConnection {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        // The restart dropped the socket's reader and writer futures with the context.
        self.reader = None;
        self.writer = None;
        self.ready = false;
        self.fail_in_flight();
        if !self.closed {
            on_restart(
                ctx,
                ActorKind::Peer(self.peer),
                &mut self.budget,
                &self.node,
            );
        }
    }
}

impl Handler<Close> for OutboundConnection {
    type Result = ();
    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        self.closed = true;
        if let Some(mut writer) = self.writer.take() {
            writer.close();
        }
        self.fail_in_flight();
        ctx.stop();
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<InjectFault> for OutboundConnection {
    type Result = ();
    fn handle(&mut self, msg: InjectFault, ctx: &mut Context<Self>) {
        apply_fault(ctx, ActorKind::Peer(self.peer), msg.0);
    }
}

impl Handler<SendRequest> for OutboundConnection {
    type Result = ();

    fn handle(&mut self, msg: SendRequest, ctx: &mut Context<Self>) {
        guarded(ctx, ActorKind::Peer(self.peer), || self.send(msg));
    }
}

impl StreamHandler<Result<PeerMessage, FrameError>> for OutboundConnection {
    fn handle(&mut self, item: Result<PeerMessage, FrameError>, ctx: &mut Context<Self>) {
        let span = self.span.clone();
        let _entered = span.enter();
        self.receive(item, ctx);
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.disconnected(ctx);
    }
}

impl OutboundConnection {
    fn receive(&mut self, item: Result<PeerMessage, FrameError>, ctx: &mut Context<Self>) {
        match item {
            Ok(PeerMessage::Handshake(remote)) if !self.ready => {
                match self
                    .local
                    .accepts(&remote)
                    .and_then(|()| self.is_the_peer(&remote))
                {
                    Ok(()) => {
                        self.ready = true;
                        self.backoff = MIN_RECONNECT_BACKOFF;
                        tracing::debug!(address = %self.address, "connected");
                    }
                    Err(reason) => {
                        tracing::warn!(address = %self.address, reason, "refusing peer");
                        self.disconnected(ctx);
                    }
                }
            }
            Ok(PeerMessage::Response { response, .. }) if response.insanity().is_some() => {
                tracing::warn!(address = %self.address, reason = response.insanity(), "invalid response from peer; reconnecting");
                self.disconnected(ctx);
            }
            Ok(PeerMessage::Response {
                correlation_id,
                #[cfg_attr(not(feature = "fault-injection"), allow(unused_mut))]
                mut response,
            }) if self.ready => {
                #[cfg(feature = "fault-injection")]
                super::tamper::apply(self.peer, &mut response);
                self.in_flight.retain(|c| *c != correlation_id);
                self.driver.do_send(PeerEvent::Response {
                    from: self.peer,
                    correlation_id,
                    response,
                });
            }
            Ok(other) => {
                tracing::warn!(address = %self.address, message = ?std::mem::discriminant(&other), "protocol error from peer");
                self.disconnected(ctx);
            }
            Err(e) => {
                tracing::warn!(address = %self.address, error = %e, "bad frame from peer; reconnecting");
                self.disconnected(ctx);
            }
        }
    }
}

impl OutboundConnection {
    /// Whether the node that answered is the one dialled: a voter's address may now serve
    /// another node (a moved or misconfigured voter), whose answers must not count as the
    /// voter's. A bootstrap server is known only by its address, so any id is its own.
    fn is_the_peer(&self, remote: &Handshake) -> Result<(), String> {
        if self.bootstrap || remote.node_id == Some(self.peer) {
            return Ok(());
        }
        Err(format!(
            "the node at {} is {:?}, not node {}",
            self.address, remote.node_id, self.peer
        ))
    }
}

impl WriteHandler<FrameError> for OutboundConnection {
    /// Closing the writer on a disconnect ends up here; the default would stop the actor, and a
    /// stopped connection would never reconnect.
    fn finished(&mut self, _: &mut Context<Self>) {}

    fn error(&mut self, err: FrameError, ctx: &mut Context<Self>) -> Running {
        tracing::debug!(address = %self.address, error = %err, "write failed");
        self.disconnected(ctx);
        Running::Continue
    }
}

/// The host part of `host:port` (an IPv6 literal without its brackets), the name a peer's
/// certificate must carry when host names are checked.
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}
