//! The replica's picture of its own log: log end offset, what is durable, and the epoch of each
//! range of offsets. Kept in step with the Append/Truncate/Flush actions the replica emits, so
//! that protocol decisions (divergence, vote up-to-dateness) never wait for IO.

use super::producers::ProducerStates;
use super::voter_set_history::VoterSetHistory;
use crate::record::BatchHeader;
use crate::types::{Epoch, Offset, OffsetAndEpoch};

/// An epoch and the offset of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochStart {
    pub epoch: Epoch,
    pub start_offset: Offset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogView {
    log_start_offset: Offset,
    log_end_offset: Offset,
    flushed_offset: Offset,
    epochs: Vec<EpochStart>,
    /// The newest local snapshot, which covers everything below the log start offset.
    latest_snapshot: Option<OffsetAndEpoch>,
    /// A snapshot partly fetched before a restart, and how many of its bytes are on disk.
    fetched_so_far: Option<(OffsetAndEpoch, u64)>,
    /// The log end (last epoch, end offset) this replica had before a repair moved damaged
    /// records aside; cleared once the durable log is back there.
    repair_point: Option<OffsetAndEpoch>,
    /// Idempotent producers' recent batches in this log.
    producers: ProducerStates,
    /// The voter sets and kraft.version levels its control records set, by offset.
    voters: VoterSetHistory,
}

impl LogView {
    /// A log as recovered from disk (everything in it is durable).
    pub fn new(log_start_offset: Offset, log_end_offset: Offset, epochs: Vec<EpochStart>) -> Self {
        LogView {
            log_start_offset,
            log_end_offset,
            flushed_offset: log_end_offset,
            epochs,
            latest_snapshot: None,
            fetched_so_far: None,
            repair_point: None,
            producers: ProducerStates::default(),
            voters: VoterSetHistory::default(),
        }
    }

    /// The same log, whose control records (and snapshot or bootstrap checkpoint) set the voter
    /// sets in `voters`.
    pub fn with_voter_history(mut self, voters: VoterSetHistory) -> Self {
        self.voters = voters;
        self
    }

    pub fn voters(&self) -> &VoterSetHistory {
        &self.voters
    }

    pub(super) fn voters_mut(&mut self) -> &mut VoterSetHistory {
        &mut self.voters
    }

    /// The same log, whose idempotent producers recovery found to be `producers`.
    pub fn with_producers(mut self, producers: ProducerStates) -> Self {
        self.producers = producers;
        self
    }

    pub fn producers(&self) -> &ProducerStates {
        &self.producers
    }

    /// Records a whole batch appended at the end: its epoch and offsets, and its producer's
    /// sequence. `committed` is the high watermark as the replica knows it.
    pub fn appended_batch(&mut self, header: &BatchHeader, committed: Offset) {
        self.appended(header.epoch(), header.base_offset(), header.next_offset());
        self.producers.record(header, committed);
    }

    /// The same log, repaired: it once reached `point` and must get back there before its
    /// replica may vote or stand again.
    pub fn with_repair_point(mut self, point: Option<OffsetAndEpoch>) -> Self {
        self.repair_point = point;
        self
    }

    /// Whether the log has yet to get back to the end it had before a repair. A replica that
    /// lost records it had acknowledged could otherwise vote for a candidate missing committed
    /// records.
    pub fn awaiting_repair_point(&self) -> bool {
        self.repair_point.is_some()
    }

    /// Forgets the repair point once the durable log reached its offset again. Returns whether
    /// it did. Offsets only, not Raft's epoch-first order: what the replica may have lost lies
    /// below that offset, and a log that reaches it by fetching from a leader holds the
    /// leader's records there, every committed one included. (An epoch read from damaged
    /// files is the least trustworthy field: it lies outside the CRC.)
    pub fn clear_reached_repair_point(&mut self) -> bool {
        let Some(point) = self.repair_point else {
            return false;
        };
        let reached = self.flushed_offset >= point.offset;
        if reached {
            self.repair_point = None;
        }
        reached
    }

    /// The same log, with a snapshot partly fetched before a restart.
    pub fn with_fetched_so_far(mut self, fetched: Option<(OffsetAndEpoch, u64)>) -> Self {
        self.fetched_so_far = fetched;
        self
    }

    /// Where a fetch of snapshot `id` can resume: the bytes of it already on disk.
    pub fn fetched_so_far(&self, id: OffsetAndEpoch) -> u64 {
        self.fetched_so_far
            .filter(|(fetched, _)| *fetched == id)
            .map_or(0, |(_, bytes)| bytes)
    }

    /// The same log, with its newest snapshot.
    pub fn with_snapshot(mut self, snapshot: Option<OffsetAndEpoch>) -> Self {
        self.latest_snapshot = snapshot;
        self
    }

    pub fn latest_snapshot(&self) -> Option<OffsetAndEpoch> {
        self.latest_snapshot
    }

