//! Serves one decoded Kafka request: asks the replication driver for the quorum's state, reads
//! committed batches through the log store, proposes produced batches through the driver (the
//! sole log mutator), waits for long polls and commits, and encodes the answer.
//!
//! Owns the waiting only; every decision about what to answer is in [`crate::kafka`]. It must
//! never write to the log itself nor hold anything across requests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use actix::Addr;
use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, FetchRequest, InitProducerIdRequest,
    InitProducerIdResponse, ListOffsetsRequest, ProduceRequest, ProducerId, RemoveRaftVoterRequest,
    RemoveRaftVoterResponse, UpdateRaftVoterRequest, UpdateRaftVoterResponse,
};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::ReplicationDriver;
use super::log_store::LogStore;
use super::messages::{
    AddVoter, Describe, NodeEvent, ProposeBatch, ReadLog, RemoveVoter, UpdateVoter,
    VoterChangeFailure,
};
use crate::kafka::fetch::Plan;
use crate::kafka::produce::{Acks, Refusal};
use crate::kafka::response::{EncodeError, encode};
use crate::kafka::{
    Endpoint, KafkaRequest, QuorumView, RequestMeta, cluster, fetch, offsets, produce, quorum,
    voters,
};
use crate::raft::RoleKind;
use crate::record::BatchIter;
use crate::types::{NodeId, Offset};

/// Longest a Fetch may wait for records, whatever the client asks: a parked request holds its
/// connection, so the wait is bounded (Kafka's consumers ask for 500 ms).
pub const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);
/// Most bytes a long poll waits for: a client asking for more is answered once this much has
/// committed, so a parked fetch never needs reads larger than this to decide.
pub const MAX_FETCH_MIN_BYTES: usize = 1024 * 1024;
/// Least time between a parked fetch's reads of the log.
const FETCH_RECHECK: Duration = Duration::from_millis(50);
/// Longest a Produce waits for its batch to commit when the request gives no usable timeout.
const DEFAULT_PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest read per step of a timestamp search: the scan reads the committed log in pieces.
const SEARCH_READ_BYTES: u32 = 1024 * 1024;

/// Most peers whose rack and directory id a node keeps: far more than any quorum's voters and
/// observers, few enough that peers claiming ever new ids cannot grow the maps without bound.
pub const MAX_ANNOUNCED_PEERS: usize = 1024;

/// The cluster facts every answer needs: fixed for the node's life, but for the racks peers
/// announce in their handshakes.
#[derive(Debug, Default)]
pub struct ClusterInfo {
    pub cluster_id: String,
    pub local_id: Option<NodeId>,
    pub local_rack: Option<String>,
    pub local_directory_id: Option<crate::uuid::Uuid>,
    /// Each voter's listener address, which clients dial.
    pub endpoints: Vec<Endpoint>,
    /// The quorum listener's name, reported with the voters' endpoints (none: not reported).
    pub listener_name: Option<String>,
    /// The rack each peer announced (peers without one are absent).
    pub racks: Mutex<BTreeMap<NodeId, String>>,
    /// The directory id each peer announced.
    pub directory_ids: Mutex<BTreeMap<NodeId, crate::uuid::Uuid>>,
}

impl ClusterInfo {
    /// Every node's rack that is known, this node's included.
    pub fn racks(&self) -> BTreeMap<NodeId, String> {
        let mut racks = self.racks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let (Some(id), Some(rack)) = (self.local_id, &self.local_rack) {
            racks.insert(id, rack.clone());
        }
        racks
    }

    /// Every node's directory id that is known, this node's included.
    pub fn directory_ids(&self) -> BTreeMap<NodeId, crate::uuid::Uuid> {
        let mut ids = self
            .directory_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let (Some(id), Some(dir)) = (self.local_id, self.local_directory_id) {
            ids.insert(id, dir);
        }
        ids
    }

