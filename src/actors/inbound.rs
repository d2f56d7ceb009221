//! One inbound connection from a peer (or an id-less client): checks its handshake, forwards its
//! requests to the driver and writes the answers back.
//!
//! A peer from another cluster, with another protocol version, or sending a corrupt frame is
//! disconnected with a log line; nothing it sent reaches the protocol core. Not supervised: a
//! panic kills only this actor, which drops the socket, and the peer's outbound connection dials
//! again.

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::codec::FramedRead;

use super::messages::{Close, InboundRequest, SendResponse};
use crate::protocol::{FrameCodec, FrameError, Handshake, PeerMessage};

type Writer = FramedWrite<PeerMessage, OwnedWriteHalf, FrameCodec>;

pub struct InboundConnection {
    stream: Option<TcpStream>,
    local: Handshake,
    driver: Recipient<InboundRequest>,
    writer: Option<Writer>,
    remote: Option<Handshake>,
    peer_address: String,
}

impl InboundConnection {
    pub fn new(stream: TcpStream, local: Handshake, driver: Recipient<InboundRequest>) -> Self {
        let peer_address = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        InboundConnection {
            stream: Some(stream),
            local,
            driver,
            writer: None,
            remote: None,
            peer_address,
        }
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
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        ctx.add_stream(FramedRead::new(read, FrameCodec));
        self.writer = Some(FramedWrite::new(write, FrameCodec, ctx));
    }
}

impl StreamHandler<Result<PeerMessage, FrameError>> for InboundConnection {
    fn handle(&mut self, item: Result<PeerMessage, FrameError>, ctx: &mut Context<Self>) {
        match (item, self.remote.is_some()) {
            (Ok(PeerMessage::Handshake(remote)), false) => match self.local.accepts(&remote) {
                Ok(()) => {
                    if let Some(writer) = self.writer.as_mut() {
                        writer.write(PeerMessage::Handshake(self.local.clone()));
                    }
                    self.remote = Some(remote);
                }
                Err(reason) => {
                    tracing::warn!(peer = %self.peer_address, reason, "refusing connection");
                    self.close(ctx);
                }
            },
            (Ok(PeerMessage::Request { request, .. }), true) if request.insanity().is_some() => {
                tracing::warn!(peer = %self.peer_address, request = request.name(), reason = request.insanity(), "invalid request; closing");
                self.close(ctx);
            }
            (Ok(PeerMessage::Request { request, .. }), true)
                if request.sender() != self.remote.as_ref().and_then(|r| r.node_id) =>
            {
                // A peer may only speak for the node it said it is in its handshake.
                tracing::warn!(peer = %self.peer_address, request = request.name(), sender = ?request.sender(), "request sent on behalf of another node; closing");
                self.close(ctx);
            }
            (
                Ok(PeerMessage::Request {
                    correlation_id,
                    request,
                }),
                true,
            ) => {
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
                self.close(ctx);
            }
            (Err(e), _) => {
                tracing::warn!(peer = %self.peer_address, error = %e, "bad frame; closing the connection");
                self.close(ctx);
            }
        }
    }
}

impl Handler<SendResponse> for InboundConnection {
    type Result = ();

    fn handle(&mut self, msg: SendResponse, _: &mut Context<Self>) {
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
