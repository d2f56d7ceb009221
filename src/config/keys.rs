//! Every configuration key kraft reads, with Kafka's names and defaults (docs/protocol.md §18).
//! Keys are constants so that a typo is a compile error, and the list of known keys drives the
//! "unknown key" warning.

pub const NODE_ID: &str = "node.id";
/// The cluster id a node formats its first empty log dir with (the test server's convention).
pub const CLUSTER_ID: &str = "cluster.id";
/// The node's rack: consumers with a matching `client.rack` read from it (KIP-392).
pub const BROKER_RACK: &str = "broker.rack";
pub const PROCESS_ROLES: &str = "process.roles";
pub const LISTENERS: &str = "listeners";
pub const CONTROLLER_LISTENER_NAMES: &str = "controller.listener.names";
pub const QUORUM_VOTERS: &str = "controller.quorum.voters";
pub const QUORUM_BOOTSTRAP_SERVERS: &str = "controller.quorum.bootstrap.servers";
pub const LOG_DIRS: &str = "log.dirs";
pub const LOG_DIR: &str = "log.dir";
pub const METADATA_LOG_DIR: &str = "metadata.log.dir";

pub const QUORUM_ELECTION_TIMEOUT_MS: &str = "controller.quorum.election.timeout.ms";
pub const QUORUM_FETCH_TIMEOUT_MS: &str = "controller.quorum.fetch.timeout.ms";
pub const QUORUM_ELECTION_BACKOFF_MAX_MS: &str = "controller.quorum.election.backoff.max.ms";
pub const QUORUM_APPEND_LINGER_MS: &str = "controller.quorum.append.linger.ms";
pub const QUORUM_REQUEST_TIMEOUT_MS: &str = "controller.quorum.request.timeout.ms";
pub const QUORUM_RETRY_BACKOFF_MS: &str = "controller.quorum.retry.backoff.ms";
pub const QUORUM_AUTO_JOIN_ENABLE: &str = "controller.quorum.auto.join.enable";

pub const METADATA_LOG_SEGMENT_BYTES: &str = "metadata.log.segment.bytes";
pub const METADATA_LOG_SEGMENT_MIN_BYTES: &str = "metadata.log.segment.min.bytes";
pub const METADATA_LOG_SEGMENT_MS: &str = "metadata.log.segment.ms";
pub const METADATA_MAX_RECORD_BYTES_BETWEEN_SNAPSHOTS: &str =
    "metadata.log.max.record.bytes.between.snapshots";
pub const METADATA_MAX_SNAPSHOT_INTERVAL_MS: &str = "metadata.log.max.snapshot.interval.ms";
pub const METADATA_MAX_RETENTION_BYTES: &str = "metadata.max.retention.bytes";
pub const METADATA_MAX_RETENTION_MS: &str = "metadata.max.retention.ms";

pub const MAX_CONNECTIONS: &str = "max.connections";
pub const MAX_CONNECTIONS_PER_IP: &str = "max.connections.per.ip";
pub const CONNECTIONS_MAX_IDLE_MS: &str = "connections.max.idle.ms";
/// kraft's own (Kafka has none): how long a new connection may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT_MS: &str = "kraft.handshake.timeout.ms";

/// kraft's own (Kafka exports metrics over JMX): where to serve the node's metrics in the
/// Prometheus text format, `http://host:port`; unset, there is no endpoint.
pub const METRICS_LISTENER: &str = "metrics.listener";

