//! The lines `kraft dump-log` prints, in the exact text of Kafka's `kafka-dump-log.sh`
//! (DumpLogSegments): the batch line, the `| offset: ...` record line, control records as the
//! JSON Kafka's generated converters write (field names, order and Jackson's string escaping),
//! and data payloads as Kafka's default string decoder or cluster-metadata decoder show them.
//!
//! Owns formatting only: it never reads files and never decides what is fatal; a record it
//! cannot render comes back as a [`RenderError`] for the caller to report.

use std::fmt::Write as _;

use crate::record::{
    Compression, ControlRecord, ControlRecordType, EndTxnMarker, InspectedBatch,
    KRaftVersionRecord, LeaderChangeMessage, LegacyEntry, Record, RecordError,
    SnapshotFooterRecord, SnapshotHeaderRecord, VotersRecord,
};
use crate::uuid::Uuid;

/// What starts every record line (Kafka's `RECORD_INDENT`).
pub const RECORD_INDENT: &str = "|";
/// The frame version of Kafka's cluster metadata records, the only one its decoder accepts.
const METADATA_FRAME_VERSION: u64 = 1;
/// Attribute bit 3: the batch's timestamps are LogAppendTime, not CreateTime.
const LOG_APPEND_TIME_BIT: i16 = 0x08;
/// Bytes of a control record key Kafka reads: version (2) and type (2).
const CONTROL_KEY_BYTES: usize = 4;

/// A record the formatter cannot render, with Kafka's reason where Kafka has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{0}")]
    Record(#[from] RecordError),
    #[error("control record key of {0} bytes, at least 4 needed")]
    ShortControlKey(usize),
    #[error("negative control record key version {0}")]
    NegativeControlKeyVersion(i16),
    #[error("control record without a value")]
    NullControlValue,
}

/// What the record lines include, from the command's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordStyle {
    /// `--skip-record-metadata`: only the key and payload of data records.
    pub skip_metadata: bool,
    /// `--print-data-log` (or a decoder): print data records' key and payload.
    pub print_contents: bool,
    /// `--cluster-metadata-decoder`: payloads read as cluster metadata records.
    pub metadata_decoder: bool,
}

/// Kafka's `TimestampType` name for a batch.
pub fn timestamp_type(batch: &InspectedBatch) -> &'static str {
    if batch.header().attributes & LOG_APPEND_TIME_BIT != 0 {
        "LogAppendTime"
    } else {
        "CreateTime"
    }
}

/// The batch line (v2 batches), without its newline.
pub fn batch_line(batch: &InspectedBatch, position: u64) -> Result<String, RenderError> {
    let h = batch.header();
    let codec = h.compression()?.name();
    let delete_horizon = if h.has_delete_horizon() {
        format!("OptionalLong[{}]", h.base_timestamp)
    } else {
        "OptionalLong.empty".to_string()
    };
    Ok(format!(
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} \
         producerId: {} producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} \
         isControl: {} deleteHorizonMs: {} position: {} {}: {} size: {} magic: {} \
         compresscodec: {} crc: {} isvalid: {}",
        h.base_offset,
        h.base_offset.wrapping_add(i64::from(h.last_offset_delta)),
        h.records_count,
        h.base_sequence,
        batch.last_sequence(),
        h.producer_id,
        h.producer_epoch,
        h.partition_leader_epoch,
        h.is_transactional(),
        h.is_control(),
        delete_horizon,
        position,
        timestamp_type(batch),
        h.max_timestamp,
        batch.size_in_bytes(),
        h.magic,
        codec,
        h.crc,
        batch.is_valid(),
    ))
}

/// The line Kafka prints for a legacy (magic 0 or 1) entry, without its newline.
pub fn legacy_line(entry: &LegacyEntry, position: u64) -> Result<String, RenderError> {
    let attributes = i16::from(entry.attributes);
    let codec = Compression::from_attributes(attributes)?.name();
    let timestamp_type = if entry.magic == 0 {
        "NoTimestampType"
    } else if attributes & LOG_APPEND_TIME_BIT != 0 {
        "LogAppendTime"
    } else {
        "CreateTime"
    };
    Ok(format!(
        "offset: {} position: {} {}: {} size: {} magic: {} compresscodec: {} crc: {} isvalid: {}",
        entry.offset,
        position,
        timestamp_type,
        entry.timestamp,
        entry.size_in_bytes,
        entry.magic,
        codec,
        entry.crc,
        entry.valid
    ))
}

