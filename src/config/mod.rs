//! Node configuration from Kafka-style `.properties` files, and the Kafka client properties a
//! tool reads with `--command-config` (`client_properties`).
//!
//! Owns turning text (file, `KRAFT_*` environment, `--override`s) into a typed, validated
//! [`NodeConfig`] with Kafka's key names and defaults; durations become [`Duration`]s here and
//! nowhere else. Every invalid value is a [`ConfigError`] naming where it came from (file,
//! variable or override), the key, the value and what was expected. It must never open sockets or
//! touch the log dirs: it only describes them.

pub mod client_properties;
mod connection_limits;
pub mod endpoints;
pub mod keys;
mod loader;
mod properties;
mod tls_settings;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use client_properties::{ClientConfigError, ClientProperties, ClientTlsSettings};
pub use connection_limits::{ConnectionLimits, RESERVED_DESCRIPTORS, within_descriptors};
pub use endpoints::{Endpoint, Listener, VoterSet};
pub use loader::{Origin, RawConfig, load_raw};
pub use properties::{JavaProperties, parse_pairs};
pub use tls_settings::{KeyStore, ListenerSecurity, TlsSettings, TrustStore};

use crate::types::NodeId;

/// Why a configuration could not be loaded. Each renders as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read config file: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Syntax { path: PathBuf, reason: String },
    #[error("{origin}: invalid value '{value}' for '{key}': expected {expected}")]
    Invalid {
        origin: String,
        key: String,
        value: String,
        expected: String,
    },
    #[error("{}: missing '{key}': expected {expected}", path.display())]
    Missing {
        path: PathBuf,
        key: String,
        expected: String,
    },
    #[error("--override '{arg}': {reason}")]
    BadOverride { arg: String, reason: String },
}

/// Something worth telling the operator that does not stop the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The `controller.quorum.*` timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumTimers {
    pub election_timeout: Duration,
    pub fetch_timeout: Duration,
    pub election_backoff_max: Duration,
    /// How long the leader waits to gather appends before flushing them, when set. Unset
    /// (Kafka's default would be 25 ms), kraft commits adaptively instead: a lone append is
    /// flushed at once, and appends made while a flush runs are flushed together after it.
    pub append_linger: Option<Duration>,
    pub request_timeout: Duration,
    pub retry_backoff: Duration,
}

/// Sizing and retention of the metadata log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLogConfig {
    pub segment_bytes: u64,
    pub segment_max_age: Duration,
    pub max_record_bytes_between_snapshots: u64,
    /// `None` disables the time-based snapshot trigger (0 in the file).
    pub max_snapshot_interval: Option<Duration>,
    /// `None` is unlimited (-1 in the file).
    pub max_retention_bytes: Option<u64>,
    /// `None` is unlimited (-1 in the file).
    pub max_retention: Option<Duration>,
}

/// A node's validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The file it was loaded from.
    pub source: PathBuf,
    pub node_id: NodeId,
    /// `cluster.id`, if set: used to format an empty log dir on first start.
    pub cluster_id: Option<String>,
    /// `broker.rack`, if set: consumers in this rack are pointed here to read.
    pub rack: Option<String>,
    pub process_roles: Vec<String>,
    pub listeners: Vec<Listener>,
    /// The first name is the listener the quorum uses.
    pub controller_listener_names: Vec<String>,
    pub voters: VoterSet,
    pub bootstrap_servers: Vec<Endpoint>,
    pub log_dirs: Vec<PathBuf>,
    pub metadata_log_dir: PathBuf,
    pub quorum: QuorumTimers,
    pub auto_join: bool,
    pub metadata_log: MetadataLogConfig,
    pub connections: ConnectionLimits,
    /// The quorum listener's security protocol (`listener.security.protocol.map`).
    pub security: ListenerSecurity,
    /// `metrics.listener`: where the Prometheus metrics endpoint listens (`None`: no endpoint).
    pub metrics_listener: Option<Endpoint>,
}

/// A loaded configuration and the warnings loading it produced.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: NodeConfig,
    pub warnings: Vec<ConfigWarning>,
}

