//! The TLS configurations of one node and its handshakes as server and client. See the module
//! docs of [`crate::security`] for the node-id rule.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::{KeyStore, TlsSettings, TrustStore, keys};
use crate::types::NodeId;

/// The URI subject alternative name that binds a certificate to a node id.
const NODE_URI_PREFIX: &str = "kraft://node/";

/// A peer connection's two directions, over TCP or TLS.
pub struct PeerStream {
    pub read: Box<dyn AsyncRead + Unpin + Send>,
    pub write: Box<dyn AsyncWrite + Unpin + Send>,
}

/// A plaintext connection.
pub fn plain_stream(tcp: TcpStream) -> PeerStream {
    let _ = tcp.set_nodelay(true);
    let (read, write) = tcp.into_split();
    PeerStream {
        read: Box::new(read),
        write: Box::new(write),
    }
}

/// Something wrong with the TLS settings, named by key and file: a start-up error.
#[derive(Debug, thiserror::Error)]
#[error("{key}{}: {reason}", file.as_ref().map(|f| format!(" ({})", f.display())).unwrap_or_default())]
pub struct TlsError {
    /// The key the store was read from (listener-scoped or plain).
    pub key: String,
    pub file: Option<PathBuf>,
    pub reason: String,
}

/// One node's TLS, as server (accepting peers) and as client (dialing them).
#[derive(Debug, Clone)]
pub struct PeerTls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl PeerTls {
    /// Reads the stores and builds both configurations; every problem is one [`TlsError`].
    pub fn load(settings: &TlsSettings) -> Result<PeerTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key_name = |k: &'static str| settings.key_name(k);
        let (chain, key, key_source) = read_keystore(&settings.keystore, &key_name)?;
        let roots = Arc::new(read_truststore(&settings.truststore, &key_name)?);
        let (trust_key, trust_file) = match &settings.truststore {
            TrustStore::File(path) => (
                settings.key_name(keys::SSL_TRUSTSTORE_LOCATION),
                Some(path.clone()),
            ),
            TrustStore::Inline(_) => (settings.key_name(keys::SSL_TRUSTSTORE_CERTIFICATES), None),
        };
        let trust_error = |reason: String| TlsError {
            key: trust_key.clone(),
            file: trust_file.clone(),
            reason,
        };
        let key_error = |e: rustls::Error| TlsError {
            key: key_source.0.clone(),
            file: key_source.1.clone(),
            reason: format!("the key does not go with the certificate chain, or is unusable: {e}"),
        };
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| trust_error(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| trust_error(e.to_string()))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(key_error)?;
        let client = verifying_client(roots, provider, settings.check_hostname)
            .map_err(|e| trust_error(e.to_string()))?
            .with_client_auth_cert(chain, key)
            .map_err(key_error)?;
        Ok(PeerTls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// The rustls configuration accepting peers, for `crate::fuzzing`, which drives handshakes
    /// in memory.
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// The rustls configuration dialing peers (see [`PeerTls::server_config`]).
    pub(crate) fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }

    /// The server side of a handshake: the stream, and the node ids the client's certificate
    /// names.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<(PeerStream, Vec<NodeId>)> {
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsAcceptor::from(self.server.clone())
            .accept(tcp)
            .await?;
        let ids = certified_ids(tls.get_ref().1);
        Ok((split(tls), ids))
    }

    /// The client side of a handshake with `peer` at `host`: its certificate must name `peer`.
    /// `None`: a bootstrap server, whose id is not known before it answers; any node id a
    /// trusted certificate names is accepted.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        host: &str,
        peer: Option<NodeId>,
    ) -> io::Result<PeerStream> {
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = tokio_rustls::TlsConnector::from(self.client.clone())
            .connect(name, tcp)
            .await?;
        let ids = certified_ids(tls.get_ref().1);
        if let Some(peer) = peer
            && !ids.contains(&peer)
        {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("the certificate at {host} names node ids {ids:?}, not {peer}"),
            ));
        }
        Ok(split(tls))
    }
}

/// The node ids the peer's end-entity certificate names, on either side of a handshake.
fn certified_ids(connection: &rustls::CommonState) -> Vec<NodeId> {
    connection
        .peer_certificates()
        .and_then(|c| c.first())
        .map(node_ids_named)
        .unwrap_or_default()
}

/// A TLS stream as the two halves a peer connection reads and writes.
fn split<T: AsyncRead + AsyncWrite + Send + 'static>(tls: T) -> PeerStream {
    let (read, write) = tokio::io::split(tls);
    PeerStream {
        read: Box::new(read),
        write: Box::new(write),
    }
}

/// The node id a certificate names: its one `kraft://node/<id>` URI alternative name, the id in
/// canonical decimal. A certificate with none, with two, or with `03` or `+3` names none (it
/// may connect only as an id-less client).
pub fn node_ids_named(cert: &CertificateDer<'_>) -> Vec<NodeId> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    let named: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => uri.strip_prefix(NODE_URI_PREFIX),
            _ => None,
        })
        .collect();
    match named[..] {
        [id] if is_canonical_id(id) => id.parse::<i32>().map(NodeId).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn is_canonical_id(text: &str) -> bool {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits && (text == "0" || !text.starts_with('0'))
}

/// The key a store was read from, and its file if it is one.
pub(super) type KeySource = (String, Option<PathBuf>);

/// The key name each `ssl.*` setting was read from (listener-scoped or plain).
pub(super) type KeyName<'a> = dyn Fn(&'static str) -> String + 'a;

pub(super) fn read_keystore(
    store: &KeyStore,
    key_name: &KeyName<'_>,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        PrivateKeyDer<'static>,
        KeySource,
    ),
    TlsError,