/// A record's absolute offset.
pub fn record_offset(batch: &InspectedBatch, record: &Record) -> i64 {
    batch
        .header()
        .base_offset
        .wrapping_add(i64::from(record.offset_delta))
}

/// A record's line, without its newline.
pub fn record_line(
    batch: &InspectedBatch,
    record: &Record,
    style: RecordStyle,
) -> Result<String, RenderError> {
    let mut line = String::new();
    if !style.skip_metadata {
        line.push_str(&record_metadata(batch, record)?);
    }
    if style.print_contents && !batch.header().is_control() {
        let mut prefix = if style.skip_metadata {
            format!("{RECORD_INDENT} ")
        } else {
            " ".to_string()
        };
        let offset = record_offset(batch, record);
        let (key, payload) = if style.metadata_decoder {
            (
                None,
                Some(metadata_payload(offset, record.value.as_deref())),
            )
        } else {
            (
                record.key.as_deref().map(string_decoder),
                record.value.as_deref().map(string_decoder),
            )
        };
        if let Some(key) = key {
            let _ = write!(line, "{prefix}key: {key}");
            prefix = " ".to_string();
        }
        if let Some(payload) = payload {
            let _ = write!(line, "{prefix}payload: {payload}");
        }
    }
    Ok(line)
}

fn record_metadata(batch: &InspectedBatch, record: &Record) -> Result<String, RenderError> {
    let h = batch.header();
    let timestamp = if h.attributes & LOG_APPEND_TIME_BIT != 0 {
        h.max_timestamp
    } else {
        h.base_timestamp.wrapping_add(record.timestamp_delta)
    };
    let header_keys: Vec<&str> = record.headers.iter().map(|h| h.key.as_str()).collect();
    let mut line = format!(
        "{RECORD_INDENT} offset: {} {}: {} keySize: {} valueSize: {} sequence: {} headerKeys: [{}]",
        record_offset(batch, record),
        timestamp_type(batch),
        timestamp,
        record.key.as_ref().map_or(-1, |k| k.len() as i64),
        record.value.as_ref().map_or(-1, |v| v.len() as i64),
        batch.record_sequence(record.offset_delta),
        header_keys.join(","),
    );
    if h.is_control() {
        line.push_str(&control_suffix(record)?);
    }
    Ok(line)
}

/// What Kafka appends to a control record's line: the decoded value, or the type's name.
fn control_suffix(record: &Record) -> Result<String, RenderError> {
    let key = record.key.as_deref().unwrap_or(&[]);
    if key.len() < CONTROL_KEY_BYTES {
        return Err(RenderError::ShortControlKey(key.len()));
    }
    let version = i16::from_be_bytes([key[0], key[1]]);
    if version < 0 {
        return Err(RenderError::NegativeControlKeyVersion(version));
    }
    let type_id = i16::from_be_bytes([key[2], key[3]]);
    let value = record
        .value
        .as_deref()
        .ok_or(RenderError::NullControlValue)?;
    let record_type = ControlRecordType::from_id(type_id);
    Ok(match record_type {
        ControlRecordType::Abort | ControlRecordType::Commit => {
            let marker = EndTxnMarker::decode(value)?;
            format!(
                " endTxnMarker: {} coordinatorEpoch: {}",
                record_type.name(),
                marker.coordinator_epoch
            )
        }
        ControlRecordType::Unknown(id) => format!(" controlType: UNKNOWN({id})"),
        // Like Kafka's readers, bytes after the message are not looked at.
        _ => match ControlRecord::decode_prefix(&key[..CONTROL_KEY_BYTES], value)?.0 {
            ControlRecord::LeaderChange(m) => format!(" LeaderChange: {}", leader_change_json(&m)),
            ControlRecord::SnapshotHeader(m) => format!(" SnapshotHeader {}", header_json(&m)),
            ControlRecord::SnapshotFooter(m) => format!(" SnapshotFooter {}", footer_json(&m)),
            ControlRecord::KRaftVersion(m) => format!(" KRaftVersion {}", kraft_version_json(&m)),
            ControlRecord::Voters(m) => format!(" KRaftVoters {}", voters_json(&m)),
            ControlRecord::Unknown { record_type, .. } => {
                format!(" controlType: UNKNOWN({record_type})")
            }
        },
    })
}

