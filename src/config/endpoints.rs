//! Parsing of the address lists in a node's configuration: `listeners` (`NAME://host:port`),
//! `controller.quorum.voters` (`id@host:port`) and `controller.quorum.bootstrap.servers`
//! (`host:port`). Each failure says which entry is wrong and what was expected; nothing here
//! resolves names or opens sockets.

use std::collections::BTreeMap;
use std::fmt;

use crate::types::NodeId;

/// A host and port. The host may be empty in a listener (all interfaces).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A named listener, e.g. `PLAINTEXT://localhost:9092`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub endpoint: Endpoint,
}

/// The static voter set: voter id → endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoterSet(pub BTreeMap<NodeId, Endpoint>);

impl VoterSet {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.0.contains_key(&id)
    }

    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.0.keys().copied()
    }
}

/// Splits a comma-separated list, trimming entries and dropping empty ones.
pub fn split_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Parses `host:port` (IPv6 hosts in brackets). `allow_empty_host` is for listeners.
pub fn parse_host_port(text: &str, allow_empty_host: bool) -> Result<Endpoint, String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 host is missing its ']'")?;
        let port = after.strip_prefix(':').ok_or("no port after the host")?;
        (host, port)
    } else {
        text.rsplit_once(':')
            .ok_or("no port (expected host:port)")?
    };
    if host.is_empty() && !allow_empty_host {
        return Err("empty host".into());
    }
    if host.contains(|c: char| c.is_whitespace() || c == '@' || c == '/') {
        return Err(format!("'{host}' is not a host name"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("port '{port}' is not a number in 0..=65535"))?;
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
}

/// Parses `listeners`: `NAME://host:port,...` with unique names.
pub fn parse_listeners(value: &str) -> Result<Vec<Listener>, String> {
    let mut out: Vec<Listener> = Vec::new();
    for entry in split_list(value) {
        let (name, address) = entry
            .split_once("://")
            .ok_or_else(|| format!("entry '{entry}' is not NAME://host:port"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("entry '{entry}' has no valid listener name"));
        }
        let endpoint =
            parse_host_port(address, true).map_err(|e| format!("entry '{entry}': {e}"))?;
        let name = name.to_ascii_uppercase();
        if out.iter().any(|l| l.name == name) {
            return Err(format!("listener name {name} appears twice"));
        }
        out.push(Listener { name, endpoint });
    }
    if out.is_empty() {
        return Err("no listeners".into());
    }
    Ok(out)
}

/// Parses `controller.quorum.voters`: `id@host:port,...` with unique ids >= 0.
pub fn parse_voters(value: &str) -> Result<VoterSet, String> {
    let mut voters = BTreeMap::new();
    for entry in split_list(value) {
        let (id, address) = entry
            .split_once('@')
            .ok_or_else(|| format!("entry '{entry}' is not {{id}}@{{host}}:{{port}}"))?;
        let id =
            id.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                format!("entry '{entry}': voter id '{id}' is not an integer >= 0")
            })?;
        let endpoint =
            parse_host_port(address, false).map_err(|e| format!("entry '{entry}': {e}"))?;
        if voters.insert(NodeId(id), endpoint).is_some() {
            return Err(format!("voter id {id} appears twice"));
        }
    }
    Ok(VoterSet(voters))
}

/// Parses `controller.quorum.bootstrap.servers`: `host:port,...`.
pub fn parse_bootstrap_servers(value: &str) -> Result<Vec<Endpoint>, String> {
    split_list(value)
        .into_iter()
        .map(|entry| parse_host_port(entry, false).map_err(|e| format!("entry '{entry}': {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_and_fail_precisely() {
        let v = parse_voters("1@localhost:9092, 2@[::1]:9093,3@10.0.0.3:9094").unwrap();
        assert_eq!(v.0.len(), 3);
        assert_eq!(v.0[&NodeId(2)].to_string(), "[::1]:9093");
        let cases = [
            ("1@localhost", "no port"),
            ("1localhost:9092", "is not {id}@{host}:{port}"),
            ("x@localhost:9092", "voter id 'x'"),
            ("-1@localhost:9092", "voter id '-1'"),
            ("1@localhost:9092,1@localhost:9093", "appears twice"),
            ("1@:9092", "empty host"),
            ("1@localhost:99999", "port '99999'"),
        ];
        for (text, needle) in cases {
            let err = parse_voters(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn listeners_parse() {
        let l = parse_listeners("PLAINTEXT://localhost:9092,controller://:0").unwrap();
        assert_eq!(l[1].name, "CONTROLLER");
        assert_eq!(
            l[1].endpoint,
            Endpoint {
                host: String::new(),
                port: 0
            }
        );
        assert!(parse_listeners("localhost:9092").is_err());
        assert!(
            parse_listeners("A://h:1,a://h:2")
                .unwrap_err()
                .contains("twice")
        );
        assert!(parse_listeners("").is_err());
    }
}
