//! The voter sets and kraft.version levels of a replica's log, by offset (KIP-853): which set
//! is in force at the log end (a change counts from the moment it is appended) and which is
//! committed below a high watermark.
//!
//! Fed with the KRaftVersion and Voters control records of the bootstrap checkpoint, of the log
//! as it is appended, and of installed snapshots; a truncation of the log reverts the entries
//! above it, and advancing the log start forgets the entries below it except the last one at or
//! below it, so the set in force is never lost. A snapshot's records count at its last contained
//! offset (end offset - 1), so the bootstrap checkpoint's sit at -1, before any log record.
//!
//! It must never do IO or read a clock: the caller hands it records and offsets. It refuses
//! what would break the one-change-at-a-time rule between two sets from the log (the bootstrap
//! and static sets are configuration, not replicated, and are not compared).

use std::collections::BTreeMap;

use super::voter_set::{VoterSet, VoterSetError};
use crate::record::{ControlRecord, KRaftVersionRecord};
use crate::types::Offset;

/// The offset a snapshot's records take when the snapshot ends at offset 0 (the bootstrap
/// checkpoint): one below the first log offset.
pub const BOOTSTRAP_OFFSET: Offset = Offset(-1);

/// The highest kraft.version this replica understands: 1, voters in the log.
pub const MAX_KRAFT_VERSION: i16 = 1;

/// The KRaftVersion record version written: the only one Kafka defines.
const KRAFT_VERSION_RECORD_VERSION: i16 = 0;

/// Why a record cannot join the history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("offset {offset} is below the bootstrap offset -1")]
    BelowBootstrap { offset: Offset },
    #[error("offset {offset} does not follow the last entry's offset {last}")]
    NotAfterLast { offset: Offset, last: Offset },
    #[error("the voter set at offset {offset} is not a voter set: {source}")]
    BadVoters {
        offset: Offset,
        source: VoterSetError,
    },
    #[error(
        "the voter set {new} at offset {offset} changes more than one voter from {last} at offset {last_offset}"
    )]
    NotOverlapping {
        offset: Offset,
        new: String,
        last: String,
        last_offset: Offset,
    },
    #[error("kraft.version {level} at offset {offset} is not one this replica knows (0 to 1)")]
    UnknownKRaftVersion { offset: Offset, level: i16 },
    #[error("kraft.version {level} at offset {offset} is below the {last} before it")]
    KRaftVersionDowngrade {
        offset: Offset,
        level: i16,
        last: i16,
    },
}

/// Voter sets and kraft.version levels by the offset of the record that set them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VoterSetHistory {
    /// `controller.quorum.voters`, in force while no Voters record is known (kraft.version 0).
    static_voters: Option<VoterSet>,
    voter_sets: BTreeMap<Offset, VoterSet>,
    kraft_versions: BTreeMap<Offset, i16>,
}

impl VoterSetHistory {
    /// An empty history falling back to `static_voters` (None for a dynamic quorum).
    pub fn new(static_voters: Option<VoterSet>) -> VoterSetHistory {
        VoterSetHistory {
            static_voters,
            ..VoterSetHistory::default()
        }
    }

    /// Sets the static voters (`controller.quorum.voters`), in force while no record sets one.
    pub fn set_static_voters(&mut self, static_voters: Option<VoterSet>) {
        self.static_voters = static_voters;
    }

    /// Records the control record at `offset` of the log; records other than KRaftVersion and
    /// Voters are ignored.
    pub fn apply(&mut self, offset: Offset, record: &ControlRecord) -> Result<(), HistoryError> {
        match record {
            ControlRecord::Voters(voters) => {
                let set = VoterSet::from_record(voters)
                    .map_err(|source| HistoryError::BadVoters { offset, source })?;
                self.add_voters_at(offset, set)
            }
            ControlRecord::KRaftVersion(k) => self.add_kraft_version_at(offset, k.kraft_version),
            _ => Ok(()),
        }
    }

