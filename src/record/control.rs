//! KRaft's control records: key layout and the flexible-version (v0) message values of
//! LeaderChange, SnapshotHeader, SnapshotFooter, KRaftVersion and Voters (docs/protocol.md §15).
//!
//! Values use Kafka's flexible encoding: unsigned-varint compact lengths (N + 1, 0 = null) and a
//! tagged-field section after every struct. Unknown tagged fields are skipped; unknown control
//! types decode as [`ControlRecord::Unknown`], so a newer peer's records never stop a reader.

use bytes::{BufMut, Bytes};

use super::cursor::{Cursor, put_uvarint};
use super::error::RecordError;
use crate::uuid::Uuid;

/// The `type` field of a control record key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRecordType {
    Abort,
    Commit,
    LeaderChange,
    SnapshotHeader,
    SnapshotFooter,
    KRaftVersion,
    KRaftVoters,
    Unknown(i16),
}

impl ControlRecordType {
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::LeaderChange => 2,
            ControlRecordType::SnapshotHeader => 3,
            ControlRecordType::SnapshotFooter => 4,
            ControlRecordType::KRaftVersion => 5,
            ControlRecordType::KRaftVoters => 6,
            ControlRecordType::Unknown(id) => id,
        }
    }

    pub fn from_id(id: i16) -> ControlRecordType {
        match id {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            2 => ControlRecordType::LeaderChange,
            3 => ControlRecordType::SnapshotHeader,
            4 => ControlRecordType::SnapshotFooter,
            5 => ControlRecordType::KRaftVersion,
            6 => ControlRecordType::KRaftVoters,
            other => ControlRecordType::Unknown(other),
        }
    }

    /// Kafka's enum name, as operator tools print it.
    pub fn name(self) -> &'static str {
        match self {
            ControlRecordType::Abort => "ABORT",
            ControlRecordType::Commit => "COMMIT",
            ControlRecordType::LeaderChange => "LEADER_CHANGE",
            ControlRecordType::SnapshotHeader => "SNAPSHOT_HEADER",
            ControlRecordType::SnapshotFooter => "SNAPSHOT_FOOTER",
            ControlRecordType::KRaftVersion => "KRAFT_VERSION",
            ControlRecordType::KRaftVoters => "KRAFT_VOTERS",
            ControlRecordType::Unknown(_) => "UNKNOWN",
        }
    }
}

/// Written by a new leader at the start of its epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderChangeMessage {
    pub version: i16,
    pub leader_id: i32,
    /// Every voter of the epoch, the leader included.
    pub voters: Vec<i32>,
    /// The voters that granted the leader its vote, the leader included.
    pub granting_voters: Vec<i32>,
}

/// First record of every snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeaderRecord {
    pub version: i16,
    pub last_contained_log_timestamp: i64,
}

/// Last record of every snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotFooterRecord {
    pub version: i16,
}

/// The finalized `kraft.version` feature level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KRaftVersionRecord {
    pub version: i16,
    pub kraft_version: i16,
}

/// The voter set (kraft.version 1, KIP-853).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VotersRecord {
    pub version: i16,
    pub voters: Vec<VoterRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterRecord {
    pub voter_id: i32,
    pub voter_directory_id: Uuid,
    pub endpoints: Vec<VoterEndpoint>,
    pub min_supported_kraft_version: i16,
    pub max_supported_kraft_version: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// A decoded control record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlRecord {
    LeaderChange(LeaderChangeMessage),
    SnapshotHeader(SnapshotHeaderRecord),
    SnapshotFooter(SnapshotFooterRecord),
    KRaftVersion(KRaftVersionRecord),
    Voters(VotersRecord),
    /// A type this version does not interpret (including transaction markers).
    Unknown {
        record_type: i16,
        value: Bytes,
    },
}

/// Smallest encodings of compact-array elements: a voter id (4 + tags 1); a voter (id 4, uuid 16,
/// empty endpoints 1, feature range 4, two tag sections 2); an endpoint (two empty strings 2,
/// port 2, tags 1); a string byte.
const MIN_VOTER_ID_BYTES: usize = 5;
const MIN_VOTER_BYTES: usize = 27;
const MIN_ENDPOINT_BYTES: usize = 5;
const MIN_STRING_BYTE: usize = 1;

