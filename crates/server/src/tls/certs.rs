//! `raftkv certs`: a CA and one certificate per node for a test or local cluster.
//!
//! Files written to the directory (keys readable by the owner only):
//! `ca.pem`, `ca.key`, and for each node N `node-N.pem`, `node-N.key`. Node N's
//! certificate names `raftkv-member-N` (its member identity, see [`super::identity`])
//! and the hosts clients reach it by (`localhost`, `127.0.0.1`, `::1` and any given),
//! and may serve as both TLS server and client (peers authenticate each other).
//!
//! The CA's key stays in the directory so more certificates could be signed by hand;
//! for a real deployment use the organisation's CA and keep its key elsewhere.

use std::io::Write;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use super::identity::member_name;
use crate::config::TlsFiles;

/// Names every node certificate carries besides its member name.
pub const DEFAULT_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Writes a new CA and certificates for nodes `1..=nodes` into `dir` (created if
/// missing). Refuses to overwrite an existing CA: certificates signed by it would stop
/// being trusted.
pub fn generate(dir: &Path, nodes: u64, extra_hosts: &[String]) -> Result<(), String> {
    if nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let ca_file = TlsFiles::in_dir(dir, 1).ca;
    if ca_file.exists() {
        return Err(format!(
            "{} exists already: remove it (and the certificates it signed) first",
            ca_file.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let gen_err = |e: rcgen::Error| format!("cannot generate a certificate: {e}");

    let ca_key = KeyPair::generate().map_err(gen_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "raftkv cluster CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).map_err(gen_err)?;

    for id in 1..=nodes {
        let mut names = vec![member_name(id)];
        names.extend(DEFAULT_HOSTS.iter().map(|h| h.to_string()));
        names.extend(extra_hosts.iter().cloned());
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut params = CertificateParams::new(names).map_err(gen_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, member_name(id));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        // ECDSA keys (rcgen's default): signing only.
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(gen_err)?;
        let files = TlsFiles::in_dir(dir, id);
        write_file(&files.cert, &cert.pem(), false)?;
        write_file(&files.key, &key.serialize_pem(), true)?;
    }
    write_file(&dir.join("ca.key"), &ca_key.serialize_pem(), true)?;
    // Last: its presence says the directory is complete.
    write_file(&ca_file, &ca.pem(), false)?;
    Ok(())
}

fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mode = if secret { 0o600 } else { 0o644 };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
