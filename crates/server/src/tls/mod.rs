//! TLS (rustls, ring provider) for the three surfaces, from the files in the config's
//! `[tls]` section (`ca`, `cert`, `key`, PEM):
//!
//! - peers: mutual TLS. Both ends present the node's certificate and accept only one
//!   signed by the cluster CA; the member ID is bound to the certificate (see
//!   [`identity`]): the dialler asks for `raftkv-member-N` as the server name, the
//!   acceptor checks the client certificate against the ID its `Hello` claims;
//! - RESP and HTTP admin: server TLS with the node's certificate; clients are not asked
//!   for one (`redis-cli --tls --cacert ca.pem`, `rediss://`, `curl --cacert`).
//!
//! New certificate files are picked up without a restart: every new connection checks
//! the files' modification times and sizes (one `stat` each) and rebuilds the
//! configurations when they changed. Connections already open keep the keys they
//! started with. Files that do not load (say a certificate replaced before its key) keep
//! the previous configuration in use, with one warning per change seen.

pub mod certs;
pub mod client;
pub mod identity;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use raft::NodeId;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::TlsFiles;

/// Per file (ca, cert, key): modification time and size, `None` if it cannot be read.
type Stamp = [Option<(SystemTime, u64)>; 3];

/// The node's TLS configurations, rebuilt when its certificate files change.
pub struct Tls {
    me: NodeId,
    files: TlsFiles,
    state: Mutex<State>,
}

struct State {
    loaded: Arc<Loaded>,
    /// Files seen changed but not loadable, so the warning is given once per change.
    failed: Option<Stamp>,
}

struct Loaded {
    stamp: Stamp,
    peer_server: Arc<ServerConfig>,
    peer_client: Arc<ClientConfig>,
    public_server: Arc<ServerConfig>,
}

impl Tls {
    /// Loads the files; any problem is an error naming the file (the node must not
    /// start with TLS half set up).
    pub fn load(files: &TlsFiles, me: NodeId) -> Result<Tls, String> {
        let loaded = build(files, me, stamp(files))?;
        Ok(Tls {
            me,
            files: files.clone(),
            state: Mutex::new(State {
                loaded: Arc::new(loaded),
                failed: None,
            }),
        })
    }

    /// For an accepted peer connection: demands a client certificate from the CA.
    pub fn peer_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current().peer_server.clone())
    }

    /// For dialling a peer (connect with [`identity::member_server_name`]).
    pub fn peer_connector(&self) -> TlsConnector {
        TlsConnector::from(self.current().peer_client.clone())
    }

    /// For RESP and admin clients.
    pub fn public_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current().public_server.clone())
    }

    fn current(&self) -> Arc<Loaded> {
        let now = stamp(&self.files);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.loaded.stamp == now || state.failed == Some(now) {
            return state.loaded.clone();
        }
        match build(&self.files, self.me, now) {
            Ok(loaded) => {
                tracing::info!("certificate files changed: new connections use them");
                state.loaded = Arc::new(loaded);
                state.failed = None;
            }
            Err(e) => {
                tracing::warn!("certificate files changed but do not load (still using the previous ones): {e}");
                state.failed = Some(now);
            }
        }
        state.loaded.clone()
    }
}

fn stamp(files: &TlsFiles) -> Stamp {
    let one = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    [one(&files.ca), one(&files.cert), one(&files.key)]
}

fn build(files: &TlsFiles, me: NodeId, stamp: Stamp) -> Result<Loaded, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let read_certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{} holds no certificate", path.display()));
        }
        Ok(certs)
    };
    let chain = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "cannot read a private key from {}: {e}",
            files.key.display()
        )
    })?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&files.ca)? {
        roots
            .add(ca)
            .map_err(|e| format!("bad CA certificate in {}: {e}", files.ca.display()))?;
    }
    identity::certifies_member(&chain[0], me)
        .map_err(|e| format!("{}: {e}", files.cert.display()))?;
    let roots = Arc::new(roots);
    let tls_err = |e: rustls::Error| format!("TLS setup with {}: {e}", files.cert.display());

    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| format!("client verifier for {}: {e}", files.ca.display()))?;
    let peer_server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(tls_err)?;
    let peer_client = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain.clone(), key.clone_key())
        .map_err(tls_err)?;
    let public_server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_err)?;
    Ok(Loaded {
        stamp,
        peer_server: Arc::new(peer_server),
        peer_client: Arc::new(peer_client),
        public_server: Arc::new(public_server),
    })
}