/// Reads a compact array length and checks that the remaining bytes could hold that many
/// elements of at least `min_element_bytes` each, so a crafted count cannot make us allocate.
fn bounded_count(cur: &mut Cursor<'_>, min_element_bytes: usize) -> Result<usize, RecordError> {
    let n = cur.uvarint().ok_or_else(|| bad("bad array length"))?;
    let n = n.checked_sub(1).ok_or_else(|| bad("null array"))? as usize;
    if n > cur.remaining() / min_element_bytes {
        return Err(bad("array longer than the record"));
    }
    Ok(n)
}

fn preallocated<T>(n: usize) -> Vec<T> {
    Vec::with_capacity(n.min(super::MAX_PREALLOCATED_ELEMENTS))
}

fn bad(reason: &str) -> RecordError {
    RecordError::BadControlRecord(reason.to_string())
}

impl ControlRecord {
    pub fn record_type(&self) -> ControlRecordType {
        match self {
            ControlRecord::LeaderChange(_) => ControlRecordType::LeaderChange,
            ControlRecord::SnapshotHeader(_) => ControlRecordType::SnapshotHeader,
            ControlRecord::SnapshotFooter(_) => ControlRecordType::SnapshotFooter,
            ControlRecord::KRaftVersion(_) => ControlRecordType::KRaftVersion,
            ControlRecord::Voters(_) => ControlRecordType::KRaftVoters,
            ControlRecord::Unknown { record_type, .. } => ControlRecordType::from_id(*record_type),
        }
    }

    /// The 4-byte key: version 0, then the type.
    pub fn encode_key(&self) -> [u8; 4] {
        let t = self.record_type().id().to_be_bytes();
        [0, 0, t[0], t[1]]
    }

    /// The value in flexible version 0.
    pub fn encode_value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        match self {
            ControlRecord::LeaderChange(m) => {
                out.put_i16(m.version);
                out.put_i32(m.leader_id);
                put_voter_ids(&mut out, &m.voters);
                put_voter_ids(&mut out, &m.granting_voters);
            }
            ControlRecord::SnapshotHeader(h) => {
                out.put_i16(h.version);
                out.put_i64(h.last_contained_log_timestamp);
            }
            ControlRecord::SnapshotFooter(f) => out.put_i16(f.version),
            ControlRecord::KRaftVersion(k) => {
                out.put_i16(k.version);
                out.put_i16(k.kraft_version);
            }
            ControlRecord::Voters(v) => put_voters(&mut out, v),
            ControlRecord::Unknown { value, .. } => {
                out.extend_from_slice(value);
                return out;
            }
        }
        put_uvarint(&mut out, 0);
        out
    }

    /// Decodes a control record from its key and value, which must hold nothing more.
    pub fn decode(key: &[u8], value: &[u8]) -> Result<ControlRecord, RecordError> {
        let (record, left) = Self::decode_prefix(key, value)?;
        if left != 0 {
            return Err(bad("bytes left after the message"));
        }
        Ok(record)
    }

    /// Decodes a control record as Kafka's generated readers do: whatever follows the message's
    /// tagged fields is not looked at (returned: how many bytes that is). For tools that show
    /// what Kafka would show; the log itself uses the strict [`ControlRecord::decode`].
    pub fn decode_prefix(key: &[u8], value: &[u8]) -> Result<(ControlRecord, usize), RecordError> {
        let mut k = Cursor::new(key);
        let version = k.i16().ok_or_else(|| bad("key shorter than 4 bytes"))?;
        let record_type = k.i16().ok_or_else(|| bad("key shorter than 4 bytes"))?;
        // Like Kafka, a newer key version is read as version 0; only a negative one is invalid.
        if version < 0 {
            return Err(bad(&format!("negative control key version {version}")));
        }
        let mut cur = Cursor::new(value);
        let record = match ControlRecordType::from_id(record_type) {
            ControlRecordType::LeaderChange => ControlRecord::LeaderChange(LeaderChangeMessage {
                version: i16_field(&mut cur)?,
                leader_id: i32_field(&mut cur)?,
                voters: read_voter_ids(&mut cur)?,
                granting_voters: read_voter_ids(&mut cur)?,
            }),
            ControlRecordType::SnapshotHeader => {
                ControlRecord::SnapshotHeader(SnapshotHeaderRecord {
                    version: i16_field(&mut cur)?,
                    last_contained_log_timestamp: cur.i64().ok_or_else(|| bad("truncated"))?,
                })
            }
            ControlRecordType::SnapshotFooter => {
                ControlRecord::SnapshotFooter(SnapshotFooterRecord {
                    version: i16_field(&mut cur)?,
                })
            }
            ControlRecordType::KRaftVersion => ControlRecord::KRaftVersion(KRaftVersionRecord {
                version: i16_field(&mut cur)?,
                kraft_version: i16_field(&mut cur)?,
            }),
            ControlRecordType::KRaftVoters => ControlRecord::Voters(read_voters(&mut cur)?),
            _ => {
                let unknown = ControlRecord::Unknown {
                    record_type,
                    value: Bytes::copy_from_slice(value),
                };
                return Ok((unknown, 0));
            }
        };
        skip_tagged_fields(&mut cur)?;
        Ok((record, cur.remaining()))
    }
}

