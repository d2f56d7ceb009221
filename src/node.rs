//! A kraft node assembled from its actors, and the handle a Rust program uses to drive it.
//!
//! Owns start-up (recover the log and election state, start the protocol core) and the public
//! library API. It must never expose actor internals: users see `NodeHandle` only.
//!
//! Today a node runs a single-voter quorum (or waits as a voter/observer of a larger one with no
//! peer connections); peer connections, the listener and supervision come next.

use std::collections::BTreeSet;
use std::path::PathBuf;

use actix::prelude::*;
use bytes::Bytes;

use crate::actors::driver::Network;
use crate::actors::listener::spawn_listener;
use crate::actors::messages::{
    AppendError, Describe, FlushLog, NodeEvent, Propose, ReadLog, Recover, Shutdown, Status, Stop,
    Subscribe,
};
use crate::actors::{LogStore, ReplicationDriver};
use crate::protocol::{Handshake, PROTOCOL_VERSION};
use crate::raft::{LogView, RaftConfig, Replica};
use crate::storage::{LogConfig, StorageError};
use crate::types::{NodeId, Offset};

/// Everything needed to start a node (a subset of `NodeConfig` plus where its log lives).
#[derive(Debug)]
pub struct NodeOptions {
    pub cluster_id: String,
    pub node_id: Option<NodeId>,
    pub voters: BTreeSet<NodeId>,
    /// `host:port` of each voter (this node's own entry is not dialled).
    pub voter_addresses: Vec<(NodeId, String)>,
    /// A bound listener for peers (bind `127.0.0.1:0` first to avoid port races), if any.
    pub listener: Option<std::net::TcpListener>,
    /// The partition directory, e.g. `<metadata log dir>/__raft_performance_test-0`.
    pub partition_dir: PathBuf,
    pub log: LogConfig,
    /// Protocol timers and limits (Kafka's defaults unless changed).
    pub raft: Option<RaftConfig>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the log store stopped during start-up")]
    Stopped,
    #[error("cannot listen: {0}")]
    Listen(std::io::Error),
}

/// A running node. Cheap to clone; every clone drives the same node.
#[derive(Clone)]
pub struct NodeHandle {
    driver: Addr<ReplicationDriver>,
    log_store: Addr<LogStore>,
    log_arbiter: std::sync::Arc<Arbiter>,
    listener: Option<std::sync::Arc<tokio::task::JoinHandle<()>>>,
}

impl NodeHandle {
    /// Starts a node on the current actix system: recovers its log and election state, then
    /// starts the protocol core.
    pub async fn start(options: NodeOptions) -> Result<NodeHandle, NodeError> {
        let arbiter = Arbiter::new();
        let dir = options.partition_dir.clone();
        let log_config = options.log;
        let log_store =
            LogStore::start_in_arbiter(&arbiter.handle(), move |_| LogStore::new(dir, log_config));
        let recovered = log_store
            .send(Recover)
            .await
            .map_err(|_| NodeError::Stopped)??;
        let mut raft = options.raft.unwrap_or_else(|| {
            RaftConfig::new(
                &options.cluster_id,
                options.node_id,
                options.voters.iter().copied(),
            )
        });
        raft.cluster_id = options.cluster_id.clone();
        raft.local_id = options.node_id;
        raft.voters = options.voters.clone();
        let view = LogView::new(
            recovered.log_start_offset,
            recovered.log_end_offset,
            recovered.epochs,
        );
        let now = ReplicationDriver::wall_clock_now();
        let seed = now.as_nanos() as u64 ^ u64::from(options.node_id.map_or(0, |n| n.0 as u32));
        let (replica, actions) = Replica::start(raft, recovered.election, view, now, seed);
        let local = Handshake {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: options.cluster_id.clone(),
            node_id: options.node_id,
        };
        let peers = options
            .voter_addresses
            .iter()
            .filter(|(id, _)| Some(*id) != options.node_id)
            .cloned()
            .collect();
        let network = Network {
            local: local.clone(),
            peers,
        };
        let driver =
            ReplicationDriver::new(replica, actions, log_store.clone(), network, now).start();
        let listener = match options.listener {
            Some(listener) => Some(std::sync::Arc::new(
                spawn_listener(listener, local, driver.clone().recipient())
                    .map_err(NodeError::Listen)?,
            )),
            None => None,
        };
        Ok(NodeHandle {
            driver,
            log_store,
            log_arbiter: std::sync::Arc::new(arbiter),
            listener,
        })
    }

    /// Appends record values through this node, which must lead. Resolves with the offsets the
    /// records got once they are committed.
    pub async fn append(&self, records: Vec<Bytes>) -> Result<(Offset, Offset), AppendError> {
        self.driver
            .send(Propose(records))
            .await
            .unwrap_or(Err(AppendError::Stopped))
    }

    /// Starts the performance workload: while this node leads, `throughput` random records per
    /// second of `record_size` bytes are appended, and statistics are logged.
    pub fn start_workload(&self, throughput: u32, record_size: u32) {
        crate::actors::workload::WorkloadProducer::new(
            self.driver.clone(),
            throughput,
            record_size,
        )
        .start();
    }

    /// The node's current role, epoch, leader, high watermark and log end offset.
    pub async fn describe(&self) -> Option<Status> {
        self.driver.send(Describe).await.ok()
    }

    /// Leader changes and high-watermark advances, in order, from now on. Read the committed
    /// records with [`NodeHandle::read_committed`].
    pub async fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<NodeEvent>> {
        self.driver.send(Subscribe).await.ok()
    }

    /// Whole record batches from `from` below the high watermark (at most `max_bytes`, but at
    /// least one batch). Empty when nothing is committed there yet.
    pub async fn read_committed(&self, from: Offset, max_bytes: u32) -> Result<Bytes, NodeError> {
        let hw = self
            .describe()
            .await
            .and_then(|s| s.high_watermark)
            .unwrap_or(Offset(0));
        if from >= hw {
            return Ok(Bytes::new());
        }
        let bytes = self
            .log_store
            .send(ReadLog { from, max_bytes })
            .await
            .map_err(|_| NodeError::Stopped)??;
        // Keep only whole batches that end at or below the high watermark.
        let mut end = 0;
        for batch in crate::record::BatchIter::new(bytes.clone()) {
            match batch {
                Ok(b) if b.next_offset() <= hw => end += b.size_in_bytes(),
                _ => break,
            }
        }
        Ok(bytes.slice(..end))
    }

    /// Graceful shutdown: a leader hands over first, then the driver stops, the log is flushed
    /// and the log store's thread ends. Appends still waiting fail with `Stopped`.
    pub async fn shutdown(&self) {
        let _ = self.driver.send(Shutdown).await;
        let _ = self.driver.send(Stop).await;
        let _ = self.log_store.send(FlushLog).await;
        self.stop_threads();
    }

    /// Stops the node abruptly, as a crash would: no hand-over, nothing more written. What it
    /// had written but not flushed stays in the OS page cache (as after `kill -9`).
    pub async fn kill(&self) {
        let _ = self.driver.send(Stop).await;
        self.stop_threads();
    }

    fn stop_threads(&self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
        self.log_arbiter.stop();
    }
}