    /// Records what a peer announced in its handshake: its rack and directory id. Ids are what
    /// peers claim (observers included), so at most [`MAX_ANNOUNCED_PEERS`] are kept: past
    /// that, a new id's announcement is dropped (its rack and directory id go unreported).
    pub fn peer_announced(&self, id: NodeId, rack: Option<&str>, directory_id: Option<[u8; 16]>) {
        let mut racks = self.racks.lock().unwrap_or_else(|e| e.into_inner());
        let mut ids = self.directory_ids.lock().unwrap_or_else(|e| e.into_inner());
        // A voter's announcement is always kept (there are few, and DescribeQuorum reports
        // their directory ids): peers claiming ever new ids must not crowd the voters out.
        let known = racks.contains_key(&id)
            || ids.contains_key(&id)
            || self.endpoints.iter().any(|e| e.node_id == id);
        if !known && racks.len().max(ids.len()) >= MAX_ANNOUNCED_PEERS {
            return;
        }
        match rack {
            Some(rack) => racks.insert(id, rack.to_owned()),
            None => racks.remove(&id),
        };
        match directory_id {
            Some(dir) => ids.insert(id, crate::uuid::Uuid(dir)),
            None => ids.remove(&id),
        };
    }
}

/// Why a request got no answer; the connection is closed with this as the log line.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the node is stopping or restarting")]
    NodeGone,
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("the acks=0 append failed ({0}); closing so the client refreshes its metadata")]
    SilentAppendFailed(String),
}

/// Milliseconds since the Unix epoch.
fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Producer ids unique across the cluster and across restarts without coordination: the node
/// id (8 bits), a millisecond clock since 2024 (41 bits, until 2093) and a counter within the
/// millisecond (14 bits). The clock part never goes backwards within a process, and a restart
/// takes longer than the millisecond it restarted in, so no id is handed out twice unless a
/// node's clock is set back across a restart (or two voter ids agree in their low 8 bits).
#[derive(Debug, Default)]
pub struct ProducerIds {
    /// The last (millisecond, counter) handed out.
    last: Mutex<(u64, u64)>,
}

/// Milliseconds from the Unix epoch to 2024-01-01.
const PRODUCER_ID_EPOCH_MS: u64 = 1_704_067_200_000;
const COUNTER_BITS: u32 = 14;
const CLOCK_BITS: u32 = 41;

impl ProducerIds {
    pub fn next(&self, node: i32, now_ms: u64) -> i64 {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let ms = now_ms.saturating_sub(PRODUCER_ID_EPOCH_MS);
        let (mut ms, mut counter) = if ms > last.0 {
            (ms, 0)
        } else {
            (last.0, last.1 + 1)
        };
        if counter >> COUNTER_BITS != 0 {
            (ms, counter) = (ms + 1, 0);
        }
        *last = (ms, counter);
        let node = (node as u64) & 0xff;
        let clock = ms & ((1 << CLOCK_BITS) - 1);
        ((node << (CLOCK_BITS + COUNTER_BITS)) | (clock << COUNTER_BITS) | counter) as i64
    }
}

/// What the Kafka face of one running node talks to.
#[derive(Clone)]
pub struct KafkaFace {
    pub driver: Addr<ReplicationDriver>,
    pub log_store: Addr<LogStore>,
    pub events: broadcast::Sender<NodeEvent>,
    pub cluster: Arc<ClusterInfo>,
    /// Hands out producer ids.
    pub producers: Arc<ProducerIds>,
}

impl KafkaFace {
    async fn view(&self) -> Result<QuorumView, ServeError> {
        let status = self
            .driver
            .send(Describe)
            .await
            .map_err(|_| ServeError::NodeGone)?;
        let voter_set: Vec<crate::raft::Voter> = status
            .voter_set
            .as_ref()
            .map(|set| set.voters().cloned().collect())
            .unwrap_or_default();
        Ok(QuorumView {
            cluster_id: self.cluster.cluster_id.clone(),
            local_id: self.cluster.local_id,
            endpoints: crate::kafka::voter_endpoints(
                &self.cluster.endpoints,
                &voter_set,
                self.cluster.listener_name.as_deref(),
            ),
            listener_name: self.cluster.listener_name.clone(),
            leader_id: status.leader_id,
            epoch: status.epoch,
            is_leader: status.role == RoleKind::Leader,
            high_watermark: status.high_watermark,
            log_start_offset: status.log_start_offset,
            log_end_offset: status.log_end_offset,
            voter_progress: status.voters,
            racks: self.cluster.racks(),
            directory_ids: self
                .cluster
                .directory_ids()
                .into_iter()
                .map(|(id, dir)| (id, uuid::Uuid::from_bytes(dir.0)))
                .collect(),
            voter_times: status.voter_times,
            observers: status.observers,
            voter_set,
            now_ms: status.now_ms,
        })
    }

