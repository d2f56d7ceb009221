//! A voter set of a dynamic (kraft.version 1) quorum: each voter is a replica key (node id and
//! directory id) with its endpoints by listener name and the kraft.version range it supports
//! (KIP-853). Converted from and to the Voters control record; the history of voter sets along
//! the log is [`super::VoterSetHistory`].
//!
//! Owns the voter-set rules that do not depend on time or the log: who is a voter (a replica
//! with the voter's id but another directory id is not: it is a new disk), majorities, the
//! "differ by at most one voter" check that keeps successive majorities overlapping, adding and
//! removing one voter. It must never do IO or read a clock, and it trusts nothing it decodes: a
//! record naming a voter twice, a negative id or no voter at all is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::record::{VoterEndpoint, VoterRecord, VotersRecord};
use crate::types::NodeId;
use crate::uuid::Uuid;

/// The Voters record version written: the only one Kafka defines.
const VOTERS_RECORD_VERSION: i16 = 0;

/// Most voters a leader lets a set grow to: each voter is a connection every replica dials and
/// a vote every election waits for, and Kafka's tools format at most this many.
pub const MAX_VOTERS: usize = 128;

/// A replica as KIP-853 identifies it: its node id and the directory id of its metadata log
/// directory (`None` for a static voter from `controller.quorum.voters`, known by id alone).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ReplicaKey {
    pub id: NodeId,
    pub directory_id: Option<Uuid>,
}

impl ReplicaKey {
    /// Kafka writes the zero id for "no directory id".
    pub fn new(id: NodeId, directory_id: Uuid) -> ReplicaKey {
        ReplicaKey {
            id,
            directory_id: (directory_id != Uuid::ZERO).then_some(directory_id),
        }
    }
}

impl fmt::Display for ReplicaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.directory_id {
            Some(dir) => write!(f, "{}:{dir}", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

/// Where a voter listens on one listener.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ListenerAddress {
    pub host: String,
    pub port: u16,
}

/// One voter: its key, its endpoints by listener name, the kraft.version range it supports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Voter {
    pub key: ReplicaKey,
    pub endpoints: BTreeMap<String, ListenerAddress>,
    pub kraft_versions: (i16, i16),
}

impl Voter {
    /// Where this voter listens on `listener` (the quorum listener's name); with no name
    /// known, its first endpoint.
    pub fn endpoint(&self, listener: Option<&str>) -> Option<&ListenerAddress> {
        match listener {
            Some(name) => self.endpoints.get(name),
            None => self.endpoints.values().next(),
        }
    }

    /// Whether `replica` is this voter: the same id, and the same directory id unless this voter
    /// has none (a static voter).
    pub fn is(&self, replica: ReplicaKey) -> bool {
        self.key.id == replica.id
            && (self.key.directory_id.is_none() || self.key.directory_id == replica.directory_id)
    }
}

/// Why a Voters record is not a voter set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoterSetError {
    #[error("the voter set is empty")]
    Empty,
    #[error("voter id {0} is negative")]
    NegativeId(i32),
    #[error("voter {0} is listed more than once")]
    DuplicateVoter(i32),
    #[error("voter {voter} lists listener '{listener}' more than once")]
    DuplicateListener { voter: i32, listener: String },
    #[error("voter {voter} supports kraft.version {min} to {max}, an empty or negative range")]
    BadVersionRange { voter: i32, min: i16, max: i16 },
}

/// A non-empty set of voters, at most one per node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterSet {
    voters: BTreeMap<NodeId, Voter>,
}

impl VoterSet {
    /// The voter set of a Voters control record, checked.
    pub fn from_record(record: &VotersRecord) -> Result<VoterSet, VoterSetError> {
        let voters = record
            .voters
            .iter()
            .map(voter_from_record)
            .collect::<Result<Vec<_>, _>>()?;
        VoterSet::new(voters)
    }

    /// A set of `voters`; refuses an empty one and a node id given twice.
    pub fn new(voters: impl IntoIterator<Item = Voter>) -> Result<VoterSet, VoterSetError> {
        let mut map = BTreeMap::new();
        for voter in voters {
            let id = voter.key.id;
            if map.insert(id, voter).is_some() {
                return Err(VoterSetError::DuplicateVoter(id.0));
            }
        }
        match map.is_empty() {
            true => Err(VoterSetError::Empty),
            false => Ok(VoterSet { voters: map }),
        }
    }

    /// The static voters of a kraft.version 0 quorum (`controller.quorum.voters`): known by id
    /// alone, without directory ids or endpoints; `None` for no id.
    pub fn static_voters(ids: &BTreeSet<NodeId>) -> Option<VoterSet> {
        VoterSet::new(ids.iter().map(|id| Voter {
            key: ReplicaKey {
                id: *id,
                directory_id: None,
            },
            endpoints: BTreeMap::new(),
            kraft_versions: (0, 0),
        }))
        .ok()
    }

