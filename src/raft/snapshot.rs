//! Catching up through a snapshot (docs/protocol.md §14): the leader redirects a fetch below
//! its log start to its newest snapshot and serves FetchSnapshot chunks by byte position; the
//! follower pulls the chunks in order (resuming from its position after a lost answer, or after
//! a leader change to a leader with the same snapshot), installs the snapshot, and fetches on
//! from its end offset.
//!
//! Owns the decisions only: reading, writing and installing the file are actions the node
//! executes. At most one FetchSnapshot is in flight, on the fetch channel.

use bytes::Bytes;

use super::io::{Action, InboundId};
use super::message::{ErrorCode, FetchSnapshotRequest, FetchSnapshotResponse, Request, Response};
use super::replica::Replica;
use crate::types::{NodeId, Offset, OffsetAndEpoch};

/// Most bytes a follower asks for per FetchSnapshot, and a leader serves: large chunks for
/// throughput, well inside the peer frame limit.
pub const FETCH_SNAPSHOT_MAX_BYTES: u32 = 4 << 20;

/// A snapshot being fetched from the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotTransfer {
    pub id: OffsetAndEpoch,
    /// Bytes received (and handed to the node to write) so far.
    pub position: u64,
    /// Every byte arrived; waiting for `Input::SnapshotInstalled`.
    pub installing: bool,
}

impl Replica {
    /// The leader's answer to a fetch from `fetch_offset` whose last fetched epoch ends at
    /// `epoch_end`: its newest snapshot when the fetcher needs records the log no longer has
    /// (or has nothing at all while a snapshot exists).
    pub(super) fn snapshot_for_fetch(
        &self,
        fetch_offset: Offset,
        epoch_end: Offset,
    ) -> Option<OffsetAndEpoch> {
        let snapshot = self.log.latest_snapshot()?;
        let start = self.log.log_start_offset();
        let below_start = fetch_offset < start || epoch_end < start;
        let empty_fetcher = fetch_offset == Offset(0) && snapshot.offset > Offset(0);
        (below_start || empty_fetcher).then_some(snapshot)
    }

    pub(super) fn handle_fetch_snapshot_request(
        &mut self,
        from: InboundId,
        r: FetchSnapshotRequest,
    ) {
        let own_id = r.replica_id.is_some() && r.replica_id == self.config.local_id;
        let mut response = FetchSnapshotResponse {
            error: match own_id {
                true => ErrorCode::InvalidRequest,
                false => self.validate_for_leader(&r.cluster_id, r.current_leader_epoch),
            },
            leader_id: self.leader_id,
            leader_epoch: self.epoch,
            snapshot_id: r.snapshot_id,
            size: 0,
            position: r.position,
            bytes: Bytes::new(),
        };
        // Any snapshot still on disk is served, not only the newest: a follower part-way through
        // an older one would otherwise restart every time a newer one is written, and never
        // finish while snapshots come faster than a transfer (Kafka serves any it holds). The
        // node answers SNAPSHOT_NOT_FOUND for one cleaning deleted; one newer than the newest
        // cannot exist.
        let newest = self.log.latest_snapshot();
        if response.error == ErrorCode::None && newest.is_none_or(|s| r.snapshot_id > s) {
            response.error = ErrorCode::SnapshotNotFound;
        }
        if response.error != ErrorCode::None {
            self.reply(from, Response::FetchSnapshot(response));
            return;
        }
        self.note_fetcher_alive(r.replica_id);
        let action = Action::RespondFetchSnapshot {
            to: from,
            response,
            max_bytes: r.max_bytes.min(FETCH_SNAPSHOT_MAX_BYTES),
        };
        self.gated(action);
    }

    // ---- the follower's side ----------------------------------------------------------------

    /// The leader redirected a fetch to snapshot `id`: continue a transfer of the same snapshot
    /// from where it stopped, else start from byte 0. A snapshot ending below our high
    /// watermark would take committed records away, so it is never fetched.
    pub(super) fn start_snapshot_transfer(&mut self, id: OffsetAndEpoch) {
        if self.high_watermark.is_some_and(|hw| id.offset < hw) {
            return;
        }
        if self.snapshot_transfer.is_none_or(|t| t.id != id) {
            // After a restart, what an earlier transfer of the same snapshot wrote is reused.
            self.snapshot_transfer = Some(SnapshotTransfer {
                id,
                position: self.log.fetched_so_far(id),
                installing: false,
            });
        }
    }

