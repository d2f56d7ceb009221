//! The client properties a Kafka tool takes with `--command-config` (Kafka's admin client keys),
//! as far as `kraft quorum` uses them: `security.protocol`, the `ssl.*` stores (PEM only, as the
//! server reads them) and the request and connection timeouts.
//!
//! Owns the rules for those keys only; it never reads a certificate file (`crate::security`
//! does) and never opens a connection. Keys it does not use are ignored, as Kafka's admin client
//! ignores (and warns about) keys it does not know.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::keys;
use super::tls_settings::{KeyStore, TrustStore};

pub const SECURITY_PROTOCOL: &str = "security.protocol";
pub const REQUEST_TIMEOUT_MS: &str = "request.timeout.ms";
pub const CONNECTION_SETUP_TIMEOUT_MS: &str = "socket.connection.setup.timeout.ms";

/// Kafka's admin client default for `request.timeout.ms`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Kafka's client default for `socket.connection.setup.timeout.ms`.
pub const DEFAULT_CONNECTION_SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest timeout accepted: a day is already far past any useful wait for one answer,
/// and it keeps `Instant` arithmetic far from overflow.
const MAX_TIMEOUT_MS: u64 = 24 * 3600 * 1000;
/// Largest properties file read: a client's is a few lines, and a path such as /dev/zero must
/// end in an error, not in reading without end.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a client properties file cannot be used. Each renders as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientConfigError {
    #[error("{file}: {reason}")]
    Unreadable { file: String, reason: String },
    #[error("{file}: '{key}' is '{value}', expected {expected}")]
    Invalid {
        file: String,
        key: String,
        value: String,
        expected: String,
    },
    #[error("{file}: '{key}' is missing: {why}")]
    Missing {
        file: String,
        key: String,
        why: String,
    },
}

/// A client's TLS: whom it trusts, and what it presents if the server asks (kraft's listener
/// does: `ssl.client.auth=required`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsSettings {
    pub truststore: TrustStore,
    pub keystore: Option<KeyStore>,
    /// `ssl.endpoint.identification.algorithm`: https (the default) checks the dialed host name.
    pub check_hostname: bool,
}

/// What `--command-config` asks of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientProperties {
    /// `None`: PLAINTEXT.
    pub tls: Option<ClientTlsSettings>,
    pub request_timeout: Duration,
    pub connection_setup_timeout: Duration,
}

impl Default for ClientProperties {
    fn default() -> Self {
        ClientProperties {
            tls: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connection_setup_timeout: DEFAULT_CONNECTION_SETUP_TIMEOUT,
        }
    }
}

impl ClientProperties {
    /// Reads a `.properties` file.
    pub fn load(path: &Path) -> Result<ClientProperties, ClientConfigError> {
        let file = path.display().to_string();
        let unreadable = |reason: String| ClientConfigError::Unreadable {
            file: file.clone(),
            reason,
        };
        let text = read_bounded(path).map_err(unreadable)?;
        let pairs = super::parse_pairs(&text).map_err(unreadable)?;
        ClientProperties::from_pairs(&file, pairs.into_iter().collect())
    }

    /// The properties from (key, value) pairs; `file` names them in errors.
    pub fn from_pairs(
        file: &str,
        pairs: BTreeMap<String, String>,
    ) -> Result<ClientProperties, ClientConfigError> {
        let reader = Reader { file, pairs };
        let tls = match reader.get(SECURITY_PROTOCOL).unwrap_or("PLAINTEXT") {
            p if p.eq_ignore_ascii_case("PLAINTEXT") => None,
            p if p.eq_ignore_ascii_case("SSL") => Some(reader.tls()?),
            _ => {
                return Err(
                    reader.invalid(SECURITY_PROTOCOL, "PLAINTEXT or SSL (kraft has no SASL)")
                );
            }
        };
        Ok(ClientProperties {
            tls,
            request_timeout: reader.timeout(REQUEST_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT)?,
            connection_setup_timeout: reader.timeout(
                CONNECTION_SETUP_TIMEOUT_MS,
                DEFAULT_CONNECTION_SETUP_TIMEOUT,
            )?,
        })
    }
}

