//! The limits on the node's inbound connections: how many, how many from one address, and how
//! long one may idle or take to say who it is. Plain values read from the configuration; the
//! listener and the connection actors enforce them.
//!
//! Owns the rule that keeps descriptors for the node's own files: the connection cap never
//! exceeds the process's descriptor limit minus [`RESERVED_DESCRIPTORS`].

use std::time::Duration;

/// Descriptors kept out of the connection cap: the log store's segments, indexes and state
/// files, snapshot files, outbound peer connections, the listener and stdio. Running out of
/// descriptors must never look like a disk failure.
pub const RESERVED_DESCRIPTORS: u64 = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `max.connections`, already lowered to what the descriptor limit allows.
    pub max_connections: usize,
    /// `max.connections.per.ip`.
    pub max_connections_per_ip: usize,
    /// `connections.max.idle.ms`: a connection with no traffic for this long is closed.
    pub idle: Duration,
    /// `kraft.handshake.timeout.ms`: a connection that has not completed its handshake by then
    /// is closed.
    pub handshake_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        use super::keys::defaults as d;
        ConnectionLimits {
            max_connections: within_descriptors(d::MAX_CONNECTIONS as u64),
            max_connections_per_ip: d::MAX_CONNECTIONS_PER_IP as usize,
            idle: Duration::from_millis(d::CONNECTIONS_MAX_IDLE_MS as u64),
            handshake_timeout: Duration::from_millis(d::HANDSHAKE_TIMEOUT_MS as u64),
        }
    }
}

/// `wanted` connections, or fewer if the process may not open that many descriptors and keep
/// [`RESERVED_DESCRIPTORS`] for its files (at least one connection).
pub fn within_descriptors(wanted: u64) -> usize {
    let cap = descriptor_limit().map_or(u64::MAX, |n| n.saturating_sub(RESERVED_DESCRIPTORS));
    wanted.min(cap).max(1).min(usize::MAX as u64) as usize
}

/// The soft `RLIMIT_NOFILE`, where the platform has one.
fn descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}