fn i16_field(cur: &mut Cursor<'_>) -> Result<i16, RecordError> {
    cur.i16().ok_or_else(|| bad("truncated"))
}

fn i32_field(cur: &mut Cursor<'_>) -> Result<i32, RecordError> {
    cur.i32().ok_or_else(|| bad("truncated"))
}

fn put_voter_ids(out: &mut Vec<u8>, ids: &[i32]) {
    put_uvarint(out, ids.len() as u64 + 1);
    for id in ids {
        out.put_i32(*id);
        put_uvarint(out, 0);
    }
}

fn read_voter_ids(cur: &mut Cursor<'_>) -> Result<Vec<i32>, RecordError> {
    let n = bounded_count(cur, MIN_VOTER_ID_BYTES)?;
    let mut ids = preallocated(n);
    for _ in 0..n {
        ids.push(i32_field(cur)?);
        skip_tagged_fields(cur)?;
    }
    Ok(ids)
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64 + 1);
    out.extend_from_slice(s.as_bytes());
}

fn read_string(cur: &mut Cursor<'_>) -> Result<String, RecordError> {
    let n = bounded_count(cur, MIN_STRING_BYTE)?;
    let bytes = cur.take(n).ok_or_else(|| bad("truncated string"))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| bad("string is not UTF-8"))
}

fn put_voters(out: &mut Vec<u8>, record: &VotersRecord) {
    out.put_i16(record.version);
    put_uvarint(out, record.voters.len() as u64 + 1);
    for voter in &record.voters {
        out.put_i32(voter.voter_id);
        out.extend_from_slice(&voter.voter_directory_id.0);
        put_uvarint(out, voter.endpoints.len() as u64 + 1);
        for endpoint in &voter.endpoints {
            put_string(out, &endpoint.name);
            put_string(out, &endpoint.host);
            out.put_u16(endpoint.port);
            put_uvarint(out, 0);
        }
        out.put_i16(voter.min_supported_kraft_version);
        out.put_i16(voter.max_supported_kraft_version);
        put_uvarint(out, 0); // KRaftVersionFeature's tags
        put_uvarint(out, 0); // Voter's tags
    }
}

fn read_voters(cur: &mut Cursor<'_>) -> Result<VotersRecord, RecordError> {
    let version = i16_field(cur)?;
    let n = bounded_count(cur, MIN_VOTER_BYTES)?;
    let mut voters = preallocated(n);
    for _ in 0..n {
        let voter_id = i32_field(cur)?;
        let voter_directory_id = Uuid(cur.bytes16().ok_or_else(|| bad("truncated uuid"))?);
        let n_endpoints = bounded_count(cur, MIN_ENDPOINT_BYTES)?;
        let mut endpoints = preallocated(n_endpoints);
        for _ in 0..n_endpoints {
            let name = read_string(cur)?;
            let host = read_string(cur)?;
            let port = cur.u16().ok_or_else(|| bad("truncated port"))?;
            skip_tagged_fields(cur)?;
            endpoints.push(VoterEndpoint { name, host, port });
        }
        let min_supported_kraft_version = i16_field(cur)?;
        let max_supported_kraft_version = i16_field(cur)?;
        skip_tagged_fields(cur)?;
        skip_tagged_fields(cur)?;
        voters.push(VoterRecord {
            voter_id,
            voter_directory_id,
            endpoints,
            min_supported_kraft_version,
            max_supported_kraft_version,
        });
    }
    Ok(VotersRecord { version, voters })
}