    /// Replaces the history with a snapshot's: its records, all at its last contained offset
    /// (`snapshot_end` - 1). Log records after the snapshot must be applied again afterwards.
    pub fn load_snapshot<'a>(
        &mut self,
        snapshot_end: Offset,
        records: impl IntoIterator<Item = &'a ControlRecord>,
    ) -> Result<(), HistoryError> {
        self.clear();
        let at = Offset(snapshot_end.0 - 1);
        records.into_iter().try_for_each(|r| self.apply(at, r))
    }

    /// Adds the voter set that the record at `offset` sets. Offsets must increase; two sets
    /// from the log must differ by at most one voter each way.
    pub fn add_voters_at(&mut self, offset: Offset, voters: VoterSet) -> Result<(), HistoryError> {
        check_next(offset, self.voter_sets.keys().next_back().copied())?;
        if let Some((&last_offset, last)) = self.voter_sets.iter().next_back()
            && last_offset.0 >= 0
            && !last.has_overlapping_majority(&voters)
        {
            return Err(HistoryError::NotOverlapping {
                offset,
                new: voters.to_string(),
                last: last.to_string(),
                last_offset,
            });
        }
        self.voter_sets.insert(offset, voters);
        Ok(())
    }

    /// Adds the kraft.version level the record at `offset` sets; never a lower one.
    pub fn add_kraft_version_at(&mut self, offset: Offset, level: i16) -> Result<(), HistoryError> {
        if !(0..=MAX_KRAFT_VERSION).contains(&level) {
            return Err(HistoryError::UnknownKRaftVersion { offset, level });
        }
        check_next(offset, self.kraft_versions.keys().next_back().copied())?;
        // Kafka never lowers kraft.version: at 0 snapshots carry no voters, so a dynamic
        // quorum's voter set would be lost at the next snapshot.
        let last = self.kraft_version();
        if level < last {
            return Err(HistoryError::KRaftVersionDowngrade {
                offset,
                level,
                last,
            });
        }
        self.kraft_versions.insert(offset, level);
        Ok(())
    }

    /// The log was truncated to end at `end_offset`: the entries at or above it are reverted.
    pub fn truncate_from(&mut self, end_offset: Offset) {
        self.voter_sets.split_off(&end_offset);
        self.kraft_versions.split_off(&end_offset);
    }

    /// The log now starts at `start_offset`: the entries below it are forgotten except the last
    /// one at or below it, which is still in force there.
    pub fn forget_before(&mut self, start_offset: Offset) {
        forget_before(&mut self.voter_sets, start_offset);
        forget_before(&mut self.kraft_versions, start_offset);
    }

    /// Forgets every entry (before loading a snapshot); the static voters stay.
    pub fn clear(&mut self) {
        self.voter_sets.clear();
        self.kraft_versions.clear();
    }

    /// The voter set in force at the log end: the last one appended, committed or not, else
    /// the static voters.
    pub fn latest(&self) -> Option<&VoterSet> {
        self.latest_entry()
            .map(|(_, set)| set)
            .or(self.static_voters.as_ref())
    }

    /// The last voter set from a record, with its offset (None: only static voters, if any).
    pub fn latest_entry(&self) -> Option<(Offset, &VoterSet)> {
        self.voter_sets.iter().next_back().map(|(o, s)| (*o, s))
    }

    /// The voter set before the last one from a record. With one change at a time it is
    /// committed wherever the last one was appended after it (KIP-853: a leader appends a
    /// change only once the one before is committed).
    pub fn before_latest(&self) -> Option<&VoterSet> {
        self.voter_sets.values().nth_back(1)
    }

    /// Whether `key` is a voter of any set this history still holds (the bootstrap and static
    /// sets included): a voter now, or one removed by a change the log still holds.
    pub fn ever_voter(&self, key: super::voter_set::ReplicaKey) -> bool {
        self.voter_sets
            .values()
            .chain(self.static_voters.as_ref())
            .any(|set| set.is_voter(key))
    }

    /// The voter set a record at or before `offset` set (never the static voters).
    pub fn at_or_before(&self, offset: Offset) -> Option<&VoterSet> {
        self.voter_sets.range(..=offset).next_back().map(|(_, s)| s)
    }

    /// The last committed voter set under `high_watermark` (the records below it are committed),
    /// else the static voters.
    pub fn committed(&self, high_watermark: Offset) -> Option<&VoterSet> {
        self.at_or_before(Offset(high_watermark.0 - 1))
            .or(self.static_voters.as_ref())
    }

    /// Whether the last voter set change is not yet committed under `high_watermark`: while it
    /// is, no other change may start (KIP-853 allows one uncommitted change at a time).
    pub fn has_uncommitted_change(&self, high_watermark: Offset) -> bool {
        self.latest_entry()
            .is_some_and(|(offset, _)| offset >= high_watermark)
    }

    /// How many voter sets were appended at or above `high_watermark` (KIP-853 allows one).
    pub fn uncommitted_changes(&self, high_watermark: Offset) -> usize {
        self.voter_sets.range(high_watermark..).count()
    }

    /// The kraft.version in force at the log end (0 when no record set one).
    pub fn kraft_version(&self) -> i16 {
        self.kraft_versions
            .values()
            .next_back()
            .copied()
            .unwrap_or(0)
    }

    /// The kraft.version in force at `offset`.
    pub fn kraft_version_at(&self, offset: Offset) -> i16 {
        self.kraft_versions
            .range(..=offset)
            .next_back()
            .map_or(0, |(_, level)| *level)
    }

    /// The records that store the state in force at `offset`, as a snapshot at `offset` + 1
    /// begins after its header: KRaftVersion, then Voters if there is a voter set.
    pub fn snapshot_records(&self, offset: Offset) -> Vec<ControlRecord> {
        let level = self.kraft_version_at(offset);
        let mut records = vec![ControlRecord::KRaftVersion(KRaftVersionRecord {
            version: KRAFT_VERSION_RECORD_VERSION,
            kraft_version: level,
        })];
        if level > 0
            && let Some(set) = self.at_or_before(offset)
        {
            records.push(ControlRecord::Voters(set.to_record()));
        }
        records
    }
}

