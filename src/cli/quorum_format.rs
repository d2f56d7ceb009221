//! The text of `kraft quorum describe`, exactly as Kafka's `kafka-metadata-quorum.sh` prints
//! it, so that scripts written against Kafka's output keep working: the `--status` summary and
//! the `--replication` table (plain or `--human-readable`).
//!
//! Pure functions of a [`QuorumInfo`], the cluster id and "now": they never read a socket or
//! the clock, so golden tests pin their output.

use super::quorum_info::{QuorumInfo, ReplicaInfo};
use crate::uuid::Uuid;

/// Why the description cannot be printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the quorum has no leader (leader id {0} is not among the voters)")]
    NoLeader(i32),
    /// Kafka refuses `--human-readable` times in the future or not after the epoch.
    #[error(
        "Error while computing relative time, possible drift in system clock. Current timestamp is {now_ms}, {what} timestamp is {timestamp_ms}"
    )]
    ClockDrift {
        now_ms: i64,
        what: &'static str,
        timestamp_ms: i64,
    },
}

/// The `--status` summary (with its final newline).
pub fn status(cluster_id: &str, quorum: &QuorumInfo) -> Result<String, FormatError> {
    let leader = quorum
        .leader()
        .ok_or(FormatError::NoLeader(quorum.leader_id))?;
    let (lag, lag_time_ms) = max_follower_lag(quorum, leader);
    let lines = [
        ("ClusterId:", cluster_id.to_string()),
        ("LeaderId:", quorum.leader_id.to_string()),
        ("LeaderEpoch:", quorum.leader_epoch.to_string()),
        ("HighWatermark:", quorum.high_watermark.to_string()),
        ("MaxFollowerLag:", lag.to_string()),
        ("MaxFollowerLagTimeMs:", lag_time_ms.to_string()),
        ("CurrentVoters:", replica_list(quorum, &quorum.voters)),
        ("CurrentObservers:", replica_list(quorum, &quorum.observers)),
    ];
    // Kafka pads every label to 24 columns.
    Ok(lines
        .iter()
        .map(|(label, value)| format!("{label:<24}{value}\n"))
        .collect())
}

/// The voter furthest behind (the first with the lowest log end offset, which may be the
/// leader), its lag in offsets, and how long ago it was last caught up relative to the leader:
/// 0 when it is the leader itself, -1 when either time is unknown.
fn max_follower_lag(quorum: &QuorumInfo, leader: &ReplicaInfo) -> (i64, i64) {
    let slowest = quorum
        .voters
        .iter()
        .reduce(|a, b| {
            if a.log_end_offset <= b.log_end_offset {
                a
            } else {
                b
            }
        })
        .expect("the leader is a voter");
    let lag = leader.log_end_offset - slowest.log_end_offset;
    let time = if std::ptr::eq(slowest, leader) {
        0
    } else {
        match (leader.last_caught_up_ms, slowest.last_caught_up_ms) {
            (Some(l), Some(s)) => l - s,
            _ => -1,
        }
    };
    (lag, time)
}

/// `[{"id": 1, "directoryId": "…", "endpoints": ["C://h:p"]}, …]`.
fn replica_list(quorum: &QuorumInfo, replicas: &[ReplicaInfo]) -> String {
    let items: Vec<String> = replicas
        .iter()
        .map(|r| {
            let directory = match r.directory_id {
                Uuid::ZERO => "null".to_string(),
                id => format!("\"{id}\""),
            };
            let mut item = format!("{{\"id\": {}, \"directoryId\": {directory}", r.id);
            let endpoints = quorum
                .endpoints
                .get(&r.id)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if !endpoints.is_empty() {
                let quoted: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
                item.push_str(&format!(", \"endpoints\": [{}]", quoted.join(", ")));
            }
            item.push('}');
            item
        })
        .collect();
    format!("[{}]", items.join(", "))
}

const REPLICATION_HEADERS: [&str; 7] = [
    "NodeId",
    "DirectoryId",
    "LogEndOffset",
    "Lag",
    "LastFetchTimestamp",
    "LastCaughtUpTimestamp",
    "Status",
];

/// The `--replication` table: the leader, the other voters, then the observers. With
/// `human_readable`, times are "N ms ago" relative to `now_ms`.
pub fn replication(
    quorum: &QuorumInfo,
    human_readable: bool,
    now_ms: i64,
) -> Result<String, FormatError> {
    let leader = quorum
        .leader()
        .ok_or(FormatError::NoLeader(quorum.leader_id))?;
    let followers = quorum.voters.iter().filter(|v| v.id != quorum.leader_id);
    let groups = [
        (vec![leader], "Leader"),
        (followers.collect(), "Follower"),
        (quorum.observers.iter().collect(), "Observer"),
    ];
    let mut rows = Vec::new();
    for (replicas, status) in groups {
        for r in replicas {
            rows.push(row(leader, r, status, human_readable, now_ms)?);
        }
    }
    Ok(table(&REPLICATION_HEADERS.map(String::from), &rows))
}

fn row(
    leader: &ReplicaInfo,
    r: &ReplicaInfo,
    status: &str,
    human_readable: bool,
    now_ms: i64,
) -> Result<[String; 7], FormatError> {
    let time = |ms: Option<i64>, what: &'static str| match (ms, human_readable) {
        (None, _) => Ok("-1".to_string()),
        (Some(ms), false) => Ok(ms.to_string()),
        (Some(ms), true) => relative_ms(ms, what, now_ms).map(|ago| format!("{ago} ms ago")),
    };
    Ok([
        r.id.to_string(),
        r.directory_id.to_string(),
        r.log_end_offset.to_string(),
        (leader.log_end_offset - r.log_end_offset).to_string(),
        time(r.last_fetch_ms, "last fetch")?,
        time(r.last_caught_up_ms, "last caught up")?,
        status.to_string(),
    ])
}

/// How long before `now_ms` a timestamp was; Kafka refuses one not after the epoch or in the
/// future.
fn relative_ms(timestamp_ms: i64, what: &'static str, now_ms: i64) -> Result<i64, FormatError> {
    match timestamp_ms > 0 && timestamp_ms <= now_ms {
        true => Ok(now_ms - timestamp_ms),
        false => Err(FormatError::ClockDrift {
            now_ms,
            what,
            timestamp_ms,
        }),
    }
}

/// Kafka's table layout: every cell padded to its column's width, each followed by a tab (the
/// last one too).
fn table<const N: usize>(headers: &[String; N], rows: &[[String; N]]) -> String {
    let mut widths = headers.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    std::iter::once(headers)
        .chain(rows)
        .map(|row| {
            let cells: String = row
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}\t"))
                .collect();
            cells + "\n"
        })
        .collect()
}
