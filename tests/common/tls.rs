//! Certificates made for the tests with rcgen: a CA, and node certificates that name their node
//! id as kraft requires (`kraft://node/<id>`), usable as server and client, for `localhost` and
//! 127.0.0.1.

use std::path::{Path, PathBuf};

use kraft::config::{KeyStore, ListenerSecurity, TlsSettings, TrustStore};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};

pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A node's (or client's) certificate chain and key, as PEM.
pub struct Identity {
    pub chain_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate naming node `id` (or no node id).
    pub fn identity(&self, id: Option<i32>) -> Identity {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        if let Some(id) = id {
            let uri = format!("kraft://node/{id}").try_into().unwrap();
            params.subject_alt_names.push(SanType::URI(uri));
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params
            .distinguished_name
            .push(DnType::CommonName, format!("node-{id:?}"));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Node `id`'s settings, with its files written into `dir`: one key+chain file, one CA file.
    pub fn node_settings(&self, id: i32, dir: &Path) -> ListenerSecurity {
        let identity = self.identity(Some(id));
        let keystore = dir.join(format!("node-{id}.pem"));
        std::fs::write(
            &keystore,
            format!("{}{}", identity.key_pem, identity.chain_pem),
        )
        .unwrap();
        let truststore = self.write_ca(dir);
        ListenerSecurity::Ssl(TlsSettings {
            keystore: KeyStore::File(keystore),
            truststore: TrustStore::File(truststore),
            check_hostname: true,
            scoped_keys: Default::default(),
        })
    }

    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.pem()).unwrap();
        path
    }
}