fn check_next(offset: Offset, last: Option<Offset>) -> Result<(), HistoryError> {
    if offset < BOOTSTRAP_OFFSET {
        return Err(HistoryError::BelowBootstrap { offset });
    }
    match last {
        Some(last) if offset <= last => Err(HistoryError::NotAfterLast { offset, last }),
        _ => Ok(()),
    }
}

fn forget_before<T>(entries: &mut BTreeMap<Offset, T>, start_offset: Offset) {
    let Some(&keep) = entries.range(..=start_offset).next_back().map(|(o, _)| o) else {
        return;
    };
    let kept = entries.split_off(&keep);
    *entries = kept;
}

#[cfg(test)]
mod tests {
    use super::super::voter_set::tests::set;
    use super::*;
    use crate::record::{LeaderChangeMessage, VotersRecord};

    fn voters(list: &[(i32, u8)]) -> ControlRecord {
        ControlRecord::Voters(set(list).to_record())
    }

    fn kraft(level: i16) -> ControlRecord {
        ControlRecord::KRaftVersion(KRaftVersionRecord {
            version: 0,
            kraft_version: level,
        })
    }

    /// The bootstrap checkpoint of a one-voter quorum, then voters 2 and 3 added in the log.
    fn grown() -> VoterSetHistory {
        let mut h = VoterSetHistory::new(None);
        h.load_snapshot(Offset(0), &[kraft(1), voters(&[(1, 1)])])
            .unwrap();
        h.apply(Offset(5), &voters(&[(1, 1), (2, 2)])).unwrap();
        h.apply(Offset(9), &voters(&[(1, 1), (2, 2), (3, 3)]))
            .unwrap();
        h
    }

    #[test]
    fn a_kraft_version_downgrade_is_refused() {
        let mut h = grown();
        // A later KRaftVersion at the same level is fine; going back to static voters is not:
        // kraft.version 0 snapshots carry no voters, so the voter set would be lost with them.
        h.apply(Offset(12), &kraft(1)).unwrap();
        assert_eq!(
            h.apply(Offset(14), &kraft(0)),
            Err(HistoryError::KRaftVersionDowngrade {
                offset: Offset(14),
                level: 0,
                last: 1
            })
        );
        assert_eq!(h.kraft_version(), 1);
    }

    #[test]
    fn the_bootstrap_checkpoint_sits_before_the_log() {
        let mut h = VoterSetHistory::new(None);
        assert_eq!(h.latest(), None);
        assert_eq!(h.kraft_version(), 0);
        h.load_snapshot(Offset(0), &[kraft(1), voters(&[(1, 1)])])
            .unwrap();
        assert_eq!(h.latest_entry(), Some((BOOTSTRAP_OFFSET, &set(&[(1, 1)]))));
        assert_eq!(h.kraft_version(), 1);
        assert_eq!(h.committed(Offset(0)), Some(&set(&[(1, 1)])));
        assert!(!h.has_uncommitted_change(Offset(0)));
    }