pub const SECURITY_PROTOCOL_MAP: &str = "listener.security.protocol.map";
pub const SSL_KEYSTORE_TYPE: &str = "ssl.keystore.type";
pub const SSL_KEYSTORE_LOCATION: &str = "ssl.keystore.location";
pub const SSL_KEYSTORE_CERTIFICATE_CHAIN: &str = "ssl.keystore.certificate.chain";
pub const SSL_KEYSTORE_KEY: &str = "ssl.keystore.key";
pub const SSL_KEYSTORE_PASSWORD: &str = "ssl.keystore.password";
pub const SSL_KEY_PASSWORD: &str = "ssl.key.password";
pub const SSL_TRUSTSTORE_TYPE: &str = "ssl.truststore.type";
pub const SSL_TRUSTSTORE_LOCATION: &str = "ssl.truststore.location";
pub const SSL_TRUSTSTORE_CERTIFICATES: &str = "ssl.truststore.certificates";
pub const SSL_TRUSTSTORE_PASSWORD: &str = "ssl.truststore.password";
pub const SSL_CLIENT_AUTH: &str = "ssl.client.auth";
pub const SSL_ENDPOINT_IDENTIFICATION_ALGORITHM: &str = "ssl.endpoint.identification.algorithm";

/// The `ssl.*` keys kraft reads. Each is also read in Kafka's per-listener form for the quorum
/// listener, `listener.name.<listener, lowercase>.<key>`, which wins over the plain key.
pub const SSL_KEYS: &[&str] = &[
    SSL_KEYSTORE_TYPE,
    SSL_KEYSTORE_LOCATION,
    SSL_KEYSTORE_CERTIFICATE_CHAIN,
    SSL_KEYSTORE_KEY,
    SSL_KEYSTORE_PASSWORD,
    SSL_KEY_PASSWORD,
    SSL_TRUSTSTORE_TYPE,
    SSL_TRUSTSTORE_LOCATION,
    SSL_TRUSTSTORE_CERTIFICATES,
    SSL_TRUSTSTORE_PASSWORD,
    SSL_CLIENT_AUTH,
    SSL_ENDPOINT_IDENTIFICATION_ALGORITHM,
];

/// What starts every listener-scoped key.
pub const LISTENER_NAME_PREFIX: &str = "listener.name.";

/// The prefix of `listener`'s scoped keys, as Kafka spells it: `listener.name.controller.` for
/// the listener `CONTROLLER`.
pub fn listener_prefix(listener: &str) -> String {
    format!("{LISTENER_NAME_PREFIX}{}.", listener.to_ascii_lowercase())
}

/// The listener (as written) and the `ssl.*` key of a listener-scoped SSL key, if `key` is one.
pub fn split_listener_ssl_key(key: &str) -> Option<(&str, &'static str)> {
    let rest = key.strip_prefix(LISTENER_NAME_PREFIX)?;
    SSL_KEYS.iter().find_map(|ssl| {
        let listener = rest.strip_suffix(ssl)?.strip_suffix('.')?;
        (!listener.is_empty()).then_some((listener, *ssl))
    })
}

/// Names from earlier Kafka versions, still read, with the key that replaced them.
pub const DEPRECATED_ALIASES: &[(&str, &str)] =
    &[("broker.id", NODE_ID), ("quorum.voters", QUORUM_VOTERS)];

/// Keys of ZooKeeper mode: accepted so that old files load, and ignored.
pub const IGNORED: &[&str] = &["zookeeper.connect"];

