//! What the quorum listener's security protocol asks for: PLAINTEXT, or SSL with mutual
//! authentication, in Kafka's key names (KIP-651 PEM stores), so that a Kafka operator's files
//! carry over.
//!
//! Owns the configuration rules only (which keys go together, which values kraft supports); it
//! never reads a certificate or key file (`crate::security` does, at start-up).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The quorum listener's security protocol.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ListenerSecurity {
    /// Peers are neither authenticated nor encrypted (the seed configurations).
    #[default]
    Plaintext,
    Ssl(TlsSettings),
}

/// Where a node's certificate chain and private key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStore {
    /// `ssl.keystore.location`: one PEM file holding the key and the chain.
    File(PathBuf),
    /// `ssl.keystore.certificate.chain` and `ssl.keystore.key`, inline.
    Inline { chain: String, key: String },
}

/// Where the trusted certificate authorities come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustStore {
    /// `ssl.truststore.location`: a PEM file of certificates.
    File(PathBuf),
    /// `ssl.truststore.certificates`, inline.
    Inline(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub keystore: KeyStore,
    pub truststore: TrustStore,
    /// `ssl.endpoint.identification.algorithm=https` (the default): a dialed peer's certificate
    /// must name the host it was dialed at. Empty: it need not.
    pub check_hostname: bool,
    /// The `ssl.*` keys that were read in their listener-scoped form
    /// (`listener.name.<listener>.ssl.…`), with that form: a store that turns out unreadable
    /// at start-up is reported under the key the operator actually set. Empty when every
    /// setting came from the plain keys (or not from a file at all).
    pub scoped_keys: BTreeMap<&'static str, String>,
}

impl TlsSettings {
    /// The key `ssl_key`'s value was read from: its listener-scoped form or itself.
    pub fn key_name(&self, ssl_key: &'static str) -> String {
        self.scoped_keys
            .get(ssl_key)
            .cloned()
            .unwrap_or_else(|| ssl_key.to_string())
    }
}
