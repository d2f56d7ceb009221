//! Replication by Fetch (docs/protocol.md §10, §11): the leader validates a fetch, answers
//! with a divergence, records or (after a long poll) nothing, and tracks each voter's progress;
//! the follower truncates on divergence, appends only the valid prefix of what it received
//! (KAFKA-18723), and fetches again once that is durable. At most one Fetch is in flight.

use bytes::Bytes;

use super::io::{Action, InboundId};
use super::leader::{MAX_PARKED_FETCHES, ParkedFetch};
use super::message::{ErrorCode, FetchRequest, FetchResponse, Request};
use super::replica::{Channel, Replica};
use super::role::Role;
use crate::record::BatchIter;
use crate::types::{NodeId, Offset, OffsetAndEpoch};

impl Replica {
    pub(super) fn handle_fetch_request(&mut self, from: InboundId, r: FetchRequest) {
        let error = self.validate_fetch(&r);
        if error != ErrorCode::None {
            let response = self.fetch_error(error);
            self.respond_fetch_without_records(from, response);
            return;
        }
        let end = self.log.end_offset_for_epoch(r.last_fetched_epoch);
        // An epoch older than every epoch left in a cleaned log ended somewhere below its start.
        let epoch_end = if self.log.knows_epoch(r.last_fetched_epoch) {
            end.offset
        } else {
            Offset(-1)
        };
        // Neither a snapshot redirect nor a divergence records the fetcher's progress or counts
        // it for check-quorum: only a fetch served from the log shows it following this log.
        if let Some(snapshot) = self.snapshot_for_fetch(r.fetch_offset, epoch_end) {
            let mut response = self.fetch_error(ErrorCode::None);
            response.snapshot_id = Some(snapshot);
            self.respond_fetch_without_records(from, response);
            return;
        }
        if end.epoch != r.last_fetched_epoch || end.offset < r.fetch_offset {
            let mut response = self.fetch_error(ErrorCode::None);
            response.diverging_epoch = Some(end);
            self.respond_fetch_without_records(from, response);
            return;
        }
        self.record_fetch(&r);
        let has_data = r.fetch_offset < self.log.log_end_offset();
        let lagging = r.high_watermark < self.high_watermark;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if has_data || lagging || r.max_wait_ms == 0 || l.parked.len() >= MAX_PARKED_FETCHES {
            self.respond_fetch(from, &r);
        } else {
            let deadline = self.now + std::time::Duration::from_millis(u64::from(r.max_wait_ms));
            l.parked.push(ParkedFetch {
                from,
                request: r,
                deadline,
            });
        }
    }

    /// The leader-only checks: request sanity, then the fetcher's epoch against ours.
    fn validate_fetch(&self, r: &FetchRequest) -> ErrorCode {
        // A fetch in the leader's own name would count as the leader's progress.
        let malformed = r.fetch_offset.0 < 0
            || r.last_fetched_epoch.0 < 0
            || r.last_fetched_epoch > r.current_leader_epoch
            || (r.replica_id.is_some() && r.replica_id == self.config.local_id);
        if r.cluster_id == self.config.cluster_id && malformed {
            ErrorCode::InvalidRequest
        } else {
            self.validate_for_leader(&r.cluster_id, r.current_leader_epoch)
        }
    }

    /// The checks every fetch-like request meets: the cluster, then the fetcher's idea of the
    /// leader's epoch against ours, then that we lead.
    pub(super) fn validate_for_leader(
        &self,
        cluster_id: &str,
        current_leader_epoch: crate::types::Epoch,
    ) -> ErrorCode {
        if cluster_id != self.config.cluster_id {
            ErrorCode::InconsistentClusterId
        } else if current_leader_epoch < self.epoch {
            ErrorCode::FencedLeaderEpoch
        } else if current_leader_epoch > self.epoch {
            ErrorCode::UnknownLeaderEpoch
        } else if !matches!(self.role, Role::Leader(_)) {
            ErrorCode::NotLeaderOrFollower
        } else {
            ErrorCode::None
        }
    }

    /// Answers a valid fetch with records read from its fetch offset.
    fn respond_fetch(&mut self, to: InboundId, r: &FetchRequest) {
        let response = self.fetch_error(ErrorCode::None);
        let action = Action::RespondFetch {
            to,
            response,
            read_from: Some(r.fetch_offset),
            // As Kafka's leader: one fetch reads at most a batch's worth, whatever it asks, so a
            // peer cannot make the node buffer more per request.
            max_bytes: r.max_bytes.min(super::config::FETCH_MAX_BYTES),
        };
        self.gated(action);
    }