    /// Records a newer local snapshot.
    pub fn snapshot_written(&mut self, id: OffsetAndEpoch) {
        if self.latest_snapshot.is_none_or(|s| s < id) {
            self.latest_snapshot = Some(id);
        }
    }

    /// Records log cleaning up to `offset` (never past the log end or the newest snapshot).
    pub fn start_advanced(&mut self, offset: Offset) {
        self.log_start_offset = self.log_start_offset.max(offset.min(self.log_end_offset));
        // What a restart would rebuild from the log: producers whose batches were all cleaned
        // away are forgotten, so client-chosen ids cannot pile up for the node's lifetime.
        self.producers.forget_before(self.log_start_offset);
        self.voters.forget_before(self.log_start_offset);
    }

    /// Records an installed snapshot: the log is now empty, starting and ending at its end.
    pub fn installed(&mut self, id: OffsetAndEpoch) {
        self.log_start_offset = id.offset;
        self.log_end_offset = id.offset;
        self.flushed_offset = id.offset;
        self.epochs = vec![EpochStart {
            epoch: id.epoch,
            start_offset: id.offset,
        }];
        self.latest_snapshot = Some(id);
        self.fetched_so_far = None;
        self.producers.clear();
    }

    pub fn empty() -> Self {
        Self::new(Offset(0), Offset(0), Vec::new())
    }

    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> Offset {
        self.log_end_offset
    }

    pub fn flushed_offset(&self) -> Offset {
        self.flushed_offset
    }

    pub fn epochs(&self) -> &[EpochStart] {
        &self.epochs
    }

    /// Epoch of the last record (0 for an empty log); an empty log that starts where a snapshot
    /// ends has the snapshot's epoch, as if its last record were the snapshot's.
    pub fn last_fetched_epoch(&self) -> Epoch {
        match (self.epochs.last(), self.latest_snapshot) {
            (Some(e), _) => e.epoch,
            (None, Some(s)) if s.offset == self.log_end_offset => s.epoch,
            (None, _) => Epoch(0),
        }
    }

    /// Whether this log can tell where `epoch` ended: it holds that epoch or an earlier one,
    /// counting the newest snapshot's epoch (which ends at the snapshot). A cleaned log has
    /// forgotten the epochs below its start.
    pub fn knows_epoch(&self, epoch: Epoch) -> bool {
        self.log_start_offset == Offset(0)
            || self.epochs.iter().any(|e| e.epoch <= epoch)
            || self.latest_snapshot.is_some_and(|s| s.epoch <= epoch)
    }

    /// Records a batch of `epoch` ending before `next_offset` appended at the end.
    /// A newer epoch replaces entries starting at its base (the snapshot's epoch, after an
    /// install), as the log's epoch checkpoint does.
    pub fn appended(&mut self, epoch: Epoch, base: Offset, next_offset: Offset) {
        if self.epochs.last().is_none_or(|l| epoch > l.epoch) {
            self.epochs.retain(|e| e.start_offset < base);
            self.epochs.push(EpochStart {
                epoch,
                start_offset: base,
            });
        }
        self.log_end_offset = next_offset;
    }

    /// Records a truncation to `offset`.
    pub fn truncated(&mut self, offset: Offset) {
        self.log_end_offset = self.log_end_offset.min(offset);
        self.flushed_offset = self.flushed_offset.min(offset);
        self.epochs.retain(|e| e.start_offset < offset);
        self.producers.truncate(offset);
        // The newest snapshot's voter set (at its end - 1) is committed state, whatever the
        // log below it held.
        let covered = self.latest_snapshot.map_or(Offset(0), |s| s.offset);
        self.voters.truncate_from(offset.max(covered));
    }

    /// Records that everything up to `offset` is durable.
    pub fn flushed(&mut self, offset: Offset) {
        self.flushed_offset = self.flushed_offset.max(offset.min(self.log_end_offset));
    }

    /// Where `epoch` ends in this log (Kafka's `endOffsetForEpoch`): the largest epoch <= `epoch`
    /// and the start of the next epoch, or the log end offset.
    pub fn end_offset_for_epoch(&self, epoch: Epoch) -> OffsetAndEpoch {
        let fallback = OffsetAndEpoch {
            offset: self.log_end_offset,
            epoch: self.last_fetched_epoch(),
        };
        let Some(latest) = self.epochs.last() else {
            return fallback;
        };
        if latest.epoch == epoch {
            return OffsetAndEpoch {
                offset: self.log_end_offset,
                epoch,
            };
        }
        let Some(higher) = self.epochs.iter().find(|e| e.epoch > epoch) else {
            return fallback;
        };
        let floor = self.epochs.iter().rev().find(|e| e.epoch <= epoch);
        OffsetAndEpoch {
            offset: higher.start_offset,
            epoch: floor.map_or(epoch, |f| f.epoch),
        }
    }
}
