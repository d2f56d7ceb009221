//! `quorum-state`: the durable election state (epoch, leader, vote) as one line of JSON
//! (docs/protocol.md §16). Written atomically before any vote or epoch is acted on; a file that
//! exists but cannot be read is an error, because silently forgetting a vote could elect two
//! leaders in one epoch. It must never be written except atomically, through the [`Fs`] it was
//! built with.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::StorageError;
use super::fs::{Fs, real_fs};
use super::fsutil;
use crate::types::{Epoch, NodeId};
use crate::uuid::Uuid;

/// What a replica must remember about elections across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionState {
    pub epoch: Epoch,
    pub leader_id: Option<NodeId>,
    pub voted_id: Option<NodeId>,
    pub voted_directory_id: Option<Uuid>,
}

/// Largest `quorum-state` accepted: the v1 record is ~120 bytes; anything far bigger is not ours.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// The `data_version` written; versions 0 and 1 are read.
const DATA_VERSION: i16 = 1;

#[derive(Serialize, Deserialize)]
struct Json {
    #[serde(rename = "leaderId", default = "none")]
    leader_id: i32,
    #[serde(rename = "leaderEpoch", default = "none")]
    leader_epoch: i32,
    #[serde(rename = "votedId", default = "none")]
    voted_id: i32,
    #[serde(rename = "votedDirectoryId", default)]
    voted_directory_id: Option<String>,
    data_version: i16,
}

fn none() -> i32 {
    -1
}

/// Kafka's `data_version` 0 record, written for a static voter set (kraft.version 0): no
/// directory id, the voters listed, and two fields Kafka keeps at fixed values.
#[derive(Serialize)]
struct JsonV0<'a> {
    #[serde(rename = "clusterId")]
    cluster_id: &'a str,
    #[serde(rename = "leaderId")]
    leader_id: i32,
    #[serde(rename = "leaderEpoch")]
    leader_epoch: i32,
    #[serde(rename = "votedId")]
    voted_id: i32,
    #[serde(rename = "appliedOffset")]
    applied_offset: i64,
    #[serde(rename = "currentVoters")]
    current_voters: Vec<VoterV0>,
    data_version: i16,
}

#[derive(Serialize)]
struct VoterV0 {
    #[serde(rename = "voterId")]
    voter_id: i32,
}

/// The `quorum-state` file of one partition directory.
#[derive(Debug, Clone)]
pub struct QuorumStateFile {
    fs: Fs,
    path: PathBuf,
}

impl QuorumStateFile {
    pub const FILE_NAME: &'static str = "quorum-state";

    /// The file in `partition_dir` on the real file system.
    pub fn new(partition_dir: &Path) -> Self {
        Self::new_in(&real_fs(), partition_dir)
    }