    #[test]
    fn the_static_voters_are_the_fallback_of_a_kraft_version_0_quorum() {
        let h = VoterSetHistory::new(Some(set(&[(1, 0), (2, 0), (3, 0)])));
        assert_eq!(h.latest(), Some(&set(&[(1, 0), (2, 0), (3, 0)])));
        assert_eq!(h.committed(Offset(0)), h.latest());
        assert_eq!(h.latest_entry(), None);
        assert_eq!(h.at_or_before(Offset(100)), None);
        assert!(!h.has_uncommitted_change(Offset(0)));
        assert_eq!(h.kraft_version(), 0);
    }

    #[test]
    fn a_change_is_in_force_when_appended_and_committed_below_the_high_watermark() {
        let h = grown();
        let three = set(&[(1, 1), (2, 2), (3, 3)]);
        let two = set(&[(1, 1), (2, 2)]);
        assert_eq!(h.latest(), Some(&three));
        for (hw, committed, uncommitted) in [
            (0, set(&[(1, 1)]), true),
            (5, set(&[(1, 1)]), true),
            (6, two.clone(), true),
            (9, two.clone(), true),
            (10, three.clone(), false),
            (50, three.clone(), false),
        ] {
            assert_eq!(h.committed(Offset(hw)), Some(&committed), "hw {hw}");
            assert_eq!(h.has_uncommitted_change(Offset(hw)), uncommitted, "hw {hw}");
        }
        assert_eq!(h.at_or_before(Offset(4)), Some(&set(&[(1, 1)])));
        assert_eq!(h.at_or_before(Offset(5)), Some(&two));
        assert_eq!(h.at_or_before(Offset(-2)), None);
    }

    #[test]
    fn truncation_reverts_the_changes_above_it() {
        let mut h = grown();
        h.truncate_from(Offset(10));
        assert_eq!(
            h.latest_entry().unwrap().0,
            Offset(9),
            "offset 9 is below the new end"
        );
        h.truncate_from(Offset(9));
        assert_eq!(h.latest_entry(), Some((Offset(5), &set(&[(1, 1), (2, 2)]))));
        assert!(!h.has_uncommitted_change(Offset(6)));
        h.truncate_from(Offset(0));
        assert_eq!(h.latest_entry(), Some((BOOTSTRAP_OFFSET, &set(&[(1, 1)]))));
        assert_eq!(
            h.kraft_version(),
            1,
            "the bootstrap kraft.version is below offset 0"
        );
        // After a truncation the log grows again from its new end, with another change.
        h.apply(Offset(3), &voters(&[(1, 1), (4, 4)])).unwrap();
        assert_eq!(h.latest(), Some(&set(&[(1, 1), (4, 4)])));
    }

    #[test]
    fn a_truncated_kraft_version_upgrade_is_reverted_too() {
        let mut h = VoterSetHistory::new(Some(set(&[(1, 0)])));
        h.apply(Offset(7), &kraft(1)).unwrap();
        h.apply(Offset(7), &voters(&[(1, 1)])).unwrap();
        assert_eq!((h.kraft_version(), h.kraft_version_at(Offset(6))), (1, 0));
        h.truncate_from(Offset(7));
        assert_eq!(h.kraft_version(), 0);
        assert_eq!(
            h.latest(),
            Some(&set(&[(1, 0)])),
            "back to the static voters"
        );
    }

    #[test]
    fn forgetting_a_prefix_keeps_the_set_in_force_at_the_new_start() {
        let mut h = grown();
        h.forget_before(Offset(4));
        assert_eq!(h.at_or_before(Offset(4)), Some(&set(&[(1, 1)])), "kept");
        h.forget_before(Offset(7));
        assert_eq!(h.at_or_before(Offset(4)), None, "forgotten");
        assert_eq!(h.at_or_before(Offset(7)), Some(&set(&[(1, 1), (2, 2)])));
        assert_eq!(
            h.kraft_version_at(Offset(7)),
            1,
            "the level is kept likewise"
        );
        h.forget_before(Offset(9));
        assert_eq!(h.latest_entry().unwrap().0, Offset(9));
        assert_eq!(h.at_or_before(Offset(8)), None);
        h.forget_before(Offset(100));
        assert_eq!(
            h.latest(),
            Some(&set(&[(1, 1), (2, 2), (3, 3)])),
            "never the last one"
        );
        assert_eq!(h.kraft_version(), 1);
    }