    /// Whole batches from `from` that end at or below `end`.
    async fn read_committed(&self, from: Offset, max_bytes: u32, end: Offset) -> Bytes {
        let read = self.log_store.send(ReadLog { from, max_bytes }).await;
        let Ok(Ok(bytes)) = read else {
            return Bytes::new();
        };
        let mut keep = 0;
        for batch in BatchIter::new(bytes.clone()) {
            match batch {
                Ok(b) if b.next_offset() <= end => keep += b.size_in_bytes(),
                _ => break,
            }
        }
        bytes.slice(..keep)
    }

    /// The encoded answer to one request, or `None` when none is due (acks=0).
    pub async fn serve(
        &self,
        meta: RequestMeta,
        request: KafkaRequest,
    ) -> Result<Option<Bytes>, ServeError> {
        let (c, v) = (meta.correlation_id, meta.version);
        let frame = match request {
            KafkaRequest::ApiVersions(_) => encode(c, v, &cluster::api_versions())?,
            KafkaRequest::FindCoordinator(r) => encode(c, v, &cluster::find_coordinator(&r, v))?,
            KafkaRequest::Metadata(r) => {
                encode(c, v, &cluster::metadata(&r, v, &self.view().await?))?
            }
            KafkaRequest::DescribeCluster(r) => {
                encode(c, v, &cluster::describe_cluster(&r, v, &self.view().await?))?
            }
            KafkaRequest::DescribeQuorum(r) => {
                encode(c, v, &quorum::describe_quorum(&r, v, &self.view().await?))?
            }
            KafkaRequest::InitProducerId(r) => encode(c, v, &self.init_producer_id(&r).await?)?,
            KafkaRequest::ListOffsets(r) => encode(c, v, &self.list_offsets(&r, v).await?)?,
            KafkaRequest::Fetch(r) => encode(c, v, &self.fetch(&r, v).await?)?,
            KafkaRequest::Produce(r) => return self.produce(&r, v, c).await,
            // v1's answer is v0's: the crate encodes only v0, under the same header.
            KafkaRequest::AddRaftVoter(r) => encode(c, 0, &self.add_voter(&r.request).await?)?,
            KafkaRequest::RemoveRaftVoter(r) => encode(c, v, &self.remove_voter(&r).await?)?,
            KafkaRequest::UpdateRaftVoter(r) => encode(c, v, &self.update_voter(&r).await?)?,
        };
        Ok(Some(frame))
    }

    /// AddRaftVoter: Kafka's checks, then the change through the driver, answered once the new
    /// voter set commits (or why not).
    async fn add_voter(
        &self,
        request: &AddRaftVoterRequest,
    ) -> Result<AddRaftVoterResponse, ServeError> {
        let view = self.view().await?;
        let result = match voters::check_add(request, &view) {
            Err(refusal) => Err(refusal),
            Ok(voter) => {
                let timeout = voters::add_timeout(request);
                self.change_voters(AddVoter { voter, timeout }).await
            }
        };
        Ok(voters::add_answer(result))
    }

    /// UpdateRaftVoter: Kafka's checks, then the update through the driver, answered once
    /// appended.
    async fn update_voter(
        &self,
        request: &UpdateRaftVoterRequest,
    ) -> Result<UpdateRaftVoterResponse, ServeError> {
        let view = self.view().await?;
        let result = match voters::check_update(request, &view) {
            Err(refusal) => Err(refusal),
            Ok(voter) => self.change_voters(UpdateVoter { voter }).await,
        };
        Ok(voters::update_answer(result, &view))
    }

    /// RemoveRaftVoter, as [`KafkaFace::add_voter`].
    async fn remove_voter(
        &self,
        request: &RemoveRaftVoterRequest,
    ) -> Result<RemoveRaftVoterResponse, ServeError> {
        let view = self.view().await?;
        let result = match voters::check_remove(request, &view) {
            Err(refusal) => Err(refusal),
            Ok(voter) => {
                let timeout = voters::DEFAULT_CHANGE_TIMEOUT;
                self.change_voters(RemoveVoter { voter, timeout }).await
            }
        };
        Ok(voters::remove_answer(result))
    }