fn skip_tagged_fields(cur: &mut Cursor<'_>) -> Result<(), RecordError> {
    let n = cur.uvarint().ok_or_else(|| bad("bad tagged field count"))?;
    for _ in 0..n {
        cur.uvarint().ok_or_else(|| bad("bad tag"))?;
        let size = cur.uvarint().ok_or_else(|| bad("bad tagged field size"))?;
        cur.take(size as usize)
            .ok_or_else(|| bad("truncated tagged field"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_change_matches_the_documented_bytes() {
        let record = ControlRecord::LeaderChange(LeaderChangeMessage {
            version: 0,
            leader_id: 1,
            voters: vec![1, 2, 3],
            granting_voters: vec![1, 2],
        });
        let expected = [
            0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
            0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00,
            0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
        ];
        assert_eq!(record.encode_value(), expected);
        assert_eq!(record.encode_key(), [0, 0, 0, 2]);
        assert_eq!(
            ControlRecord::decode(&record.encode_key(), &expected).unwrap(),
            record
        );
    }

    #[test]
    fn every_type_round_trips() {
        let records = [
            ControlRecord::SnapshotHeader(SnapshotHeaderRecord {
                version: 0,
                last_contained_log_timestamp: 1_700_000_000_000,
            }),
            ControlRecord::SnapshotFooter(SnapshotFooterRecord { version: 0 }),
            ControlRecord::KRaftVersion(KRaftVersionRecord {
                version: 0,
                kraft_version: 1,
            }),
            ControlRecord::Voters(VotersRecord {
                version: 0,
                voters: vec![VoterRecord {
                    voter_id: 3,
                    voter_directory_id: "b8tRS7h4TJ2Vt43Dp85v2A".parse().unwrap(),
                    endpoints: vec![VoterEndpoint {
                        name: "CONTROLLER".into(),
                        host: "localhost".into(),
                        port: 9094,
                    }],
                    min_supported_kraft_version: 0,
                    max_supported_kraft_version: 1,
                }],
            }),
        ];
        for record in records {
            let decoded = ControlRecord::decode(&record.encode_key(), &record.encode_value());
            assert_eq!(decoded.unwrap(), record);
        }
    }

    #[test]
    fn a_newer_key_version_is_read_as_version_zero() {
        let decoded = ControlRecord::decode(&[0, 1, 0, 4], &[0, 0, 0]).unwrap();
        assert_eq!(
            decoded,
            ControlRecord::SnapshotFooter(SnapshotFooterRecord { version: 0 })
        );
    }

    #[test]
    fn unknown_tagged_fields_are_skipped() {
        // SnapshotFooter v0 with one tagged field (tag 7, 2 bytes).
        let value = [0x00, 0x00, 0x01, 0x07, 0x02, 0xAA, 0xBB];
        let decoded = ControlRecord::decode(&[0, 0, 0, 4], &value).unwrap();
        assert_eq!(
            decoded,
            ControlRecord::SnapshotFooter(SnapshotFooterRecord { version: 0 })
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        assert!(ControlRecord::decode(&[0, 0], &[]).is_err());
        assert!(ControlRecord::decode(&[0, 0, 0, 3], &[0, 0, 1]).is_err());
        // A voters array claiming 2^31 elements in a few bytes.
        assert!(
            ControlRecord::decode(&[0, 0, 0, 6], &[0, 0, 0xff, 0xff, 0xff, 0xff, 0x07]).is_err()
        );
        // Trailing garbage after the tags: refused, though a tool may read past it as Kafka does.
        assert!(ControlRecord::decode(&[0, 0, 0, 4], &[0, 0, 0, 9]).is_err());
        let (footer, left) = ControlRecord::decode_prefix(&[0, 0, 0, 4], &[0, 0, 0, 9]).unwrap();
        assert_eq!(footer.record_type(), ControlRecordType::SnapshotFooter);
        assert_eq!(left, 1);
        // Element counts are bounded by each element's smallest encoding, not by one byte each.
        let voters = [0, 0, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(ControlRecord::decode(&[0, 0, 0, 6], &voters).is_err());
        assert!(ControlRecord::decode(&[0xff, 0xff, 0, 4], &[0, 0, 0]).is_err());
        let unknown = ControlRecord::decode(&[0, 0, 0, 42], &[1, 2]).unwrap();
        assert_eq!(unknown.record_type(), ControlRecordType::Unknown(42));
    }
}