    /// This set as the Voters control record that stores it, voters in id order.
    pub fn to_record(&self) -> VotersRecord {
        VotersRecord {
            version: VOTERS_RECORD_VERSION,
            voters: self.voters.values().map(voter_to_record).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// Always false: a voter set has at least one voter. (For clippy's `len` rule.)
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.keys().copied()
    }

    pub fn keys(&self) -> BTreeSet<ReplicaKey> {
        self.voters.values().map(|v| v.key).collect()
    }

    pub fn voters(&self) -> impl Iterator<Item = &Voter> {
        self.voters.values()
    }

    pub fn get(&self, id: NodeId) -> Option<&Voter> {
        self.voters.get(&id)
    }

    /// Whether `replica` is a voter (its directory id must match, see [`Voter::is`]).
    pub fn is_voter(&self, replica: ReplicaKey) -> bool {
        self.voters.get(&replica.id).is_some_and(|v| v.is(replica))
    }

    /// Whether `replica` is the one and only voter (it may elect itself at once).
    pub fn is_only_voter(&self, replica: ReplicaKey) -> bool {
        self.voters.len() == 1 && self.is_voter(replica)
    }

    /// How many voters make a majority.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Whether every majority of `self` meets every majority of `other`: true when each set has
    /// at most one voter (by replica key) the other lacks, so one change at a time is safe.
    pub fn has_overlapping_majority(&self, other: &VoterSet) -> bool {
        let (mine, theirs) = (self.keys(), other.keys());
        mine.difference(&theirs).count() <= 1 && theirs.difference(&mine).count() <= 1
    }

    /// This set plus `voter`, unless its node id is already a voter.
    pub fn add(&self, voter: Voter) -> Option<VoterSet> {
        if self.voters.contains_key(&voter.key.id) {
            return None;
        }
        let mut voters = self.voters.clone();
        voters.insert(voter.key.id, voter);
        Some(VoterSet { voters })
    }

    /// This set with the voter whose key is exactly `voter.key` given `voter`'s endpoints and
    /// supported versions, unless it is not a voter.
    pub fn update(&self, voter: Voter) -> Option<VoterSet> {
        let found = self
            .voters
            .get(&voter.key.id)
            .is_some_and(|v| v.key == voter.key);
        if !found {
            return None;
        }
        let mut voters = self.voters.clone();
        voters.insert(voter.key.id, voter);
        Some(VoterSet { voters })
    }

    /// This set without the voter whose key is exactly `key`, unless it is not a voter or the
    /// last one.
    pub fn remove(&self, key: ReplicaKey) -> Option<VoterSet> {
        let found = self.voters.get(&key.id).is_some_and(|v| v.key == key);
        if !found || self.voters.len() == 1 {
            return None;
        }
        let mut voters = self.voters.clone();
        voters.remove(&key.id);
        Some(VoterSet { voters })
    }
}

impl fmt::Display for VoterSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self.voters.values().map(|v| v.key.to_string()).collect();
        write!(f, "[{}]", keys.join(", "))
    }
}

fn voter_from_record(record: &VoterRecord) -> Result<Voter, VoterSetError> {
    let id = record.voter_id;
    if id < 0 {
        return Err(VoterSetError::NegativeId(id));
    }
    let (min, max) = (
        record.min_supported_kraft_version,
        record.max_supported_kraft_version,
    );
    if min < 0 || max < min {
        return Err(VoterSetError::BadVersionRange {
            voter: id,
            min,
            max,
        });
    }
    let mut endpoints = BTreeMap::new();
    for e in &record.endpoints {
        let address = ListenerAddress {
            host: e.host.clone(),
            port: e.port,
        };
        if endpoints.insert(e.name.clone(), address).is_some() {
            return Err(VoterSetError::DuplicateListener {
                voter: id,
                listener: e.name.clone(),
            });
        }
    }
    Ok(Voter {
        key: ReplicaKey::new(NodeId(id), record.voter_directory_id),
        endpoints,
        kraft_versions: (min, max),
    })
}