    #[test]
    fn an_installed_snapshot_replaces_the_history() {
        let mut h = grown();
        h.load_snapshot(Offset(20), &[kraft(1), voters(&[(2, 2), (3, 3)])])
            .unwrap();
        assert_eq!(
            h.latest_entry(),
            Some((Offset(19), &set(&[(2, 2), (3, 3)])))
        );
        assert_eq!(h.at_or_before(Offset(18)), None);
        assert!(!h.has_uncommitted_change(Offset(20)));
        assert!(h.has_uncommitted_change(Offset(19)));
        // The log after the snapshot follows it, one change at a time.
        h.apply(Offset(25), &voters(&[(2, 2), (3, 3), (4, 4)]))
            .unwrap();
        assert!(h.apply(Offset(26), &voters(&[(2, 2)])).is_err());
    }

    #[test]
    fn the_snapshot_records_store_the_state_at_an_offset() {
        let h = grown();
        let records = h.snapshot_records(Offset(7));
        assert_eq!(records, [kraft(1), voters(&[(1, 1), (2, 2)])]);
        let mut again = VoterSetHistory::new(None);
        again.load_snapshot(Offset(8), &records).unwrap();
        assert_eq!(again.latest(), h.at_or_before(Offset(7)));
        let static_only = VoterSetHistory::new(Some(set(&[(1, 0)])));
        assert_eq!(static_only.snapshot_records(Offset(3)), [kraft(0)]);
    }

    #[test]
    fn other_control_records_are_ignored() {
        let mut h = grown();
        let before = h.clone();
        let leader_change = ControlRecord::LeaderChange(LeaderChangeMessage {
            version: 0,
            leader_id: 1,
            voters: vec![1],
            granting_voters: vec![1],
        });
        h.apply(Offset(12), &leader_change).unwrap();
        assert_eq!(h, before);
    }

    #[test]
    fn out_of_order_or_unknown_entries_are_refused_and_change_nothing() {
        let mut h = grown();
        let before = h.clone();
        let cases = [
            (Offset(9), voters(&[(1, 1), (2, 2)])),
            (Offset(3), voters(&[(1, 1), (2, 2)])),
            (Offset(12), voters(&[(1, 1)])),
            (Offset(12), voters(&[(1, 1), (2, 8), (3, 9)])),
            (Offset(12), kraft(2)),
            (Offset(12), kraft(-1)),
            (
                Offset(12),
                ControlRecord::Voters(VotersRecord {
                    version: 0,
                    voters: vec![],
                }),
            ),
        ];
        for (offset, record) in cases {
            assert!(h.apply(offset, &record).is_err(), "{offset} {record:?}");
            assert_eq!(h, before);
        }
        let mut fresh = VoterSetHistory::new(None);
        assert_eq!(
            fresh.add_voters_at(Offset(-2), set(&[(1, 1)])),
            Err(HistoryError::BelowBootstrap { offset: Offset(-2) })
        );
        fresh.apply(Offset(3), &kraft(1)).unwrap();
        assert!(matches!(
            fresh.apply(Offset(3), &kraft(1)),
            Err(HistoryError::NotAfterLast { .. })
        ));
    }

    #[test]
    fn the_bootstrap_and_static_sets_are_not_compared_with_the_log() {
        let mut h = VoterSetHistory::new(None);
        h.load_snapshot(Offset(0), &[kraft(1), voters(&[(1, 1)])])
            .unwrap();
        // A first set from the log may differ from the bootstrap one by more than one voter.
        h.apply(Offset(0), &voters(&[(2, 2), (3, 3), (4, 4)]))
            .unwrap();
        assert_eq!(h.latest(), Some(&set(&[(2, 2), (3, 3), (4, 4)])));
    }

    #[test]
    fn errors_name_the_offset() {
        let mut h = grown();
        let err = h.apply(Offset(12), &voters(&[(1, 1)])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the voter set [1:AQAAAAAAAAAAAAAAAAAAAA] at offset 12 changes more than one voter from \
             [1:AQAAAAAAAAAAAAAAAAAAAA, 2:AgAAAAAAAAAAAAAAAAAAAA, 3:AwAAAAAAAAAAAAAAAAAAAA] at offset 9"
        );
    }
}
