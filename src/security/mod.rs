//! Authenticated, encrypted peer connections: mutual TLS on rustls (ring as the provider, no
//! OpenSSL), and the rule that binds a peer's node id to its certificate.
//!
//! **The rule.** A node's certificate names its node id in a URI subject alternative name
//! `kraft://node/<id>`. An inbound peer whose handshake claims id N must present a certificate
//! (from a trusted CA) naming N; a node dialing peer N accepts only a certificate naming N (and,
//! unless `ssl.endpoint.identification.algorithm` is empty, the host it dialed). An id-less
//! client (a tool following the log) needs a trusted certificate and can only fetch as id-less.
//!
//! Owns loading the PEM stores into rustls configurations (one clear error naming the key and
//! file for anything wrong, at start-up) and the TLS handshakes. It must never accept a peer
//! whose certificate does not name the id it speaks for, and never fall back to plaintext.
//!
//! A tool's client side (`kraft quorum --command-config`) loads the same PEM stores through the
//! same code into a plain client configuration ([`client_config`]): it checks the server's
//! certificate against the trusted CAs and presents its own if it has one.

mod client_tls;
mod peer_tls;

pub use client_tls::client_config;

pub use peer_tls::{PeerStream, PeerTls, TlsError, node_ids_named, plain_stream};