/// LeaderChangeMessage as Kafka's converter writes it at the message's own `version`: voter
/// directory ids appear from version 1, and Kafka (reading at version 0) has none to show.
pub fn leader_change_json(m: &LeaderChangeMessage) -> String {
    let voter = |id: &i32| {
        if m.version >= 1 {
            format!(
                "{{\"voterId\":{id},\"voterDirectoryId\":\"{}\"}}",
                Uuid([0; 16])
            )
        } else {
            format!("{{\"voterId\":{id}}}")
        }
    };
    let list = |ids: &[i32]| ids.iter().map(voter).collect::<Vec<_>>().join(",");
    format!(
        "{{\"version\":{},\"leaderId\":{},\"voters\":[{}],\"grantingVoters\":[{}]}}",
        m.version,
        m.leader_id,
        list(&m.voters),
        list(&m.granting_voters)
    )
}

pub fn header_json(m: &SnapshotHeaderRecord) -> String {
    format!(
        "{{\"version\":{},\"lastContainedLogTimestamp\":{}}}",
        m.version, m.last_contained_log_timestamp
    )
}

pub fn footer_json(m: &SnapshotFooterRecord) -> String {
    format!("{{\"version\":{}}}", m.version)
}

pub fn kraft_version_json(m: &KRaftVersionRecord) -> String {
    format!(
        "{{\"version\":{},\"kRaftVersion\":{}}}",
        m.version, m.kraft_version
    )
}

pub fn voters_json(m: &VotersRecord) -> String {
    let voters: Vec<String> = m
        .voters
        .iter()
        .map(|v| {
            let endpoints: Vec<String> = v
                .endpoints
                .iter()
                .map(|e| {
                    format!(
                        "{{\"name\":{},\"host\":{},\"port\":{}}}",
                        json_string(&e.name),
                        json_string(&e.host),
                        e.port
                    )
                })
                .collect();
            format!(
                "{{\"voterId\":{},\"voterDirectoryId\":\"{}\",\"endpoints\":[{}],\
                 \"kRaftVersionFeature\":{{\"minSupportedVersion\":{},\"maxSupportedVersion\":{}}}}}",
                v.voter_id,
                v.voter_directory_id,
                endpoints.join(","),
                v.min_supported_kraft_version,
                v.max_supported_kraft_version
            )
        })
        .collect();
    format!(
        "{{\"version\":{},\"voters\":[{}]}}",
        m.version,
        voters.join(",")
    )
}