    async fn change_voters<M>(&self, change: M) -> Result<(), voters::Refusal>
    where
        M: actix::Message<Result = Result<(), VoterChangeFailure>> + Send + 'static,
        ReplicationDriver: actix::Handler<M>,
    {
        let outcome = self
            .driver
            .send(change)
            .await
            .unwrap_or(Err(VoterChangeFailure::Interrupted));
        outcome.map_err(|failure| voters::refusal_for(&failure))
    }

    /// A producer id no other producer got: see [`ProducerIds`].
    async fn init_producer_id(
        &self,
        request: &InitProducerIdRequest,
    ) -> Result<InitProducerIdResponse, ServeError> {
        let mut response = InitProducerIdResponse::default();
        if request.transactional_id.is_some() {
            response.error_code = ResponseError::CoordinatorNotAvailable.code();
            response.producer_id = ProducerId(-1);
            response.producer_epoch = -1;
            return Ok(response);
        }
        let node = self.cluster.local_id.map_or(0, |n| n.0);
        response.producer_id = ProducerId(self.producers.next(node, wall_clock_ms()));
        response.producer_epoch = 0;
        Ok(response)
    }

    async fn list_offsets(
        &self,
        request: &ListOffsetsRequest,
        version: i16,
    ) -> Result<kafka_protocol::messages::ListOffsetsResponse, ServeError> {
        let view = self.view().await?;
        let mut found = BTreeMap::new();
        if view.is_leader {
            for target in offsets::searches(request, version) {
                found.insert(target, self.search(target, &view).await);
            }
        }
        Ok(offsets::list_offsets(request, version, &view, &found))
    }

    /// Scans the committed log from its start for a timestamp target.
    async fn search(&self, target: i64, view: &QuorumView) -> offsets::Found {
        let end = view.committed_end();
        let mut from = view.log_start_offset;
        let mut found = None;
        while from < end {
            let bytes = self.read_committed(from, SEARCH_READ_BYTES, end).await;
            let Some(next) = BatchIter::new(bytes.clone())
                .map_while(Result::ok)
                .last()
                .map(|b| b.next_offset())
            else {
                break;
            };
            if offsets::search(&bytes, target, &mut found) {
                break;
            }
            from = next;
        }
        found
    }

