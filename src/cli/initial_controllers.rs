//! The value of `kraft storage format --initial-controllers`: `id@host:port:directoryId,...`,
//! the voters a new dynamic (kraft.version 1) quorum starts with, parsed as Kafka's
//! `kafka-storage format` reads it (an IPv6 host in brackets, empty entries skipped).
//!
//! Owns the text form and its checks only; it must never touch the disk or decide what a
//! node does with the list (that is `storage format`'s job).

use std::collections::BTreeSet;
use std::fmt;

use crate::record::{VoterEndpoint, VoterRecord, VotersRecord};
use crate::uuid::Uuid;

/// Kafka reserves the directory ids whose first 8 bytes are zero and last 8 bytes below 100
/// (unassigned, lost, migrating, ...); a voter's directory id must be a real one.
const RESERVED_DIRECTORY_IDS: u64 = 100;

/// The kraft.version range a freshly formatted voter supports: static voters (0) and voters in
/// the log (1), as Kafka's format records it.
const SUPPORTED_KRAFT_VERSIONS: (i16, i16) = (0, 1);

/// One entry of `--initial-controllers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialController {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    pub directory_id: Uuid,
}

/// Why an entry (quoted as given) or the whole list is not a voter list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitialControllersError {
    #[error("no voters given")]
    Empty,
    #[error("'{entry}': no '@' between the node id and the host")]
    NoAt { entry: String },
    #[error("'{entry}': '{id}' is not a node id (a non-negative integer)")]
    BadNodeId { entry: String, id: String },
    #[error("'{entry}': no host after the node id")]
    NoHost { entry: String },
    #[error("'{entry}': the host starts with '[' but has no closing ']'")]
    UnclosedBracket { entry: String },
    #[error("'{entry}': no ':' after the host")]
    NoPortColon { entry: String },
    #[error("'{entry}': no ':' between the port and the directory id")]
    NoDirectoryColon { entry: String },
    #[error("'{entry}': '{port}' is not a port (0-65535)")]
    BadPort { entry: String, port: String },
    #[error(
        "'{entry}': '{id}' is not a directory id (22 base64url characters, e.g. from `kraft storage random-uuid`)"
    )]
    BadDirectoryId { entry: String, id: String },
    #[error("'{entry}': directory id '{id}' is one of the ids Kafka reserves")]
    ReservedDirectoryId { entry: String, id: String },
    #[error("node id {0} is given more than once")]
    DuplicateNodeId(i32),
}

impl InitialController {
    /// This voter as a Voters record entry, its one endpoint on `listener`.
    pub fn to_voter_record(&self, listener: &str) -> VoterRecord {
        VoterRecord {
            voter_id: self.node_id,
            voter_directory_id: self.directory_id,
            endpoints: vec![VoterEndpoint {
                name: listener.to_string(),
                host: self.host.clone(),
                port: self.port,
            }],
            min_supported_kraft_version: SUPPORTED_KRAFT_VERSIONS.0,
            max_supported_kraft_version: SUPPORTED_KRAFT_VERSIONS.1,
        }
    }
}

impl fmt::Display for InitialController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "{}@[{}]:{}", self.node_id, self.host, self.port)?,
            false => write!(f, "{}@{}:{}", self.node_id, self.host, self.port)?,
        }
        write!(f, ":{}", self.directory_id)
    }
}

/// The Voters record of `controllers`, each with its endpoint on `listener`, in node id order.
pub fn voters_record(controllers: &[InitialController], listener: &str) -> VotersRecord {
    let mut voters: Vec<VoterRecord> = controllers
        .iter()
        .map(|c| c.to_voter_record(listener))
        .collect();
    voters.sort_by_key(|v| v.voter_id);
    VotersRecord { version: 0, voters }
}

/// Parses the whole comma-separated list: at least one entry, no node id twice.
pub fn parse(text: &str) -> Result<Vec<InitialController>, InitialControllersError> {
    let controllers = text
        .trim()
        .split(',')
        .filter(|entry| !entry.is_empty())
        .map(parse_entry)
        .collect::<Result<Vec<_>, _>>()?;
    if controllers.is_empty() {
        return Err(InitialControllersError::Empty);
    }
    let mut seen = BTreeSet::new();
    if let Some(dup) = controllers.iter().find(|c| !seen.insert(c.node_id)) {
        return Err(InitialControllersError::DuplicateNodeId(dup.node_id));
    }
    Ok(controllers)
}

/// Parses one `id@host:port:directoryId`.
pub fn parse_entry(entry: &str) -> Result<InitialController, InitialControllersError> {
    use InitialControllersError as E;
    let entry = entry.trim();
    let owned = || entry.to_string();
    let (id, rest) = entry
        .split_once('@')
        .ok_or_else(|| E::NoAt { entry: owned() })?;
    let node_id = id
        .parse::<i32>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| E::BadNodeId {
            entry: owned(),
            id: id.to_string(),
        })?;
    if rest.is_empty() {
        return Err(E::NoHost { entry: owned() });
    }
    let (host, rest) = split_host(entry, rest)?;
    if host.is_empty() {
        return Err(E::NoHost { entry: owned() });
    }
    let (port, directory) = rest
        .split_once(':')
        .ok_or_else(|| E::NoDirectoryColon { entry: owned() })?;
    let port = port.parse::<u16>().map_err(|_| E::BadPort {
        entry: owned(),
        port: port.to_string(),
    })?;
    let directory_id = parse_directory_id(entry, directory)?;
    Ok(InitialController {
        node_id,
        host: host.to_string(),
        port,
        directory_id,
    })
}

