//! A member's identity in its certificate.
//!
//! Node N's certificate carries the DNS name `raftkv-member-N` among its subject
//! alternative names, signed by the cluster CA. Both ends of a peer connection check it:
//! the dialling node asks for that name as the TLS server name (so it reaches member N
//! and no other), and the accepting node checks the client certificate against the ID
//! that the connection's `Hello` claims. One valid member therefore cannot speak as
//! another: its certificate names only itself.

use raft::NodeId;
use rustls_pki_types::{CertificateDer, DnsName, ServerName};

/// The DNS name that binds member `id` to its certificate.
pub fn member_name(id: NodeId) -> String {
    format!("raftkv-member-{id}")
}

/// `member_name(id)` as a TLS server name.
pub fn member_server_name(id: NodeId) -> ServerName<'static> {
    let dns = DnsName::try_from(member_name(id)).expect("raftkv-member-N is a valid DNS name");
    ServerName::DnsName(dns)
}

/// Whether `cert` (an end-entity certificate the TLS layer already verified against the
/// cluster CA) names member `id`.
pub fn certifies_member(cert: &CertificateDer<'_>, id: NodeId) -> Result<(), String> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| format!("cannot parse the peer's certificate: {e}"))?;
    ee.verify_is_valid_for_subject_name(&member_server_name(id))
        .map_err(|_| {
            format!(
                "the peer's certificate does not name {} (it claims to be node {id})",
                member_name(id)
            )
        })
}