/// Defaults, as Kafka ships them.
pub mod defaults {
    pub const LOG_DIR: &str = "/tmp/kafka-logs";
    pub const QUORUM_ELECTION_TIMEOUT_MS: i64 = 1000;
    pub const QUORUM_FETCH_TIMEOUT_MS: i64 = 2000;
    pub const QUORUM_ELECTION_BACKOFF_MAX_MS: i64 = 1000;
    pub const QUORUM_APPEND_LINGER_MS: i64 = 25;
    pub const QUORUM_REQUEST_TIMEOUT_MS: i64 = 2000;
    pub const QUORUM_RETRY_BACKOFF_MS: i64 = 20;
    pub const METADATA_LOG_SEGMENT_BYTES: i64 = 1024 * 1024 * 1024;
    pub const METADATA_LOG_SEGMENT_MIN_BYTES: i64 = 8 * 1024 * 1024;
    pub const METADATA_LOG_SEGMENT_MS: i64 = 7 * 24 * 60 * 60 * 1000;
    pub const METADATA_MAX_RECORD_BYTES_BETWEEN_SNAPSHOTS: i64 = 20 * 1024 * 1024;
    pub const METADATA_MAX_SNAPSHOT_INTERVAL_MS: i64 = 60 * 60 * 1000;
    pub const METADATA_MAX_RETENTION_BYTES: i64 = 100 * 1024 * 1024;
    pub const METADATA_MAX_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
    pub const MAX_CONNECTIONS: i64 = i32::MAX as i64;
    pub const MAX_CONNECTIONS_PER_IP: i64 = i32::MAX as i64;
    pub const CONNECTIONS_MAX_IDLE_MS: i64 = 10 * 60 * 1000;
    pub const HANDSHAKE_TIMEOUT_MS: i64 = 10_000;
}

/// Every key kraft reads (deprecated and ignored ones included).
pub const KNOWN: &[&str] = &[
    NODE_ID,
    CLUSTER_ID,
    BROKER_RACK,
    PROCESS_ROLES,
    LISTENERS,
    CONTROLLER_LISTENER_NAMES,
    QUORUM_VOTERS,
    QUORUM_BOOTSTRAP_SERVERS,
    LOG_DIRS,
    LOG_DIR,
    METADATA_LOG_DIR,
    QUORUM_ELECTION_TIMEOUT_MS,
    QUORUM_FETCH_TIMEOUT_MS,
    QUORUM_ELECTION_BACKOFF_MAX_MS,
    QUORUM_APPEND_LINGER_MS,
    QUORUM_REQUEST_TIMEOUT_MS,
    QUORUM_RETRY_BACKOFF_MS,
    QUORUM_AUTO_JOIN_ENABLE,
    METADATA_LOG_SEGMENT_BYTES,
    METADATA_LOG_SEGMENT_MIN_BYTES,
    METADATA_LOG_SEGMENT_MS,
    METADATA_MAX_RECORD_BYTES_BETWEEN_SNAPSHOTS,
    METADATA_MAX_SNAPSHOT_INTERVAL_MS,
    METADATA_MAX_RETENTION_BYTES,
    METADATA_MAX_RETENTION_MS,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_IP,
    CONNECTIONS_MAX_IDLE_MS,
    HANDSHAKE_TIMEOUT_MS,
    METRICS_LISTENER,
    SECURITY_PROTOCOL_MAP,
    SSL_KEYSTORE_TYPE,
    SSL_KEYSTORE_LOCATION,
    SSL_KEYSTORE_CERTIFICATE_CHAIN,
    SSL_KEYSTORE_KEY,
    SSL_KEYSTORE_PASSWORD,
    SSL_KEY_PASSWORD,
    SSL_TRUSTSTORE_TYPE,
    SSL_TRUSTSTORE_LOCATION,
    SSL_TRUSTSTORE_CERTIFICATES,
    SSL_TRUSTSTORE_PASSWORD,
    SSL_CLIENT_AUTH,
    SSL_ENDPOINT_IDENTIFICATION_ALGORITHM,
    "broker.id",
    "quorum.voters",
    "zookeeper.connect",
];

/// Stands for '.' in the keys handed to the `config` crate. config reads a dotted key as a path
/// into nested tables, so `max.connections` and `max.connections.per.ip` could not both be set;
/// Kafka's key space is flat, and a key without dots stays flat (config sets a key it cannot
/// parse as a path at the top level, as it is).
pub const FLAT_DOT: char = '\u{00B7}';

/// `key` as handed to config.
pub fn flat(key: &str) -> String {
    key.replace('.', &FLAT_DOT.to_string())
}

/// A key config handed back, with its dots.
pub fn dotted(key: &str) -> String {
    key.replace(FLAT_DOT, ".")
}