struct Reader<'a> {
    file: &'a str,
    pairs: BTreeMap<String, String>,
}

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs.get(key).map(|v| v.trim())
    }

    fn invalid(&self, key: &str, expected: &str) -> ClientConfigError {
        ClientConfigError::Invalid {
            file: self.file.to_string(),
            key: key.to_string(),
            value: self.get(key).unwrap_or_default().to_string(),
            expected: expected.to_string(),
        }
    }

    fn missing(&self, key: &str, why: &str) -> ClientConfigError {
        ClientConfigError::Missing {
            file: self.file.to_string(),
            key: key.to_string(),
            why: why.to_string(),
        }
    }

    fn timeout(&self, key: &str, default: Duration) -> Result<Duration, ClientConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => Ok(Duration::from_millis(ms)),
                _ => Err(self.invalid(key, &format!("milliseconds in 1..={MAX_TIMEOUT_MS}"))),
            },
        }
    }

    fn tls(&self) -> Result<ClientTlsSettings, ClientConfigError> {
        for key in [keys::SSL_KEYSTORE_TYPE, keys::SSL_TRUSTSTORE_TYPE] {
            if !self.get(key).unwrap_or("JKS").eq_ignore_ascii_case("PEM") {
                let expected =
                    "PEM (kraft reads PEM stores only; Kafka's default JKS must be set to PEM)";
                return match self.get(key) {
                    Some(_) => Err(self.invalid(key, expected)),
                    None if key == keys::SSL_KEYSTORE_TYPE && !self.has_keystore() => continue,
                    None => Err(self.missing(key, expected)),
                };
            }
        }
        for key in [
            keys::SSL_KEYSTORE_PASSWORD,
            keys::SSL_TRUSTSTORE_PASSWORD,
            keys::SSL_KEY_PASSWORD,
        ] {
            if self.get(key).is_some() {
                return Err(self.invalid(key, "no value: kraft reads unencrypted PEM only"));
            }
        }
        let algorithm = keys::SSL_ENDPOINT_IDENTIFICATION_ALGORITHM;
        let check_hostname = match self.get(algorithm) {
            None => true,
            Some(v) if v.eq_ignore_ascii_case("https") => true,
            Some("") => false,
            Some(_) => return Err(self.invalid(algorithm, "https, or empty")),
        };
        Ok(ClientTlsSettings {
            truststore: self.truststore()?,
            keystore: self.keystore()?,
            check_hostname,
        })
    }

    fn has_keystore(&self) -> bool {
        [
            keys::SSL_KEYSTORE_LOCATION,
            keys::SSL_KEYSTORE_CERTIFICATE_CHAIN,
            keys::SSL_KEYSTORE_KEY,
        ]
        .iter()
        .any(|k| self.get(k).is_some())
    }

    fn truststore(&self) -> Result<TrustStore, ClientConfigError> {
        let (location, inline) = (
            keys::SSL_TRUSTSTORE_LOCATION,
            keys::SSL_TRUSTSTORE_CERTIFICATES,
        );
        match (self.get(location), self.get(inline)) {
            (Some(path), None) => Ok(TrustStore::File(PathBuf::from(path))),
            (None, Some(pem)) => Ok(TrustStore::Inline(pem.to_string())),
            (Some(_), Some(_)) => Err(self.invalid(
                location,
                &format!("either a PEM file or '{inline}', not both"),
            )),
            (None, None) => Err(self.missing(
                location,
                "the certificate authorities the server's certificate is checked against (a PEM file)",
            )),
        }
    }

    fn keystore(&self) -> Result<Option<KeyStore>, ClientConfigError> {
        let (location, chain, key) = (
            keys::SSL_KEYSTORE_LOCATION,
            keys::SSL_KEYSTORE_CERTIFICATE_CHAIN,
            keys::SSL_KEYSTORE_KEY,
        );
        match (self.get(location), self.get(chain), self.get(key)) {
            (None, None, None) => Ok(None),
            (Some(path), None, None) => Ok(Some(KeyStore::File(PathBuf::from(path)))),
            (None, Some(c), Some(k)) => Ok(Some(KeyStore::Inline {
                chain: c.to_string(),
                key: k.to_string(),
            })),
            (Some(_), _, _) => Err(self.invalid(
                location,
                &format!("either a PEM file, or '{chain}' and '{key}', not both"),
            )),
            (None, Some(_), None) => Err(self.missing(key, "the key that goes with the chain")),
            (None, None, Some(_)) => Err(self.missing(chain, "the chain that goes with the key")),
        }
    }
}

/// The file's text, refusing one larger than [`MAX_FILE_BYTES`] (also used for the server
/// properties `kraft quorum add-controller` reads).
pub fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "stream did not contain valid UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Result<ClientProperties, ClientConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ClientProperties::from_pairs("client.properties", map)
    }

    #[test]
    fn a_file_larger_than_the_bound_is_refused_not_read_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.properties");
        let comment = format!("# {}\n", "x".repeat(1000));
        let lines = MAX_FILE_BYTES as usize / comment.len() + 1;
        std::fs::write(&path, comment.repeat(lines) + "request.timeout.ms=1000\n").unwrap();
        let e = ClientProperties::load(&path).unwrap_err().to_string();
        assert!(
            e.contains(&format!("larger than {MAX_FILE_BYTES} bytes")),
            "{e}"
        );
        // Just under the bound it loads.
        std::fs::write(
            &path,
            comment.repeat(lines - 2) + "request.timeout.ms=1000\n",
        )
        .unwrap();
        let p = ClientProperties::load(&path).unwrap();
        assert_eq!(p.request_timeout, Duration::from_millis(1000));
    }

    #[test]
    fn no_keys_is_plaintext_with_kafkas_timeouts() {
        assert_eq!(props(&[]).unwrap(), ClientProperties::default());
    }

    #[test]
    fn ssl_with_pem_stores_and_timeouts() {
        let p = props(&[
            ("security.protocol", "SSL"),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", "/ca.pem"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/me.pem"),
            ("request.timeout.ms", "1500"),
        ])
        .unwrap();
        let tls = p.tls.unwrap();
        assert_eq!(tls.truststore, TrustStore::File("/ca.pem".into()));
        assert_eq!(tls.keystore, Some(KeyStore::File("/me.pem".into())));
        assert!(tls.check_hostname);
        assert_eq!(p.request_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn refusals_name_the_key() {
        for (pairs, key) in [
            (vec![("security.protocol", "SASL_SSL")], "security.protocol"),
            (
                vec![
                    ("security.protocol", "SSL"),
                    ("ssl.truststore.location", "/ca"),
                ],
                "ssl.truststore.type",
            ),
            (
                vec![("security.protocol", "SSL"), ("ssl.truststore.type", "PEM")],
                "ssl.truststore.location",
            ),
            (vec![("request.timeout.ms", "soon")], "request.timeout.ms"),
        ] {
            let err = props(&pairs).unwrap_err().to_string();
            assert!(err.contains(&format!("'{key}'")), "{err}");
        }
    }
}
