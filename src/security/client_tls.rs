//! A Kafka client's TLS configuration (a tool's, not a peer's): the server's certificate must
//! chain to a trusted CA (and name the dialed host unless that check is off); the client's own
//! certificate, if configured, is presented when the server asks for one.

use std::sync::Arc;

use rustls::ClientConfig;

use super::peer_tls::{TlsError, read_keystore, read_truststore, verifying_client};
use crate::config::ClientTlsSettings;
use crate::config::keys;

/// Reads the stores into a rustls client configuration; every problem is one [`TlsError`]
/// naming the key and file.
pub fn client_config(settings: &ClientTlsSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key_name = |k: &'static str| k.to_string();
    let roots = Arc::new(read_truststore(&settings.truststore, &key_name)?);
    let trust_error = |reason: String| TlsError {
        key: keys::SSL_TRUSTSTORE_LOCATION.to_string(),
        file: None,
        reason,
    };
    let builder = verifying_client(roots, provider, settings.check_hostname)
        .map_err(|e| trust_error(e.to_string()))?;
    let config = match &settings.keystore {
        None => builder.with_no_client_auth(),
        Some(store) => {
            let (chain, key, (key_source, file)) = read_keystore(store, &key_name)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError {
                    key: key_source,
                    file,
                    reason: format!("the key does not go with the certificate chain: {e}"),
                })?
        }
    };
    Ok(Arc::new(config))
}