impl NodeConfig {
    /// Loads `path` layered with the `KRAFT_*` entries of `env` and `overrides` (`key=value`).
    pub fn load(
        path: &Path,
        env: &BTreeMap<String, String>,
        overrides: &[String],
    ) -> Result<LoadedConfig, ConfigError> {
        Self::from_raw(load_raw(path, env, overrides)?)
    }

    /// Validates merged values.
    pub fn from_raw(raw: RawConfig) -> Result<LoadedConfig, ConfigError> {
        let mut v = Values {
            raw,
            warnings: Vec::new(),
        };
        v.apply_aliases()?;
        let config = v.node_config()?;
        // After the rest: which listener-scoped keys are read depends on the quorum listener.
        v.warn_unknown(&config.controller_listener_names[0]);
        Ok(LoadedConfig {
            config,
            warnings: v.warnings,
        })
    }

    /// The listener named by the first `controller.listener.names` entry.
    pub fn controller_listener(&self) -> &Listener {
        let name = &self.controller_listener_names[0];
        self.listeners
            .iter()
            .find(|l| &l.name == name)
            .expect("validated at load")
    }

    /// Whether this node is in the static voter set (otherwise it is an observer).
    pub fn is_voter(&self) -> bool {
        self.voters.contains(self.node_id)
    }

    /// Every directory the node uses: `log.dirs` plus the metadata log dir, without repeats.
    pub fn all_log_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = self.log_dirs.clone();
        if !dirs.contains(&self.metadata_log_dir) {
            dirs.push(self.metadata_log_dir.clone());
        }
        dirs
    }
}

/// Validation state: the merged values and the warnings so far.
struct Values {
    raw: RawConfig,
    warnings: Vec<ConfigWarning>,
}

impl Values {
    fn get(&self, key: &str) -> Option<&(String, Origin)> {
        self.raw.values.get(key)
    }

    fn warn(&mut self, key: &str, message: String) {
        self.warnings.push(ConfigWarning {
            key: key.to_string(),
            message,
        });
    }