    /// A voter's fetch acknowledges everything before its fetch offset (it flushed first) and
    /// counts towards check-quorum. An observer's fetch is only remembered for DescribeQuorum;
    /// fetches without a replica id leave no state.
    ///
    /// A voter is its id and directory id: a fetch with a voter's id and another directory id
    /// (a replaced disk) is an observer's.
    fn record_fetch(&mut self, r: &FetchRequest) {
        let (leader_end, now) = (self.log.log_end_offset(), self.now);
        let key = r.replica_id.map(|id| super::voter_set::ReplicaKey {
            id,
            directory_id: r.replica_directory_id,
        });
        let voter = key.filter(|k| self.is_voter_key(*k)).map(|k| k.id);
        if let Role::Leader(l) = &mut self.role
            && let Some(key) = key
        {
            match voter.and_then(|id| l.progress.get_mut(&id)) {
                Some(progress) => {
                    progress.directory_id = key.directory_id;
                    progress.fetched(r.fetch_offset, leader_end, now)
                }
                None => {
                    l.observer_fetched(key.id, key.directory_id, r.fetch_offset, leader_end, now)
                }
            }
        }
        self.note_fetcher_alive(voter);
        self.maybe_advance_high_watermark();
    }

    /// A voter served records or snapshot bytes counts towards check-quorum.
    pub(super) fn note_fetcher_alive(&mut self, replica_id: Option<NodeId>) {
        let majority = self.majority();
        // The leader's own vote counts only while it is a voter (a removed leader leads on
        // until its removal commits).
        let own = usize::from(self.is_voter());
        let check_quorum = self.config.fetch_timeout.mul_f64(1.5);
        let now = self.now;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let Some(progress) = replica_id.and_then(|id| l.progress.get_mut(&id)) else {
            return;
        };
        progress.last_fetch = Some(now);
        l.fetched_since_check
            .insert(replica_id.expect("matched above"));
        if l.fetched_since_check.len() + own >= majority {
            l.fetched_since_check.clear();
            l.check_quorum_deadline = now + check_quorum;
        }
    }

    /// Answers parked fetches that can now make progress (all of them when `all`).
    pub(super) fn complete_parked_fetches(&mut self, all: bool) {
        let leo = self.log.log_end_offset();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let (ready, waiting): (Vec<ParkedFetch>, Vec<ParkedFetch>) = std::mem::take(&mut l.parked)
            .into_iter()
            .partition(|p| all || p.request.fetch_offset < leo);
        l.parked = waiting;
        for p in ready {
            self.respond_fetch(p.from, &p.request);
        }
    }

    pub(super) fn expire_parked_fetches(&mut self) {
        let now = self.now;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let (expired, waiting): (Vec<ParkedFetch>, Vec<ParkedFetch>) =
            std::mem::take(&mut l.parked)
                .into_iter()
                .partition(|p| p.deadline <= now);
        l.parked = waiting;
        for p in expired {
            self.respond_fetch(p.from, &p.request);
        }
    }

    // ---- the follower's side ----------------------------------------------------------------

    fn fetch_in_flight(&self) -> bool {
        self.inflight
            .keys()
            .any(|(_, channel)| *channel == Channel::Fetch)
    }

    /// A fetch is also an acknowledgement, so it goes out only when the whole log is durable
    /// (and not while a fetched snapshot is being installed).
    fn ready_to_fetch(&self) -> bool {
        !self.fetch_in_flight()
            && self.log.flushed_offset() >= self.log.log_end_offset()
            && !self.snapshot_transfer.is_some_and(|t| t.installing)
    }

    fn fetch_request(&self) -> FetchRequest {
        FetchRequest {
            cluster_id: self.config.cluster_id.clone(),
            replica_id: self.config.local_id,
            replica_directory_id: self.config.local_directory_id,
            current_leader_epoch: self.epoch,
            fetch_offset: self.log.log_end_offset(),
            last_fetched_epoch: self.log.last_fetched_epoch(),
            high_watermark: self.high_watermark,
            max_wait_ms: self.config.fetch_max_wait.as_millis() as u32,
            max_bytes: self.config.fetch_max_bytes,
        }
    }

    pub(super) fn send_fetch_to_leader(&mut self) {
        let Some(leader) = self.leader_id else { return };
        if self.ready_to_fetch() && self.channel_ready(leader, Channel::Fetch) {
            let request = self
                .next_snapshot_request()
                .unwrap_or_else(|| Request::Fetch(self.fetch_request()));
            self.send(leader, request);
        }
    }

    /// Unattached: ask a random voter, which answers with the leader it knows (KAFKA-17030);
    /// a replica that knows no other voter yet (one joining a dynamic quorum) asks a bootstrap
    /// server instead.
    pub(super) fn discover_leader(&mut self) {
        if !self.ready_to_fetch() {
            return;
        }
        let local = self.config.local_id;
        let mut candidates: Vec<NodeId> = self
            .voter_ids()
            .into_iter()
            .filter(|v| Some(*v) != local)
            .collect();
        if candidates.is_empty() {
            candidates = self.config.bootstrap_servers.clone();
            candidates.retain(|b| Some(*b) != local);
        }
        let peers: Vec<NodeId> = candidates
            .into_iter()
            .filter(|v| self.channel_ready(*v, Channel::Fetch))
            .collect();
        if peers.is_empty() {
            return;
        }
        let to = peers[self.rng.below(peers.len() as u64) as usize];
        let request = self.fetch_request();
        self.send(to, Request::Fetch(request));
    }