    /// The file in `partition_dir` on `fs`.
    pub fn new_in(fs: &Fs, partition_dir: &Path) -> Self {
        QuorumStateFile {
            fs: fs.clone(),
            path: partition_dir.join(Self::FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored state, or `None` when no file exists yet.
    pub fn read(&self) -> Result<Option<ElectionState>, StorageError> {
        let Some(text) = fsutil::read_small_file(&*self.fs, &self.path, MAX_FILE_BYTES)? else {
            return Ok(None);
        };
        parse(&text)
            .map(Some)
            .map_err(|reason| StorageError::corrupt(&self.path, reason))
    }

    /// Replaces the stored state atomically and durably (`data_version` 1, a dynamic quorum).
    pub fn write(&self, state: &ElectionState) -> Result<(), StorageError> {
        fsutil::write_atomically_in(&*self.fs, &self.path, to_json(state).as_bytes())
    }

    /// The same for a static voter set (kraft.version 0): `data_version` 0 listing `voters`,
    /// as Kafka writes it, so Kafka's tools read it as the quorum they expect.
    pub fn write_static(
        &self,
        state: &ElectionState,
        voters: &[NodeId],
    ) -> Result<(), StorageError> {
        let text = to_json_v0(state, voters);
        fsutil::write_atomically_in(&*self.fs, &self.path, text.as_bytes())
    }
}

fn to_json_v0(state: &ElectionState, voters: &[NodeId]) -> String {
    let json = JsonV0 {
        cluster_id: "",
        leader_id: state.leader_id.map_or(-1, |n| n.0),
        leader_epoch: state.epoch.0,
        voted_id: state.voted_id.map_or(-1, |n| n.0),
        applied_offset: 0,
        current_voters: voters.iter().map(|v| VoterV0 { voter_id: v.0 }).collect(),
        data_version: 0,
    };
    serde_json::to_string(&json).expect("plain struct serializes")
}

fn to_json(state: &ElectionState) -> String {
    let json = Json {
        leader_id: state.leader_id.map_or(-1, |n| n.0),
        leader_epoch: state.epoch.0,
        voted_id: state.voted_id.map_or(-1, |n| n.0),
        voted_directory_id: Some(state.voted_directory_id.unwrap_or(Uuid::ZERO).to_string()),
        data_version: DATA_VERSION,
    };
    serde_json::to_string(&json).expect("plain struct serializes")
}

fn parse(bytes: &[u8]) -> Result<ElectionState, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let line = text.lines().next().unwrap_or("");
    let json: Json =
        serde_json::from_str(line).map_err(|e| format!("not quorum-state JSON: {e}"))?;
    if !(0..=DATA_VERSION).contains(&json.data_version) {
        return Err(format!("unsupported data_version {}", json.data_version));
    }
    if json.leader_epoch < 0 {
        return Err(format!("leaderEpoch {} is negative", json.leader_epoch));
    }
    let id = |n: i32, field: &str| match n {
        -1 => Ok(None),
        n if n >= 0 => Ok(Some(NodeId(n))),
        n => Err(format!("{field} {n} is not a node id")),
    };
    let voted_directory_id = match json.voted_directory_id.as_deref() {
        None => None,
        Some(text) => Some(
            text.parse::<Uuid>()
                .map_err(|e| format!("votedDirectoryId: {e}"))?,
        ),
    };
    Ok(ElectionState {
        epoch: Epoch(json.leader_epoch),
        leader_id: id(json.leader_id, "leaderId")?,
        voted_id: id(json.voted_id, "votedId")?,
        voted_directory_id: voted_directory_id.filter(|u| *u != Uuid::ZERO),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_kafkas_v1_line() {
        let state = ElectionState {
            epoch: Epoch(2),
            leader_id: None,
            voted_id: Some(NodeId(1)),
            voted_directory_id: Some("J8aAPcfLQt2bqs1JT_rMgQ".parse().unwrap()),
        };
        assert_eq!(
            to_json(&state),
            r#"{"leaderId":-1,"leaderEpoch":2,"votedId":1,"votedDirectoryId":"J8aAPcfLQt2bqs1JT_rMgQ","data_version":1}"#
        );
        assert_eq!(parse(to_json(&state).as_bytes()).unwrap(), state);
    }

    #[test]
    fn writes_kafkas_v0_line_for_a_static_quorum() {
        let state = ElectionState {
            epoch: Epoch(5),
            leader_id: Some(NodeId(3)),
            voted_id: None,
            voted_directory_id: None,
        };
        let voters = [NodeId(1), NodeId(2), NodeId(3)];
        let text = to_json_v0(&state, &voters);
        assert_eq!(
            text,
            r#"{"clusterId":"","leaderId":3,"leaderEpoch":5,"votedId":-1,"appliedOffset":0,"currentVoters":[{"voterId":1},{"voterId":2},{"voterId":3}],"data_version":0}"#
        );
        assert_eq!(parse(text.as_bytes()).unwrap(), state);
    }

    #[test]
    fn reads_kafkas_v0_file() {
        let v0 = r#"{"clusterId":"","leaderId":3,"leaderEpoch":5,"votedId":-1,"appliedOffset":0,"currentVoters":[{"voterId":1},{"voterId":2},{"voterId":3}],"data_version":0}"#;
        let state = parse(v0.as_bytes()).unwrap();
        assert_eq!(
            (state.epoch, state.leader_id, state.voted_id),
            (Epoch(5), Some(NodeId(3)), None)
        );
    }

    #[test]
    fn rejects_what_is_not_a_valid_state() {
        for bad in [
            "",
            "{",
            r#"{"leaderId":-1,"leaderEpoch":2,"votedId":1}"#,
            r#"{"leaderId":-1,"leaderEpoch":2,"votedId":1,"data_version":2}"#,
            r#"{"leaderId":-1,"leaderEpoch":-1,"votedId":1,"data_version":1}"#,
            r#"{"leaderId":-7,"leaderEpoch":1,"votedId":1,"data_version":1}"#,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
