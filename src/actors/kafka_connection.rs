//! One connection from a Kafka client: reads a request, has [`KafkaFace`] serve it, writes the
//! answer, and only then reads the next — Kafka's muted channel, so answers go out in request
//! order and one connection holds at most one request in the node.
//!
//! A frame that is too large, an unknown api or version, or a body that fails the bounds walk
//! or decoding closes the connection with one log line naming the peer and the reason, as
//! Kafka's socket server does; nothing of it reaches the node. So does `connections.max.idle.ms`
//! of silence. Not supervised: a panic ends only this actor, and its client reconnects.

use std::time::{Duration, Instant};

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio_util::codec::FramedRead;

use super::connection_slots::ConnectionSlot;
use super::kafka_service::KafkaFace;
use crate::config::ConnectionLimits;
use crate::kafka::request::{Parsed, parse};
use crate::kafka::response::encode;
use crate::kafka::{KafkaCodec, KafkaFrameError, cluster};
use crate::security::PeerStream;

/// Shortest interval between idle checks (a fraction of the idle limit otherwise).
const MIN_IDLE_CHECK: Duration = Duration::from_millis(10);

type Writer = FramedWrite<Bytes, Box<dyn AsyncWrite + Unpin + Send>, KafkaCodec>;

pub struct KafkaConnection {
    stream: Option<PeerStream>,
    face: KafkaFace,
    writer: Option<Writer>,
    peer_address: String,
    limits: ConnectionLimits,
    slot: ConnectionSlot,
    last_activity: Instant,
}

impl KafkaConnection {
    pub fn new(
        stream: PeerStream,
        face: KafkaFace,
        peer_address: String,
        slot: ConnectionSlot,
        limits: ConnectionLimits,
    ) -> Self {
        KafkaConnection {
            stream: Some(stream),
            face,
            writer: None,
            peer_address,
            limits,
            slot,
            last_activity: Instant::now(),
        }
    }

    fn close(&mut self, ctx: &mut Context<Self>) {
        if let Some(mut writer) = self.writer.take() {
            writer.close();
        }
        ctx.stop();
    }

    fn send(&mut self, frame: Bytes) {
        self.last_activity = Instant::now();
        if let Some(writer) = self.writer.as_mut() {
            writer.write(frame);
        }
    }

    /// Serves one request; the actor handles nothing else (no further frame is read) until the
    /// answer is written.
    fn serve(&mut self, frame: Bytes, ctx: &mut Context<Self>) {
        let (meta, request) = match parse(frame) {
            Ok(Parsed::Request { meta, request }) => (meta, request),
            Ok(Parsed::ApiVersionsTooNew { correlation_id }) => {
                match encode(correlation_id, 0, &cluster::api_versions_too_new()) {
                    Ok(frame) => self.send(frame),
                    Err(e) => self.refuse(&e.to_string(), ctx),
                }
                return;
            }
            Err(e) => return self.refuse(&e.to_string(), ctx),
        };
        let face = self.face.clone();
        let api = meta.api_key;
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(async move { face.serve(meta, *request).await })
                .map(move |result, act, ctx| match result {
                    Ok(Some(frame)) => act.send(frame),
                    Ok(None) => act.last_activity = Instant::now(),
                    Err(e) => act.refuse(&format!("{api:?}: {e}"), ctx),
                }),
        );
    }

    fn refuse(&mut self, reason: &str, ctx: &mut Context<Self>) {
        tracing::warn!(client = %self.peer_address, reason, "closing a Kafka client connection");
        self.slot
            .rejected_frame(crate::metrics::FrameRejection::KafkaRequest);
        self.close(ctx);
    }

    fn watch_idle(&mut self, ctx: &mut Context<Self>) {
        let period = (self.limits.idle / 4).max(MIN_IDLE_CHECK);
        ctx.run_interval(period, |act, ctx| {
            if act.last_activity.elapsed() >= act.limits.idle {
                tracing::info!(client = %act.peer_address, idle = ?act.limits.idle, "closing an idle Kafka client connection");
                act.close(ctx);
            }
        });
    }
}

impl Actor for KafkaConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let stream = self.stream.take().expect("started once");
        ctx.add_stream(FramedRead::new(stream.read, KafkaCodec));
        self.writer = Some(FramedWrite::new(stream.write, KafkaCodec, ctx));
        self.watch_idle(ctx);
    }
}

impl StreamHandler<Result<Bytes, KafkaFrameError>> for KafkaConnection {
    fn handle(&mut self, item: Result<Bytes, KafkaFrameError>, ctx: &mut Context<Self>) {
        self.last_activity = Instant::now();
        match item {
            Ok(frame) => self.serve(frame, ctx),
            Err(KafkaFrameError::Io(e)) => {
                tracing::debug!(client = %self.peer_address, error = %e, "Kafka client connection failed");
                ctx.stop();
            }
            Err(e) => self.refuse(&e.to_string(), ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl WriteHandler<KafkaFrameError> for KafkaConnection {
    fn error(&mut self, err: KafkaFrameError, _: &mut Self::Context) -> Running {
        tracing::debug!(client = %self.peer_address, error = %err, "write to a Kafka client failed");
        Running::Stop
    }
}