    /// The next FetchSnapshot, if a transfer is under way and not yet complete.
    pub(super) fn next_snapshot_request(&self) -> Option<Request> {
        let t = self.snapshot_transfer.filter(|t| !t.installing)?;
        Some(Request::FetchSnapshot(FetchSnapshotRequest {
            cluster_id: self.config.cluster_id.clone(),
            replica_id: self.config.local_id,
            current_leader_epoch: self.epoch,
            snapshot_id: t.id,
            position: t.position,
            max_bytes: FETCH_SNAPSHOT_MAX_BYTES,
        }))
    }

    pub(super) fn handle_fetch_snapshot_response(
        &mut self,
        from: NodeId,
        r: FetchSnapshotResponse,
    ) {
        // These two are about the snapshot, not about who leads.
        let leader_error = match r.error {
            ErrorCode::SnapshotNotFound | ErrorCode::PositionOutOfRange => ErrorCode::None,
            other => other,
        };
        if !self.heard_from_leader(from, leader_error, r.leader_id, r.leader_epoch) {
            return;
        }
        let Some(t) = self.snapshot_transfer.as_mut() else {
            return;
        };
        // This answers the request in flight, which asked for `t.id` at `t.position` (a late
        // answer to an earlier request never gets here): a correct leader echoes both.
        if r.error == ErrorCode::None && !t.installing {
            let refusal = if r.snapshot_id != t.id {
                Some(format!(
                    "a chunk of the snapshot ending at {} (epoch {}) where the one ending at {} \
                     (epoch {}) was asked for",
                    r.snapshot_id.offset, r.snapshot_id.epoch, t.id.offset, t.id.epoch
                ))
            } else if r.position != t.position {
                Some(format!(
                    "a chunk at byte {} where byte {} was asked for",
                    r.position, t.position
                ))
            } else if r.position.saturating_add(r.bytes.len() as u64) > r.size {
                Some(format!(
                    "{} bytes at byte {}, past the snapshot's size {}",
                    r.bytes.len(),
                    r.position,
                    r.size
                ))
            } else if r.bytes.is_empty() && r.position < r.size {
                Some(format!(
                    "no bytes at byte {}, before the snapshot's size {}",
                    r.position, r.size
                ))
            } else {
                None
            };
            if let Some(reason) = refusal {
                let (id, position) = (t.id, t.position);
                self.out.push(Action::FetchedSnapshotRefused {
                    from,
                    id,
                    position,
                    reason,
                });
                return;
            }
        }
        if t.id != r.snapshot_id {
            return;
        }
        match r.error {
            ErrorCode::None => {}
            // The leader no longer has it (or never had it): fetch, to learn its snapshot.
            ErrorCode::SnapshotNotFound => {
                self.snapshot_transfer = None;
                return;
            }
            ErrorCode::PositionOutOfRange => {
                t.position = 0;
                return;
            }
            _ => return,
        }
        if t.installing {
            return; // every byte is in and nothing was asked for since
        }
        if !r.bytes.is_empty() {
            let (id, position) = (t.id, t.position);
            t.position += r.bytes.len() as u64;
            self.out.push(Action::WriteSnapshotChunk {
                id,
                position,
                bytes: r.bytes,
            });
        }
        let t = self.snapshot_transfer.as_mut().expect("checked above");
        if t.position == r.size {
            t.installing = true;
            let id = t.id;
            self.out.push(Action::InstallSnapshot { id, from });
        }
    }

    /// The snapshot is in place and the whole log was replaced (an uncommitted tail beyond the
    /// snapshot included, as Kafka's full truncation does): the log starts and ends at its end,
    /// and everything below is committed.
    pub(super) fn snapshot_installed(
        &mut self,
        id: OffsetAndEpoch,
        control: Vec<crate::record::ControlRecord>,
    ) {
        if self.snapshot_transfer.is_some_and(|t| t.id == id) {
            self.snapshot_transfer = None;
        }
        if id.offset < self.log.log_start_offset() {
            return; // stale: a newer snapshot is already in place
        }
        self.log.installed(id);
        if let Err(e) = self.log.voters_mut().load_snapshot(id.offset, &control) {
            // The executor checked the snapshot whole; a leader's snapshot with a broken voter
            // set cannot be followed safely.
            self.out.push(Action::Fatal(format!(
                "installed snapshot {id:?} holds no valid voter set: {e}"
            )));
        }
        self.voters_may_have_changed();
        self.note_repair_point_reached();
        self.log_replaced_from(id.offset);
        self.update_follower_high_watermark(Some(id.offset));
    }
}