/// A JSON string literal escaped as Jackson writes it: `"` and `\`, the short escapes for
/// backspace, tab, newline, form feed and carriage return, `\u00XX` (upper-case hex) for the
/// other control characters; everything else, non-ASCII included, as is.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Kafka's default `StringDecoder`: the bytes as UTF-8, malformed sequences replaced by U+FFFD.
pub fn string_decoder(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The payload Kafka's `--cluster-metadata-decoder` prints for a data record. kraft's records
/// are the application's, not Kafka's metadata records, so every record is reported with
/// Kafka's "Error at ..., skipping." text: the frame checks give Kafka's own reasons, and a
/// well-framed record says that kraft does not decode metadata record schemas.
pub fn metadata_payload(offset: i64, value: Option<&[u8]>) -> String {
    // Kafka's reader fails on a null value as on an empty one: no frame version to read.
    let reason = metadata_frame_problem(value.unwrap_or_default());
    format!("Error at {offset}, skipping. {reason}")
}

fn metadata_frame_problem(value: &[u8]) -> String {
    let mut rest = value;
    let mut field = |entity: &str| -> Result<u64, String> {
        let (v, used) = read_uvarint(rest).ok_or(format!("Error while reading {entity}"))?;
        rest = &rest[used..];
        if v > i16::MAX as u64 {
            return Err(format!("Value for {entity} was too large."));
        }
        Ok(v)
    };
    let frame = match field("frame version") {
        Ok(frame) => frame,
        Err(reason) => return reason,
    };
    if frame == 0 {
        return "Could not deserialize metadata record with frame version 0. Note that upgrades \
                from the preview release of KRaft in 2.8 to newer versions are not supported."
            .to_string();
    }
    if frame != METADATA_FRAME_VERSION {
        return format!(
            "Could not deserialize metadata record due to unknown frame version \
             {frame}(only frame version {METADATA_FRAME_VERSION} is supported)"
        );
    }
    let record_type = match field("type") {
        Ok(t) => t,
        Err(reason) => return reason,
    };
    match field("version") {
        Ok(version) => format!(
            "kraft does not decode cluster metadata records (type {record_type}, version {version})"
        ),
        Err(reason) => reason,
    }
}

/// An unsigned varint of at most 5 bytes (Kafka's `readUnsignedVarint`) and its length.
fn read_uvarint(buf: &[u8]) -> Option<(u64, usize)> {
    /// Kafka reads 32-bit unsigned varints: 5 bytes of 7 bits.
    const MAX_UVARINT_BYTES: usize = 5;
    let mut value = 0u64;
    for (i, byte) in buf.iter().take(MAX_UVARINT_BYTES).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_like_jackson() {
        assert_eq!(json_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json_string("\n\t\u{1}é/"), "\"\\n\\t\\u0001é/\"");
    }

    #[test]
    fn metadata_frames_are_judged_like_kafka() {
        assert_eq!(
            metadata_payload(3, Some(&[])),
            "Error at 3, skipping. Error while reading frame version"
        );
        assert_eq!(
            metadata_payload(4, Some(&[2, 0])),
            "Error at 4, skipping. Could not deserialize metadata record due to unknown frame \
             version 2(only frame version 1 is supported)"
        );
        assert!(metadata_payload(5, Some(&[0])).contains("frame version 0."));
        assert!(metadata_payload(6, Some(&[1, 2, 0])).ends_with("(type 2, version 0)"));
        assert!(metadata_payload(7, Some(&[1, 0xff, 0xff, 0x03])).ends_with("type was too large."));
    }

    #[test]
    fn a_control_value_with_bytes_after_the_message_renders_as_kafka_reads_it() {
        use crate::record::{BatchBuilder, BatchKind};
        use crate::types::{Epoch, Offset};
        let mut b = BatchBuilder::new(BatchKind::Control, Offset(3), Epoch(1));
        // A SnapshotFooter value (version 0, no tags) followed by one stray byte.
        let footer = ControlRecord::Unknown {
            record_type: 4,
            value: bytes::Bytes::from_static(&[0, 0, 0, 9]),
        };
        b.append_control(10, &footer).unwrap();
        let batch = InspectedBatch::new(b.build().unwrap()).unwrap();
        let record = batch.records().next().unwrap().unwrap();
        let style = RecordStyle {
            skip_metadata: false,
            print_contents: false,
            metadata_decoder: false,
        };
        assert_eq!(
            record_line(&batch, &record, style).unwrap(),
            "| offset: 3 CreateTime: 10 keySize: 4 valueSize: 4 sequence: -1 headerKeys: [] \
             SnapshotFooter {\"version\":0}"
        );
    }

    #[test]
    fn leader_change_shows_directory_ids_only_from_version_1() {
        let mut m = LeaderChangeMessage {
            version: 0,
            leader_id: 1,
            voters: vec![1, 2],
            granting_voters: vec![1],
        };
        assert_eq!(
            leader_change_json(&m),
            r#"{"version":0,"leaderId":1,"voters":[{"voterId":1},{"voterId":2}],"grantingVoters":[{"voterId":1}]}"#
        );
        m.version = 1;
        assert!(
            leader_change_json(&m)
                .contains(r#"{"voterId":2,"voterDirectoryId":"AAAAAAAAAAAAAAAAAAAAAA"}"#)
        );
    }
}