    /// An answer from the leader this follower follows: it is alive, so the fetch timer
    /// restarts. False when the answer is not from the current leader (or not a follower).
    pub(super) fn heard_from_leader(
        &mut self,
        from: NodeId,
        error: ErrorCode,
        leader_id: Option<NodeId>,
        leader_epoch: crate::types::Epoch,
    ) -> bool {
        if !self.handle_common(from, error, leader_id, leader_epoch) || self.leader_id != Some(from)
        {
            return false;
        }
        let fetch_timeout = self.config.fetch_timeout;
        let now = self.now;
        let Role::Follower {
            fetch_deadline,
            has_fetched,
        } = &mut self.role
        else {
            return false;
        };
        *fetch_deadline = now + fetch_timeout;
        *has_fetched = true;
        true
    }

    pub(super) fn handle_fetch_response(&mut self, from: NodeId, r: FetchResponse) {
        if let (Some(leader), Some(at)) = (r.leader_id, r.leader_endpoint.clone())
            && r.leader_epoch >= self.epoch
            && Some(leader) != self.config.local_id
        {
            self.learn_leader_endpoint(leader, at);
        }
        if !self.heard_from_leader(from, r.error, r.leader_id, r.leader_epoch) {
            return;
        }
        if let Some(id) = r.snapshot_id {
            self.start_snapshot_transfer(id);
            return;
        }
        if let Some(diverging) = r.diverging_epoch {
            self.truncate_diverging(diverging);
            return;
        }
        self.append_fetched(from, &r.records);
        self.update_follower_high_watermark(r.high_watermark);
    }

    /// Truncates to where the leader says the logs diverge (never below the high watermark).
    fn truncate_diverging(&mut self, diverging: OffsetAndEpoch) {
        let leo = self.log.log_end_offset();
        let target = if diverging.epoch.0 == 0 {
            diverging.offset.min(leo)
        } else {
            let local = self.log.end_offset_for_epoch(diverging.epoch);
            if local.epoch == diverging.epoch {
                local.offset.min(diverging.offset)
            } else {
                local.offset
            }
        };
        if self.high_watermark.is_some_and(|hw| target < hw) || target < self.log.log_start_offset()
        {
            let reason = format!(
                "the leader asked to truncate to {target}, below the high watermark {:?} or the \
                 log start {} (committed records)",
                self.high_watermark,
                self.log.log_start_offset()
            );
            self.out.push(Action::Fatal(reason));
            return;
        }
        if target < leo {
            self.out.push(Action::Truncate { offset: target });
            self.log.truncated(target);
            self.log_replaced_from(target);
            self.voters_may_have_changed();
        }
    }

    /// Appends the longest valid prefix of fetched batches: whole, CRC-valid, contiguous from the
    /// log end offset, with epochs neither above ours nor below the log's last (KAFKA-18723).
    /// A partial batch at the end is normal (the leader cut at `max_bytes`) and is fetched again;
    /// anything else invalid is refused, once per response, naming where and why.
    fn append_fetched(&mut self, from: NodeId, records: &Bytes) {
        let mut iter = BatchIter::new(records.clone());
        let mut valid_end = 0;
        let mut refused = None;
        for batch in iter.by_ref() {
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    refused = Some(format!("invalid batch: {e}"));
                    break;
                }
            };
            if let Some(reason) = self.why_not_appendable(&batch) {
                refused = Some(reason);
                break;
            }
            let committed = self.high_watermark.unwrap_or(Offset(0));
            self.log.appended_batch(batch.header(), committed);
            if batch.is_control() {
                self.apply_control_batch(&batch);
            }
            valid_end += batch.size_in_bytes();
        }
        if valid_end > 0 {
            self.out.push(Action::Append {
                batches: records.slice(..valid_end),
            });
            self.request_flush();
        }
        if let Some(reason) = refused {
            self.out.push(Action::FetchedRecordsRefused {
                from,
                offset: self.log.log_end_offset(),
                reason,
            });
        }
    }

    /// Why a whole, checksummed fetched batch cannot be appended at the log end, if so.
    fn why_not_appendable(&self, batch: &crate::record::RecordBatch) -> Option<String> {
        let end = self.log.log_end_offset();
        if batch.base_offset() != end {
            Some(format!(
                "batch at offset {} does not continue the log at {end}",
                batch.base_offset()
            ))
        } else if batch.epoch() > self.epoch {
            Some(format!(
                "batch epoch {} is above the current epoch {}",
                batch.epoch(),
                self.epoch
            ))
        } else if batch.epoch() < self.log.last_fetched_epoch() {
            Some(format!(
                "batch epoch {} is below the log's last epoch {}",
                batch.epoch(),
                self.log.last_fetched_epoch()
            ))
        } else if batch.is_control() {
            self.check_control_batch(batch).err()
        } else {
            None
        }
    }
}
