//! Client-side TLS for the CLI's RESP and admin clients: trusting the CA the nodes'
//! certificates chain to, and checking the name the client dialled.

use std::path::Path;
use std::sync::Arc;

/// Client-side TLS: the CA that the nodes' certificates chain to.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl ClientTls {
    /// The rustls configuration (trusting the CA), for other clients (`admin_client`).
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }

    pub fn from_ca_file(ca: &Path) -> std::io::Result<ClientTls> {
        use rustls_pki_types::pem::PemObject;
        let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let mut roots = rustls::RootCertStore::empty();
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
            .map_err(|e| bad(format!("{}: {e}", ca.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| bad(format!("{}: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("{}: {e}", ca.display())))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }
}

/// The host of `host:port` (`[v6]:port` without the brackets): the name a node's
/// certificate must carry.
pub fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
}