    fn invalid(&self, key: &str, expected: impl Into<String>) -> ConfigError {
        let (value, origin) = self
            .get(key)
            .cloned()
            .unwrap_or_default_origin(&self.raw.file);
        ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.into(),
            value,
            expected: expected.into(),
        }
    }

    fn missing(&self, key: &str, expected: &str) -> ConfigError {
        ConfigError::Missing {
            path: self.raw.file.clone(),
            key: key.into(),
            expected: expected.into(),
        }
    }

    /// Moves deprecated keys to their new names (refusing a conflict) and drops ignored keys.
    fn apply_aliases(&mut self) -> Result<(), ConfigError> {
        for &(old, new) in keys::DEPRECATED_ALIASES {
            let Some(old_value) = self.raw.values.remove(old) else {
                continue;
            };
            self.warn(
                old,
                format!("'{old}' is deprecated: use '{new}' ({})", old_value.1),
            );
            match self.get(new) {
                // A higher layer (environment, override) setting the new name simply wins.
                Some((_, origin)) if origin.rank() > old_value.1.rank() => {}
                Some((value, _)) if value != &old_value.0 => {
                    return Err(ConfigError::Invalid {
                        origin: old_value.1.to_string(),
                        key: old.into(),
                        value: old_value.0,
                        expected: format!("the same value as '{new}' ('{value}') or no value"),
                    });
                }
                Some(_) => {}
                None => {
                    self.raw.values.insert(new.to_string(), old_value);
                }
            }
        }
        for &key in keys::IGNORED {
            if let Some((_, origin)) = self.raw.values.remove(key) {
                self.warn(
                    key,
                    format!(
                        "'{key}' is unused and ignored: it is a ZooKeeper setting and kraft runs without ZooKeeper ({origin})"
                    ),
                );
            }
        }
        Ok(())
    }

    /// Warns about each key kraft does not read; `listener` is the quorum listener, whose
    /// scoped `ssl.*` keys are read (another listener's are named as such).
    fn warn_unknown(&mut self, listener: &str) {
        let quorum_prefix = keys::listener_prefix(listener);
        let unknown: Vec<(String, Origin)> = self
            .raw
            .values
            .iter()
            .filter(|(k, _)| !keys::KNOWN.contains(&k.as_str()))
            .filter(|(k, _)| {
                !(k.starts_with(&quorum_prefix) && keys::split_listener_ssl_key(k).is_some())
            })
            .map(|(k, (_, o))| (k.clone(), o.clone()))
            .collect();
        for (key, origin) in unknown {
            let message = match keys::split_listener_ssl_key(&key) {
                Some((other, _)) => format!(
                    "'{key}' is for listener '{other}', not the quorum listener {listener} \
                     (its keys are '{quorum_prefix}ssl.*'), and is ignored ({origin})"
                ),
                None => format!("unknown configuration key '{key}' is ignored ({origin})"),
            };
            self.warn(&key, message);
        }
    }

    fn string(&self, key: &str) -> Option<&str> {
        self.get(key).map(|(v, _)| v.trim())
    }

    /// An integer in `[min, max]`, or `default` when the key is absent.
    fn int(&self, key: &str, default: i64, min: i64, max: i64) -> Result<i64, ConfigError> {
        let Some(text) = self.string(key) else {
            return Ok(default);
        };
        text.parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| self.invalid(key, range_text(min, max)))
    }

    fn millis(&self, key: &str, default: i64, min: i64) -> Result<Duration, ConfigError> {
        let ms = self.int(key, default, min, i64::from(i32::MAX))?;
        Ok(Duration::from_millis(ms as u64))
    }

    /// A limit where -1 means unlimited.
    fn limit(&self, key: &str, default: i64) -> Result<Option<u64>, ConfigError> {
        let n = self.int(key, default, -1, i64::MAX)?;
        Ok((n >= 0).then_some(n as u64))
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.string(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(self.invalid(key, "true or false")),
        }
    }

    fn node_config(&mut self) -> Result<NodeConfig, ConfigError> {
        let node_id = match self.string(keys::NODE_ID) {
            None => return Err(self.missing(keys::NODE_ID, "this node's id, an integer >= 0")),
            Some(_) => NodeId(self.int(keys::NODE_ID, 0, 0, i64::from(i32::MAX))? as i32),
        };
        let listeners = self.listeners()?;
        let controller_listener_names = self.controller_listener_names(&listeners)?;
        let security = self.listener_security(&controller_listener_names[0])?;
        let (voters, bootstrap_servers) = self.quorum_addresses()?;
        let (log_dirs, metadata_log_dir) = self.log_dirs()?;
        Ok(NodeConfig {
            source: self.raw.file.clone(),
            node_id,
            cluster_id: self
                .string(keys::CLUSTER_ID)
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            rack: self
                .string(keys::BROKER_RACK)
                .filter(|r| !r.is_empty())
                .map(str::to_string),
            process_roles: self.process_roles()?,
            listeners,
            controller_listener_names,
            voters,
            bootstrap_servers,
            log_dirs,
            metadata_log_dir,
            quorum: self.quorum_timers()?,
            auto_join: self.bool(keys::QUORUM_AUTO_JOIN_ENABLE, false)?,
            metadata_log: self.metadata_log()?,
            connections: self.connection_limits()?,
            security,
            metrics_listener: self.metrics_listener()?,
        })
    }

    /// `metrics.listener`: `http://host:port` (port 0: any free port), or unset/empty for none.
    fn metrics_listener(&self) -> Result<Option<Endpoint>, ConfigError> {
        let key = keys::METRICS_LISTENER;
        let Some(text) = self.string(key).filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let expected = "http://host:port (e.g. http://127.0.0.1:9404; port 0 picks a free one)";
        let address = text
            .strip_prefix("http://")
            .ok_or_else(|| self.invalid(key, expected))?;
        endpoints::parse_host_port(address, false)
            .map(Some)
            .map_err(|reason| self.invalid(key, format!("{expected}: {reason}")))
    }

    /// The quorum listener's protocol: from `listener.security.protocol.map`, or, unmapped,
    /// the listener's own name when it is `SSL` and PLAINTEXT otherwise (Kafka's KRaft rule).
    fn listener_security(&self, listener: &str) -> Result<ListenerSecurity, ConfigError> {
        let key = keys::SECURITY_PROTOCOL_MAP;
        let mapped = match self.string(key) {
            None => None,
            Some(text) => {
                let mut found = None;
                for entry in endpoints::split_list(text) {
                    let (name, protocol) = entry
                        .split_once(':')
                        .ok_or_else(|| self.invalid(key, "NAME:PROTOCOL[,...]"))?;
                    if name.trim().eq_ignore_ascii_case(listener) {
                        found = Some(protocol.trim().to_ascii_uppercase());
                    }
                }
                found
            }
        };
        let protocol = mapped.unwrap_or_else(|| match listener {
            "SSL" => "SSL".to_string(),
            _ => "PLAINTEXT".to_string(),
        });
        match protocol.as_str() {
            "PLAINTEXT" => Ok(ListenerSecurity::Plaintext),
            "SSL" => Ok(ListenerSecurity::Ssl(self.tls_settings(listener)?)),
            _ => Err(self.invalid(
                key,
                format!("PLAINTEXT or SSL for the quorum listener {listener} (kraft has no SASL)"),
            )),
        }
    }

    /// The SSL settings of the quorum listener `listener`: each `ssl.*` key is read in its
    /// listener-scoped form when that is set (Kafka's per-listener override wins, wherever each
    /// is set), else plain; every error names the key actually read.
    fn tls_settings(&self, listener: &str) -> Result<TlsSettings, ConfigError> {
        let prefix = keys::listener_prefix(listener);
        let scoped_keys: BTreeMap<&'static str, String> = keys::SSL_KEYS
            .iter()
            .map(|&key| (key, format!("{prefix}{key}")))
            .filter(|(_, scoped)| self.get(scoped).is_some())
            .collect();
        let name = |key: &'static str| scoped_keys.get(key).map_or(key, String::as_str);
        for (key, default) in [
            (name(keys::SSL_KEYSTORE_TYPE), "JKS"),
            (name(keys::SSL_TRUSTSTORE_TYPE), "JKS"),
        ] {
            let value = self.string(key).unwrap_or(default);
            if !value.eq_ignore_ascii_case("PEM") {
                return Err(self.refuse(
                    key,
                    value,
                    "PEM (kraft reads PEM stores only; Kafka's default JKS must be set to PEM)",
                ));
            }
        }
        for key in [
            name(keys::SSL_KEYSTORE_PASSWORD),
            name(keys::SSL_TRUSTSTORE_PASSWORD),
        ] {
            if self.string(key).is_some() {
                return Err(self.invalid(key, "no value: a PEM store has no password"));
            }
        }
        let key_password = name(keys::SSL_KEY_PASSWORD);
        if self.string(key_password).is_some() {
            return Err(self.invalid(
                key_password,
                "no value: kraft does not read encrypted keys (give an unencrypted PKCS#8 key, readable by this node only)",
            ));
        }
        let client_auth_key = name(keys::SSL_CLIENT_AUTH);
        let client_auth = self.string(client_auth_key).unwrap_or("none");
        if !client_auth.eq_ignore_ascii_case("required") {
            return Err(self.refuse(
                client_auth_key,
                client_auth,
                "required: every peer of the quorum listener must present a certificate that names its node id",
            ));
        }
        let algorithm_key = name(keys::SSL_ENDPOINT_IDENTIFICATION_ALGORITHM);
        let check_hostname = match self.string(algorithm_key) {
            None => true,
            Some(v) if v.eq_ignore_ascii_case("https") => true,
            Some("") => false,
            Some(_) => {
                return Err(self.invalid(
                    algorithm_key,
                    "https, or empty to not check the dialed host name",
                ));
            }
        };
        Ok(TlsSettings {
            keystore: self.keystore(&name)?,
            truststore: self.truststore(&name)?,
            check_hostname,
            scoped_keys: scoped_keys.clone(),
        })
    }

    /// `name` gives the key each `ssl.*` setting is read from (see `tls_settings`).
    fn keystore<'a>(
        &self,
        name: &impl Fn(&'static str) -> &'a str,
    ) -> Result<KeyStore, ConfigError> {
        let (location_key, chain_key, key_key) = (
            name(keys::SSL_KEYSTORE_LOCATION),
            name(keys::SSL_KEYSTORE_CERTIFICATE_CHAIN),
            name(keys::SSL_KEYSTORE_KEY),
        );
        let location = self.string(location_key);
        let chain = self.string(chain_key);
        let key = self.string(key_key);
        match (location, chain, key) {
            (Some(path), None, None) => Ok(KeyStore::File(PathBuf::from(path))),
            (None, Some(chain), Some(key)) => Ok(KeyStore::Inline {
                chain: chain.to_string(),
                key: key.to_string(),
            }),
            (Some(_), _, _) => Err(self.invalid(
                location_key,
                format!("either a PEM file, or '{chain_key}' and '{key_key}', not both"),
            )),
            (None, Some(_), None) => Err(self.missing(
                key_key,
                &format!("the private key that goes with '{chain_key}'"),
            )),
            (None, None, Some(_)) => Err(self.missing(
                chain_key,
                &format!("the certificate chain that goes with '{key_key}'"),
            )),
            (None, None, None) => Err(self.missing(
                location_key,
                "this node's key and certificate chain (a PEM file) for the SSL quorum listener",
            )),
        }
    }

    /// `name` gives the key each `ssl.*` setting is read from (see `tls_settings`).
    fn truststore<'a>(
        &self,
        name: &impl Fn(&'static str) -> &'a str,
    ) -> Result<TrustStore, ConfigError> {
        let (location_key, inline_key) = (
            name(keys::SSL_TRUSTSTORE_LOCATION),
            name(keys::SSL_TRUSTSTORE_CERTIFICATES),
        );
        let location = self.string(location_key);
        let inline = self.string(inline_key);
        match (location, inline) {
            (Some(path), None) => Ok(TrustStore::File(PathBuf::from(path))),
            (None, Some(certs)) => Ok(TrustStore::Inline(certs.to_string())),
            (Some(_), Some(_)) => Err(self.invalid(
                location_key,
                format!("either a PEM file or '{inline_key}', not both"),
            )),
            (None, None) => Err(self.missing(
                location_key,
                "the certificate authorities peers' certificates are checked against (a PEM file)",
            )),
        }
    }

    /// An invalid value, including when the key was not set and its default is the problem.
    fn refuse(&self, key: &str, value: &str, expected: &str) -> ConfigError {
        match self.string(key) {
            Some(_) => self.invalid(key, expected),
            None => ConfigError::Invalid {
                origin: self.raw.file.display().to_string(),
                key: key.into(),
                value: format!("{value} (the default)"),
                expected: expected.into(),
            },
        }
    }

    fn connection_limits(&mut self) -> Result<ConnectionLimits, ConfigError> {
        use keys::defaults as d;
        let max = i64::from(i32::MAX);
        let wanted = self.int(keys::MAX_CONNECTIONS, d::MAX_CONNECTIONS, 1, max)? as u64;
        let max_connections = within_descriptors(wanted);
        if self.string(keys::MAX_CONNECTIONS).is_some() && (max_connections as u64) < wanted {
            self.warn(
                keys::MAX_CONNECTIONS,
                format!(
                    "'{}' is {wanted}, but the descriptor limit allows {max_connections} (it keeps {RESERVED_DESCRIPTORS} for the node's files): using {max_connections}",
                    keys::MAX_CONNECTIONS
                ),
            );
        }
        Ok(ConnectionLimits {
            max_connections,
            max_connections_per_ip: self.int(
                keys::MAX_CONNECTIONS_PER_IP,
                d::MAX_CONNECTIONS_PER_IP,
                1,
                max,
            )? as usize,
            idle: self.millis(keys::CONNECTIONS_MAX_IDLE_MS, d::CONNECTIONS_MAX_IDLE_MS, 1)?,
            handshake_timeout: self.millis(
                keys::HANDSHAKE_TIMEOUT_MS,
                d::HANDSHAKE_TIMEOUT_MS,
                1,
            )?,
        })
    }

    fn process_roles(&self) -> Result<Vec<String>, ConfigError> {
        let Some(text) = self.string(keys::PROCESS_ROLES) else {
            return Ok(vec!["controller".into()]);
        };
        let roles: Vec<String> = endpoints::split_list(text)
            .iter()
            .map(|r| r.to_ascii_lowercase())
            .collect();
        if roles.is_empty() || roles.iter().any(|r| r != "broker" && r != "controller") {
            return Err(self.invalid(keys::PROCESS_ROLES, "a list of 'broker' and 'controller'"));
        }
        Ok(roles)
    }

    fn listeners(&self) -> Result<Vec<Listener>, ConfigError> {
        let text = self.string(keys::LISTENERS).ok_or_else(|| {
            self.missing(
                keys::LISTENERS,
                "NAME://host:port[,...], e.g. PLAINTEXT://localhost:9092",
            )
        })?;
        endpoints::parse_listeners(text)
            .map_err(|e| self.invalid(keys::LISTENERS, format!("NAME://host:port[,...] ({e})")))
    }

    fn controller_listener_names(
        &self,
        listeners: &[Listener],
    ) -> Result<Vec<String>, ConfigError> {
        let Some(text) = self.string(keys::CONTROLLER_LISTENER_NAMES) else {
            // Kafka requires the key, but files in the older seed style have none and a single
            // listener, which can only be the quorum's. With several, any pick would be a guess
            // that could put the quorum on a port meant for something else.
            return match listeners {
                [only] => Ok(vec![only.name.clone()]),
                _ => {
                    let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
                    Err(self.missing(
                        keys::CONTROLLER_LISTENER_NAMES,
                        &format!(
                            "the listener the quorum uses, one of {} ('{}' defines more than one)",
                            names.join(", "),
                            keys::LISTENERS
                        ),
                    ))
                }
            };
        };
        let names: Vec<String> = endpoints::split_list(text)
            .iter()
            .map(|n| n.to_ascii_uppercase())
            .collect();
        let defined: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
        match names.iter().find(|n| !defined.contains(&n.as_str())) {
            _ if names.is_empty() => Err(self.invalid(
                keys::CONTROLLER_LISTENER_NAMES,
                "at least one listener name",
            )),
            Some(n) => Err(self.invalid(
                keys::CONTROLLER_LISTENER_NAMES,
                format!(
                    "names defined in '{}' ({}); {n} is not",
                    keys::LISTENERS,
                    defined.join(", ")
                ),
            )),
            None => Ok(names),
        }
    }

    fn quorum_addresses(&self) -> Result<(VoterSet, Vec<Endpoint>), ConfigError> {
        let voters = match self.string(keys::QUORUM_VOTERS) {
            None => VoterSet::default(),
            Some(text) => endpoints::parse_voters(text).map_err(|e| {
                self.invalid(
                    keys::QUORUM_VOTERS,
                    format!("{{id}}@{{host}}:{{port}}[,...] ({e})"),
                )
            })?,
        };
        let bootstrap = match self.string(keys::QUORUM_BOOTSTRAP_SERVERS) {
            None => Vec::new(),
            Some(text) => endpoints::parse_bootstrap_servers(text).map_err(|e| {
                self.invalid(
                    keys::QUORUM_BOOTSTRAP_SERVERS,
                    format!("host:port[,...] ({e})"),
                )
            })?,
        };
        if voters.is_empty() && bootstrap.is_empty() {
            return Err(self.missing(
                keys::QUORUM_VOTERS,
                "the voters ({id}@{host}:{port},...) or 'controller.quorum.bootstrap.servers'",
            ));
        }
        Ok((voters, bootstrap))
    }

    fn log_dirs(&self) -> Result<(Vec<PathBuf>, PathBuf), ConfigError> {
        let (key, text) = match (self.string(keys::LOG_DIRS), self.string(keys::LOG_DIR)) {
            (Some(dirs), _) => (keys::LOG_DIRS, dirs),
            (None, Some(dir)) => (keys::LOG_DIR, dir),
            (None, None) => (keys::LOG_DIR, keys::defaults::LOG_DIR),
        };
        let dirs: Vec<PathBuf> = endpoints::split_list(text)
            .into_iter()
            .map(PathBuf::from)
            .collect();
        if dirs.is_empty() {
            return Err(self.invalid(key, "at least one directory"));
        }
        let metadata = match self.string(keys::METADATA_LOG_DIR) {
            None => dirs[0].clone(),
            Some("") => return Err(self.invalid(keys::METADATA_LOG_DIR, "a directory")),
            Some(dir) => PathBuf::from(dir),
        };
        Ok((dirs, metadata))
    }

    fn quorum_timers(&self) -> Result<QuorumTimers, ConfigError> {
        use keys::defaults as d;
        Ok(QuorumTimers {
            election_timeout: self.millis(
                keys::QUORUM_ELECTION_TIMEOUT_MS,
                d::QUORUM_ELECTION_TIMEOUT_MS,
                0,
            )?,
            fetch_timeout: self.millis(
                keys::QUORUM_FETCH_TIMEOUT_MS,
                d::QUORUM_FETCH_TIMEOUT_MS,
                1,
            )?,
            election_backoff_max: self.millis(
                keys::QUORUM_ELECTION_BACKOFF_MAX_MS,
                d::QUORUM_ELECTION_BACKOFF_MAX_MS,
                0,
            )?,
            append_linger: match self.string(keys::QUORUM_APPEND_LINGER_MS) {
                None => None,
                Some(_) => Some(self.millis(
                    keys::QUORUM_APPEND_LINGER_MS,
                    d::QUORUM_APPEND_LINGER_MS,
                    0,
                )?),
            },
            request_timeout: self.millis(
                keys::QUORUM_REQUEST_TIMEOUT_MS,
                d::QUORUM_REQUEST_TIMEOUT_MS,
                1,
            )?,
            retry_backoff: self.millis(
                keys::QUORUM_RETRY_BACKOFF_MS,
                d::QUORUM_RETRY_BACKOFF_MS,
                0,
            )?,
        })
    }

    fn metadata_log(&self) -> Result<MetadataLogConfig, ConfigError> {
        use keys::defaults as d;
        let max_int = i64::from(i32::MAX);
        let min_segment = self.int(
            keys::METADATA_LOG_SEGMENT_MIN_BYTES,
            d::METADATA_LOG_SEGMENT_MIN_BYTES,
            1,
            max_int,
        )?;
        let segment_bytes = self.int(
            keys::METADATA_LOG_SEGMENT_BYTES,
            d::METADATA_LOG_SEGMENT_BYTES,
            min_segment,
            max_int,
        )?;
        if segment_bytes < min_segment {
            return Err(self.invalid(
                keys::METADATA_LOG_SEGMENT_MIN_BYTES,
                format!(
                    "at most {} ({segment_bytes})",
                    keys::METADATA_LOG_SEGMENT_BYTES
                ),
            ));
        }
        let interval_ms = self.int(
            keys::METADATA_MAX_SNAPSHOT_INTERVAL_MS,
            d::METADATA_MAX_SNAPSHOT_INTERVAL_MS,
            0,
            i64::MAX,
        )?;
        Ok(MetadataLogConfig {
            segment_bytes: segment_bytes as u64,
            segment_max_age: Duration::from_millis(self.int(
                keys::METADATA_LOG_SEGMENT_MS,
                d::METADATA_LOG_SEGMENT_MS,
                1,
                i64::MAX,
            )? as u64),
            max_record_bytes_between_snapshots: self.int(
                keys::METADATA_MAX_RECORD_BYTES_BETWEEN_SNAPSHOTS,
                d::METADATA_MAX_RECORD_BYTES_BETWEEN_SNAPSHOTS,
                1,
                i64::MAX,
            )? as u64,
            max_snapshot_interval: (interval_ms > 0)
                .then(|| Duration::from_millis(interval_ms as u64)),
            max_retention_bytes: self.limit(
                keys::METADATA_MAX_RETENTION_BYTES,
                d::METADATA_MAX_RETENTION_BYTES,
            )?,
            max_retention: self
                .limit(
                    keys::METADATA_MAX_RETENTION_MS,
                    d::METADATA_MAX_RETENTION_MS,
                )?
                .map(Duration::from_millis),
        })
    }
}

fn range_text(min: i64, max: i64) -> String {
    match (min, max) {
        (-1, i64::MAX) => "an integer >= 0, or -1 for no limit".into(),
        (min, max) if max == i64::MAX || max == i64::from(i32::MAX) => {
            format!("an integer >= {min}")
        }
        (min, max) => format!("an integer in {min}..={max}"),
    }
}

/// `Option<(value, origin)>` → a pair, for errors about keys that may be defaulted.
trait OrDefaultOrigin {
    fn unwrap_or_default_origin(self, file: &Path) -> (String, Origin);
}

impl OrDefaultOrigin for Option<(String, Origin)> {
    fn unwrap_or_default_origin(self, file: &Path) -> (String, Origin) {
        self.unwrap_or_else(|| (String::new(), Origin::File(file.to_path_buf())))
    }
}