fn voter_to_record(voter: &Voter) -> VoterRecord {
    VoterRecord {
        voter_id: voter.key.id.0,
        voter_directory_id: voter.key.directory_id.unwrap_or(Uuid::ZERO),
        endpoints: voter
            .endpoints
            .iter()
            .map(|(name, a)| VoterEndpoint {
                name: name.clone(),
                host: a.host.clone(),
                port: a.port,
            })
            .collect(),
        min_supported_kraft_version: voter.kraft_versions.0,
        max_supported_kraft_version: voter.kraft_versions.1,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A voter `id` with directory id byte `dir` (0: none) on listener CONTROLLER port 9000+id.
    pub(crate) fn voter(id: i32, dir: u8) -> Voter {
        let mut directory = [0u8; 16];
        directory[0] = dir;
        Voter {
            key: ReplicaKey::new(NodeId(id), Uuid(directory)),
            endpoints: BTreeMap::from([(
                "CONTROLLER".to_string(),
                ListenerAddress {
                    host: format!("host-{id}"),
                    port: 9000 + id as u16,
                },
            )]),
            kraft_versions: (0, 1),
        }
    }

    pub(crate) fn set(voters: &[(i32, u8)]) -> VoterSet {
        VoterSet::new(voters.iter().map(|&(id, dir)| voter(id, dir))).unwrap()
    }

    fn key(id: i32, dir: u8) -> ReplicaKey {
        voter(id, dir).key
    }

    #[test]
    fn a_set_round_trips_through_its_voters_record() {
        let mut two = voter(2, 7);
        two.endpoints.insert(
            "INTERNAL".into(),
            ListenerAddress {
                host: "::1".into(),
                port: 1,
            },
        );
        let original = VoterSet::new([voter(3, 9), two, voter(1, 5)]).unwrap();
        let record = original.to_record();
        let ids: Vec<i32> = record.voters.iter().map(|v| v.voter_id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(record.voters[1].endpoints.len(), 2);
        assert_eq!(VoterSet::from_record(&record).unwrap(), original);
    }

    #[test]
    fn the_zero_directory_id_means_none() {
        let record = set(&[(1, 0)]).to_record();
        assert_eq!(record.voters[0].voter_directory_id, Uuid::ZERO);
        let back = VoterSet::from_record(&record).unwrap();
        assert_eq!(back.get(NodeId(1)).unwrap().key.directory_id, None);
    }

    #[test]
    fn a_bad_record_is_refused_with_its_reason() {
        let good = set(&[(1, 1), (2, 2)]).to_record();
        let mut dup = good.clone();
        dup.voters[1].voter_id = 1;
        assert_eq!(
            VoterSet::from_record(&dup),
            Err(VoterSetError::DuplicateVoter(1))
        );
        let mut negative = good.clone();
        negative.voters[0].voter_id = -1;
        assert_eq!(
            VoterSet::from_record(&negative),
            Err(VoterSetError::NegativeId(-1))
        );
        let mut listener = good.clone();
        let endpoint = listener.voters[0].endpoints[0].clone();
        listener.voters[0].endpoints.push(endpoint);
        assert!(matches!(
            VoterSet::from_record(&listener),
            Err(VoterSetError::DuplicateListener { voter: 1, .. })
        ));
        let mut range = good.clone();
        range.voters[0].min_supported_kraft_version = 2;
        assert!(matches!(
            VoterSet::from_record(&range),
            Err(VoterSetError::BadVersionRange { voter: 1, .. })
        ));
        let empty = VotersRecord {
            version: 0,
            voters: vec![],
        };
        assert_eq!(VoterSet::from_record(&empty), Err(VoterSetError::Empty));
    }

    #[test]
    fn a_replica_with_a_new_directory_id_is_not_the_voter() {
        let voters = set(&[(1, 1), (2, 2)]);
        assert!(voters.is_voter(key(1, 1)));
        assert!(!voters.is_voter(key(1, 9)), "a wiped disk is a new replica");
        assert!(!voters.is_voter(key(1, 0)));
        assert!(!voters.is_voter(key(3, 1)));
        let static_voters = set(&[(1, 0)]);
        assert!(
            static_voters.is_voter(key(1, 9)),
            "static voters match by id"
        );
        assert!(static_voters.is_only_voter(key(1, 4)));
        assert!(!voters.is_only_voter(key(1, 1)));
    }

    #[test]
    fn majorities() {
        assert_eq!(set(&[(1, 1)]).majority(), 1);
        assert_eq!(set(&[(1, 1), (2, 2)]).majority(), 2);
        assert_eq!(set(&[(1, 1), (2, 2), (3, 3)]).majority(), 2);
        assert_eq!(set(&[(1, 1), (2, 2), (3, 3), (4, 4)]).majority(), 3);
    }

    #[test]
    fn overlapping_majorities_allow_one_change_each_way() {
        let three = set(&[(1, 1), (2, 2), (3, 3)]);
        assert!(three.has_overlapping_majority(&three));
        assert!(three.has_overlapping_majority(&set(&[(1, 1), (2, 2)])));
        assert!(three.has_overlapping_majority(&set(&[(1, 1), (2, 2), (3, 3), (4, 4)])));
        assert!(three.has_overlapping_majority(&set(&[(1, 1), (2, 2), (4, 4)])));
        assert!(
            three.has_overlapping_majority(&set(&[(1, 1), (2, 2), (3, 9)])),
            "a voter's new directory id is one out, one in"
        );
        assert!(!three.has_overlapping_majority(&set(&[(1, 1)])));
        assert!(!three.has_overlapping_majority(&set(&[(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)])));
        assert!(
            !three.has_overlapping_majority(&set(&[(1, 1), (2, 8), (3, 9)])),
            "two new directory ids are two changes"
        );
    }

    #[test]
    fn add_and_remove_one_voter() {
        let one = set(&[(1, 1)]);
        assert!(one.add(voter(1, 5)).is_none(), "the id is taken");
        let two = one.add(voter(2, 2)).unwrap();
        assert_eq!(two, set(&[(1, 1), (2, 2)]));
        assert!(
            two.remove(key(2, 9)).is_none(),
            "the directory id must match"
        );
        assert!(two.remove(key(3, 3)).is_none());
        assert_eq!(two.remove(key(2, 2)).unwrap(), one);
        assert!(one.remove(key(1, 1)).is_none(), "never the last voter");
    }
}