/// Splits `host:rest` or `[v6 host]:rest` (of `entry`) into the host and what follows its ':'.
fn split_host<'a>(
    entry: &str,
    text: &'a str,
) -> Result<(&'a str, &'a str), InitialControllersError> {
    use InitialControllersError as E;
    let no_colon = || E::NoPortColon {
        entry: entry.to_string(),
    };
    match text.strip_prefix('[') {
        Some(bracketed) => {
            let (host, rest) = bracketed
                .split_once(']')
                .ok_or_else(|| E::UnclosedBracket {
                    entry: entry.to_string(),
                })?;
            Ok((host, rest.strip_prefix(':').ok_or_else(no_colon)?))
        }
        None => text.split_once(':').ok_or_else(no_colon),
    }
}

fn parse_directory_id(entry: &str, text: &str) -> Result<Uuid, InitialControllersError> {
    let id: Uuid = text
        .parse()
        .map_err(|_| InitialControllersError::BadDirectoryId {
            entry: entry.to_string(),
            id: text.to_string(),
        })?;
    let (high, low) = id.0.split_at(8);
    let low = u64::from_be_bytes(low.try_into().expect("8 bytes"));
    if high.iter().all(|b| *b == 0) && low < RESERVED_DIRECTORY_IDS {
        return Err(InitialControllersError::ReservedDirectoryId {
            entry: entry.to_string(),
            id: text.to_string(),
        });
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "JEXY6aqzQY-32P5TStzaFg";

    #[test]
    fn parses_kafkas_example_list() {
        let list = parse(&format!(
            "0@example.com:8082:{DIR},1@example.com:8083:MvDxzVmcRsaTz33bUuRU6A,2@[::1]:8084:07R5amHmR32VDA6jHkGbTA"
        ))
        .unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].node_id, 0);
        assert_eq!(list[0].host, "example.com");
        assert_eq!(list[0].port, 8082);
        assert_eq!(list[0].directory_id.to_string(), DIR);
        assert_eq!(list[2].host, "::1");
        assert_eq!(list[2].to_string(), "2@[::1]:8084:07R5amHmR32VDA6jHkGbTA");
        assert_eq!(list[0].to_string(), format!("0@example.com:8082:{DIR}"));
    }

    #[test]
    fn empty_entries_are_skipped_but_an_empty_list_is_refused() {
        assert_eq!(parse(&format!(",1@h:1:{DIR},")).unwrap().len(), 1);
        assert_eq!(parse(" , ").unwrap_err(), InitialControllersError::Empty);
        assert_eq!(parse("").unwrap_err(), InitialControllersError::Empty);
    }

    #[test]
    fn each_mistake_is_named() {
        use InitialControllersError as E;
        type Expectation = fn(&E) -> bool;
        let cases: Vec<(String, Expectation)> = vec![
            (format!("1h:1:{DIR}"), |e| matches!(e, E::NoAt { .. })),
            (format!("@h:1:{DIR}"), |e| matches!(e, E::BadNodeId { .. })),
            (format!("x@h:1:{DIR}"), |e| matches!(e, E::BadNodeId { .. })),
            (format!("-1@h:1:{DIR}"), |e| {
                matches!(e, E::BadNodeId { .. })
            }),
            ("1@".to_string(), |e| matches!(e, E::NoHost { .. })),
            (format!("1@:1:{DIR}"), |e| matches!(e, E::NoHost { .. })),
            (format!("1@[::1:1:{DIR}"), |e| {
                matches!(e, E::UnclosedBracket { .. })
            }),
            (format!("1@[::1]1:{DIR}"), |e| {
                matches!(e, E::NoPortColon { .. })
            }),
            ("1@host".to_string(), |e| matches!(e, E::NoPortColon { .. })),
            ("1@host:9093".to_string(), |e| {
                matches!(e, E::NoDirectoryColon { .. })
            }),
            (format!("1@h:70000:{DIR}"), |e| {
                matches!(e, E::BadPort { .. })
            }),
            (format!("1@h:-1:{DIR}"), |e| matches!(e, E::BadPort { .. })),
            ("1@h:1:nope".to_string(), |e| {
                matches!(e, E::BadDirectoryId { .. })
            }),
            ("1@h:1:".to_string(), |e| {
                matches!(e, E::BadDirectoryId { .. })
            }),
            ("1@h:1:AAAAAAAAAAAAAAAAAAAAAA".to_string(), |e| {
                matches!(e, E::ReservedDirectoryId { .. })
            }),
            (format!("1@h:1:{DIR},1@g:2:{DIR}"), |e| {
                matches!(e, E::DuplicateNodeId(1))
            }),
        ];
        for (text, expected) in cases {
            let err = parse(&text).unwrap_err();
            assert!(expected(&err), "{text}: {err:?}");
        }
    }

    #[test]
    fn messages_quote_the_bad_entry() {
        let err = parse(&format!("1@h:1:{DIR},2@h:x:{DIR}")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("'2@h:x:{DIR}': 'x' is not a port (0-65535)")
        );
    }

    #[test]
    fn the_voters_record_lists_every_controller_on_the_listener_in_id_order() {
        let list = parse(&format!("2@b:2:MvDxzVmcRsaTz33bUuRU6A,1@a:1:{DIR}")).unwrap();
        let record = voters_record(&list, "CONTROLLER");
        let ids: Vec<i32> = record.voters.iter().map(|v| v.voter_id).collect();
        assert_eq!(ids, [1, 2]);
        let first = &record.voters[0];
        assert_eq!(first.voter_directory_id.to_string(), DIR);
        assert_eq!(
            first.endpoints,
            [VoterEndpoint {
                name: "CONTROLLER".into(),
                host: "a".into(),
                port: 1
            }]
        );
        assert_eq!(
            (
                first.min_supported_kraft_version,
                first.max_supported_kraft_version
            ),
            (0, 1)
        );
    }
}