> {
    let (chain_text, key_text, chain_source, key_source) = match store {
        KeyStore::File(path) => {
            let key = key_name(keys::SSL_KEYSTORE_LOCATION);
            let text = read_file(&key, path)?;
            let source = (key, Some(path.clone()));
            (text.clone(), text, source.clone(), source)
        }
        KeyStore::Inline { chain, key } => (
            normalize_pem(chain).into_bytes(),
            normalize_pem(key).into_bytes(),
            (key_name(keys::SSL_KEYSTORE_CERTIFICATE_CHAIN), None),
            (key_name(keys::SSL_KEYSTORE_KEY), None),
        ),
    };
    let error = |(key, file): &KeySource, reason: String| TlsError {
        key: key.clone(),
        file: file.clone(),
        reason,
    };
    let chain = certificates(&chain_text).map_err(|r| error(&chain_source, r))?;
    let keys_found = PrivateKeyDer::pem_slice_iter(&key_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(&key_source, format!("unreadable private key: {e:?}")))?;
    let key = match <[PrivateKeyDer<'static>; 1]>::try_from(keys_found) {
        Ok([key]) => key,
        Err(found) => {
            let reason = format!(
                "expected one unencrypted private key (PKCS#8, PKCS#1 or SEC1), found {}",
                found.len()
            );
            return Err(error(&key_source, reason));
        }
    };
    Ok((chain, key, key_source))
}

pub(super) fn read_truststore(
    store: &TrustStore,
    key_name: &KeyName<'_>,
) -> Result<RootCertStore, TlsError> {
    let (text, key, file) = match store {
        TrustStore::File(path) => {
            let key = key_name(keys::SSL_TRUSTSTORE_LOCATION);
            (read_file(&key, path)?, key, Some(path.clone()))
        }
        TrustStore::Inline(text) => (
            normalize_pem(text).into_bytes(),
            key_name(keys::SSL_TRUSTSTORE_CERTIFICATES),
            None,
        ),
    };
    let error = |reason: String| TlsError {
        key: key.clone(),
        file: file.clone(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in certificates(&text).map_err(error)? {
        roots
            .add(cert)
            .map_err(|e| error(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The CERTIFICATE blocks of `pem`, at least one.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("unreadable certificate: {e:?}"))?;
    match certs.is_empty() {
        true => Err("no PEM CERTIFICATE block".to_string()),
        false => Ok(certs),
    }
}

/// Largest PEM store read. A CA bundle of every public root is a few hundred KiB; a path such
/// as /dev/zero must end in an error, not in reading without end.
pub const MAX_STORE_BYTES: u64 = 16 * 1024 * 1024;

fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let error = |reason: String| TlsError {
        key: key.to_string(),
        file: Some(path.to_path_buf()),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_STORE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(e.to_string()))?;
    match bytes.len() as u64 > MAX_STORE_BYTES {
        true => Err(error(format!("larger than {MAX_STORE_BYTES} bytes"))),
        false => Ok(bytes),
    }
}

/// Inline PEM from a `.properties` file arrives on one line (continuation lines are joined):
/// every `-----…-----` marker and base64 token goes back on a line of its own.
fn normalize_pem(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    let tokens = |part: &str, out: &mut String| {
        for token in part.split_whitespace() {
            out.push_str(token);
            out.push('\n');
        }
    };
    while let Some(start) = rest.find("-----") {
        tokens(&rest[..start], &mut out);
        let after = &rest[start + 5..];
        let Some(end) = after.find("-----") else {
            break;
        };
        out.push_str("-----");
        out.push_str(after[..end].trim());
        out.push_str("-----\n");
        rest = &after[end + 5..];
    }
    tokens(rest, &mut out);
    out
}

/// A client configuration that checks a server's chain against `roots` (and, when
/// `check_hostname`, that it names the dialed host), before the client's own certificate is
/// chosen: what a peer and a tool dial with.
pub(super) fn verifying_client(
    roots: Arc<rustls::RootCertStore>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    check_hostname: bool,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, rustls::Error> {
    let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = match check_hostname {
        true => server_verifier,
        false => Arc::new(AnyHostName(server_verifier)),
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier))
}

/// `ssl.endpoint.identification.algorithm=` (empty): every check of a peer's certificate but
/// the host name. (The node id in it is still checked.)
#[derive(Debug)]
pub(super) struct AnyHostName(pub(super) Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_larger_than_the_bound_is_refused_not_read_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, vec![b'#'; MAX_STORE_BYTES as usize + 1]).unwrap();
        let e = read_file("ssl.truststore.location", &path).unwrap_err();
        assert!(e.reason.contains("larger than"), "{e:?}");
        std::fs::write(&path, vec![b'#'; 10]).unwrap();
        assert_eq!(read_file("k", &path).unwrap().len(), 10);
    }

    #[test]
    fn only_canonical_decimal_ids_count() {
        for (text, ok) in [
            ("3", true),
            ("0", true),
            ("2147483647", true),
            ("03", false),
            ("+3", false),
            ("", false),
            ("-1", false),
            ("3a", false),
        ] {
            let canonical = is_canonical_id(text) && text.parse::<i32>().is_ok();
            assert_eq!(canonical, ok, "{text}");
        }
    }

    #[test]
    fn inline_pem_joined_onto_one_line_is_split_again() {
        let joined = "-----BEGIN CERTIFICATE----- MIIB abc def== -----END CERTIFICATE-----";
        assert_eq!(
            normalize_pem(joined),
            "-----BEGIN CERTIFICATE-----\nMIIB\nabc\ndef==\n-----END CERTIFICATE-----\n"
        );
    }
}