    async fn fetch(
        &self,
        request: &FetchRequest,
        version: i16,
    ) -> Result<kafka_protocol::messages::FetchResponse, ServeError> {
        let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_FETCH_WAIT);
        let deadline = Instant::now() + wait;
        let min_bytes = (request.min_bytes.max(1) as usize).min(MAX_FETCH_MIN_BYTES);
        // Subscribed before the first look, so a commit between the look and the wait wakes it.
        let mut events = self.events.subscribe();
        loop {
            let view = self.view().await?;
            let records = match fetch::plan(request, version, &view) {
                Plan::Answer => {
                    return Ok(fetch::answer(request, version, &view, Bytes::new(), None));
                }
                Plan::Redirect(replica) => {
                    let (empty, to) = (Bytes::new(), Some(replica));
                    return Ok(fetch::answer(request, version, &view, empty, to));
                }
                Plan::NothingYet => Bytes::new(),
                Plan::Read {
                    from,
                    max_bytes,
                    end,
                } => self.read_committed(from, max_bytes, end).await,
            };
            if records.len() >= min_bytes || Instant::now() >= deadline {
                return Ok(fetch::answer(request, version, &view, records, None));
            }
            // Read again once something committed; after a read that found some bytes but
            // fewer than asked, not sooner than `FETCH_RECHECK`: a poll waiting for many bytes
            // must not re-read them on every commit.
            let recheck = Instant::now()
                + if records.is_empty() {
                    Duration::ZERO
                } else {
                    FETCH_RECHECK
                };
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => {
                    let view = self.view().await?;
                    return Ok(fetch::answer(request, version, &view, records, None));
                }
                Ok(_) => tokio::time::sleep_until(recheck.min(deadline)).await,
            }
        }
    }

    async fn produce(
        &self,
        request: &ProduceRequest,
        version: i16,
        correlation_id: i32,
    ) -> Result<Option<Bytes>, ServeError> {
        let view = self.view().await?;
        let acks = produce::acks(request);
        // Validation decompresses and decodes every record: off the actors' thread, which the
        // replication driver shares, so a heavy batch never delays the protocol.
        let checked = {
            let (request, view) = (request.clone(), view.clone());
            tokio::task::spawn_blocking(move || produce::check(&request, version, &view))
                .await
                .map_err(|_| ServeError::NodeGone)?
        };
        let outcome: Result<Offset, Refusal> = match (&acks, checked) {
            (Err(refusal), _) => Err(refusal.clone()),
            (Ok(_), None) => Err(Refusal {
                error: ResponseError::UnknownTopicOrPartition,
                message: "kraft serves only its own log".into(),
            }),
            (Ok(_), Some(Err(refusal))) => Err(refusal),
            (Ok(_), Some(Ok(batch))) => self.append(batch, request.timeout_ms).await,
        };
        if acks == Ok(Acks::None) {
            return match outcome {
                Ok(_) => Ok(None),
                Err(refusal) => Err(ServeError::SilentAppendFailed(refusal.message)),
            };
        }
        let view = self.view().await?;
        let response = produce::answer(request, version, &view, outcome);
        Ok(Some(encode(correlation_id, version, &response)?))
    }

    /// Proposes a batch and waits (at most the request's timeout) for it to commit.
    async fn append(&self, batch: Bytes, timeout_ms: i32) -> Result<Offset, Refusal> {
        let timeout = match timeout_ms {
            t if t > 0 => Duration::from_millis(t as u64),
            _ => DEFAULT_PRODUCE_TIMEOUT,
        };
        let result = tokio::time::timeout(timeout, self.driver.send(ProposeBatch(batch))).await;
        match result {
            Err(_) => Err(Refusal {
                error: ResponseError::RequestTimedOut,
                message: "the batch did not commit within the request's timeout".into(),
            }),
            Ok(Err(_)) => Err(Refusal {
                error: ResponseError::NotLeaderOrFollower,
                message: "the node is restarting".into(),
            }),
            Ok(Ok(Ok((first, _)))) => Ok(first),
            Ok(Ok(Err(e))) => Err(produce::refusal_for_append(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_ids_are_positive_distinct_and_carry_the_node() {
        let ids = ProducerIds::default();
        let now = PRODUCER_ID_EPOCH_MS + 1_000;
        let mut seen = std::collections::BTreeSet::new();
        // More than a millisecond's counter, then a clock set back: still all distinct.
        for i in 0..20_000u64 {
            let at = if i < 19_000 { now } else { now - 500 };
            let id = ids.next(255, at);
            assert!(id > 0);
            assert_eq!(id >> (CLOCK_BITS + COUNTER_BITS), 255);
            assert!(seen.insert(id), "{id} twice");
        }
        let other = ProducerIds::default().next(3, now);
        assert!(!seen.contains(&other));
    }

    #[test]
    fn announcements_are_bounded_but_known_peers_still_update() {
        let cluster = ClusterInfo::default();
        let count = MAX_ANNOUNCED_PEERS as i32 + 10;
        for id in 0..count {
            cluster.peer_announced(NodeId(id), Some("r"), Some([1; 16]));
        }
        assert_eq!(cluster.racks().len(), MAX_ANNOUNCED_PEERS);
        assert_eq!(cluster.directory_ids().len(), MAX_ANNOUNCED_PEERS);
        assert!(!cluster.racks().contains_key(&NodeId(count - 1)));
        cluster.peer_announced(NodeId(0), Some("moved"), None);
        assert_eq!(cluster.racks()[&NodeId(0)], "moved");
        assert!(!cluster.directory_ids().contains_key(&NodeId(0)));
    }

    #[test]
    fn voters_announce_even_after_claimed_ids_filled_the_maps() {
        let voter = NodeId(i32::MAX);
        let cluster = ClusterInfo {
            endpoints: crate::kafka::Endpoint::parse(voter, "localhost:9093")
                .into_iter()
                .collect(),
            ..Default::default()
        };
        for id in 0..MAX_ANNOUNCED_PEERS as i32 {
            cluster.peer_announced(NodeId(id), Some("r"), Some([1; 16]));
        }
        cluster.peer_announced(voter, Some("v"), Some([7; 16]));
        assert_eq!(cluster.racks()[&voter], "v");
        assert_eq!(cluster.directory_ids()[&voter].0, [7; 16]);
    }
}
