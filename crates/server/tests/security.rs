//! Security against a hostile network (issue 14), on in-process clusters over loopback:
//! the peer transport's limits, appends refused at decode, TLS on every surface (peers
//! mutual, with the member ID bound to the certificate), certificates reloaded without a
//! restart, and unmodified TLS clients (`redis-cli --tls`, the `redis` crate's
//! `rediss://`).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{bulk, ok, Cluster};
use raft::{Entry, EntryKind, Message, MessageBody};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use server::cli::{ClientTls, RespClient};
use server::config::TlsFiles;
use server::metrics::LoopMetrics;
use server::tls::identity::member_server_name;
use server::transport::codec::{encode_frame, Frame};

const MAX_FRAME: usize = 1 << 20;

fn frame_bytes(f: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(f, MAX_FRAME, &mut out).expect("encodes");
    out.to_vec()
}

/// The `Hello` a genuine member `from` of `c` sends to `to`: with the cluster's ID, so
/// that what follows is judged on its own (the node answers with its own `Hello`).
fn hello(c: &Cluster, from: u64, to: u64) -> Vec<u8> {
    let id = &c.node(to).identity;
    frame_bytes(&Frame::Hello {
        from,
        to,
        cluster: Some(id.current().expect("the node has its cluster ID")),
        bootstrap: id.bootstrap(),
        seen_you: false,
    })
}

/// Waits (up to 5 s) for `read` on a stream to report the peer closed it; false if it
/// stays open that long.
fn closed_by_peer(s: &mut impl Read) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // e.g. a TLS alert record: read on to the end
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return true, // reset, or a TLS alert surfaced as an error
        }
    }
    false
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

fn metrics(c: &Cluster, id: u64) -> Arc<LoopMetrics> {
    c.node(id).node.metrics.clone()
}

/// Waits until `cond` holds, up to 5 s.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A write through `via` (a follower forwards it) and a read of it from every node.
fn serves(c: &Cluster, via: u64, key: &str, tls: Option<&ClientTls>) {
    let mut cl =
        RespClient::connect_with(&c.client_addr(via).to_string(), Duration::from_secs(2), tls)
            .expect("connect");
    assert_eq!(cl.call(&["SET", key, "v"]).unwrap(), ok());
    assert_eq!(cl.call(&["GET", key]).unwrap(), bulk("v"));
}

// ---- the peer transport's limits (plain TCP) ----

#[test]
fn peer_connections_over_the_limit_are_refused_and_the_node_keeps_serving() {
    let c = Cluster::start(3, |cfg| cfg.limits.max_peer_connections = 6);
    c.wait_leader(Duration::from_secs(10));
    // Nodes 2 and 3 hold two of node 1's slots once their writers are connected.
    for id in [2, 3] {
        c.wait_status(id, Duration::from_secs(5), |s| {
            s.peers.iter().any(|p| p.id == 1 && p.connected)
        });
    }
    let addr = c.node(1).peer_addr;
    // Four idle connections take the other slots; the next six are refused.
    let idle: Vec<TcpStream> = (0..10).map(|_| connect(addr)).collect();
    let m = metrics(&c, 1);
    eventually("refusals counted", || m.peer_connections_refused.get() >= 6);
    serves(&c, 1, "limit", None);
    drop(idle);
}

#[test]
fn a_peer_connection_that_never_says_hello_is_closed_at_the_deadline() {
    let c = Cluster::start(1, |cfg| {
        cfg.limits.peer_handshake_timeout = Duration::from_millis(300)
    });
    let mut s = connect(c.node(1).peer_addr);
    let started = Instant::now();
    assert!(closed_by_peer(&mut s), "a silent connection stays open");
    assert!(started.elapsed() < Duration::from_secs(3));
    let m = metrics(&c, 1);
    eventually("refusal counted", || m.peer_handshakes_refused.get() == 1);
}

/// Before the handshake only a `Hello`-sized frame is read: a longer length prefix
/// closes the connection at once, without waiting for (or allocating) its body.
#[test]
fn a_large_frame_before_hello_is_refused_without_waiting_for_it() {
    let c = Cluster::start(1, |_| {});
    let mut s = connect(c.node(1).peer_addr);
    s.write_all(&(512u32 << 10).to_be_bytes()).unwrap();
    let started = Instant::now();
    assert!(
        closed_by_peer(&mut s),
        "the connection waits for a 512 KiB hello"
    );
    // Well inside the 5 s handshake deadline: refused on the length alone.
    assert!(started.elapsed() < Duration::from_secs(2));
    let m = metrics(&c, 1);
    eventually("refusal counted", || m.peer_handshakes_refused.get() == 1);
}

/// In a three-node cluster: the leader, a follower to send forged frames to, and the
/// other follower, whose identity they claim.
fn leader_victim_and_sender(c: &Cluster) -> (u64, u64, u64) {
    let leader = c.wait_leader(Duration::from_secs(10));
    let victim = if leader == 1 { 2 } else { 1 };
    let sender = (1..=3).find(|&i| i != leader && i != victim).unwrap();
    (leader, victim, sender)
}

/// An append with a gap in its entries, sent by an authenticated peer, is refused at
/// decode: the connection drops, the refusal is counted, the node keeps serving and the
/// log never holds the forged entries.
#[test]
fn an_append_with_a_gap_is_rejected_at_decode_and_the_node_keeps_serving() {
    let c = Cluster::start(3, |_| {});
    let (leader, victim, sender) = leader_victim_and_sender(&c);
    let before = c.status(victim);
    let entry = |index| Entry {
        term: before.term,
        index,
        kind: EntryKind::Normal,
        data: Bytes::from_static(b"forged"),
    };
    let forged = Frame::Raft(Message {
        from: sender,
        to: victim,
        term: before.term,
        body: MessageBody::Append {
            prev_index: before.last_index,
            prev_term: before.term,
            entries: vec![entry(before.last_index + 1), entry(before.last_index + 3)],
            commit: 0,
            stamp: 0,
            leader: sender,
            relay: vec![],
            relayed_by: vec![],
        },
    });
    let mut s = connect(c.node(victim).peer_addr);
    s.write_all(&hello(&c, sender, victim)).unwrap();
    s.write_all(&frame_bytes(&forged)).unwrap();
    assert!(closed_by_peer(&mut s), "the forged append was accepted");
    let m = metrics(&c, victim);
    eventually("rejection counted", || m.peer_frames_rejected.get() == 1);
    serves(&c, victim, "after-gap", None);
    assert_eq!(c.wait_leader(Duration::from_secs(10)), leader);
}

/// A vote request with a term no honest peer can reach (2^40 above ours) is dropped by
/// the core, never adopted, and counted where an operator sees it: /metrics.
#[test]
fn an_absurd_term_is_refused_by_the_core_and_exported_as_a_metric() {
    let c = Cluster::start(3, |_| {});
    let (_, victim, sender) = leader_victim_and_sender(&c);
    let before = c.status(victim);
    let absurd = Frame::Raft(Message {
        from: sender,
        to: victim,
        term: before.term + (1 << 40),
        body: MessageBody::Vote {
            last_index: before.last_index + 1_000,
            last_term: before.term + (1 << 40),
            transfer: false,
        },
    });
    let mut s = connect(c.node(victim).peer_addr);
    s.write_all(&hello(&c, sender, victim)).unwrap();
    s.write_all(&frame_bytes(&absurd)).unwrap();
    let admin = c.node(victim).admin_addr;
    let line = "raftkv_core_refusals_total{reason=\"absurd_term\"} 1";
    eventually("refusal exported", || {
        common::http_get(admin, "/metrics")
            .1
            .lines()
            .any(|l| l == line)
    });
    assert!(
        c.status(victim).term < before.term + (1 << 40),
        "term adopted"
    );
    serves(&c, victim, "after-absurd-term", None);
}

/// A snapshot that would make its receiver the cluster's only voter, sent in the
/// leader's name over an authenticated peer connection: the receiver refuses it (the
/// core's membership check), counts it, keeps its membership and log, and the cluster
/// serves on under the same leader — no node elects itself alone.
#[test]
fn a_one_voter_snapshot_is_refused_and_the_cluster_serves_on() {
    let c = Cluster::start(3, |_| {});
    let (leader, victim, _) = leader_victim_and_sender(&c);
    serves(&c, leader, "before-snapshot", None);
    let before = c.status(victim);
    let forged = Frame::Raft(Message {
        from: leader,
        to: victim,
        term: before.term,
        body: MessageBody::Snapshot {
            meta: raft::SnapshotMeta {
                index: before.last_index + 100,
                term: before.term,
                membership: raft::Membership::new([victim]),
            },
            offset: 0,
            data: Bytes::from_static(b"forged state"),
            done: true,
            stamp: 1,
        },
    });
    let mut s = connect(c.node(victim).peer_addr);
    s.write_all(&hello(&c, leader, victim)).unwrap();
    s.write_all(&frame_bytes(&forged)).unwrap();
    eventually("the snapshot refused", || {
        c.status(victim).refused_by_core.snapshots == 1
    });
    let after = c.status(victim);
    assert_eq!(after.snapshots_installed, before.snapshots_installed);
    assert!(after.last_index < before.last_index + 100, "{after:?}");
    assert_eq!(
        after.membership.voters, before.membership.voters,
        "the victim's membership changed"
    );
    assert_eq!(after.membership.voters.len(), 3);
    drop(s);
    serves(&c, victim, "after-snapshot", None);
    assert_eq!(c.wait_leader(Duration::from_secs(10)), leader);
    assert_eq!(c.status(victim).term, before.term, "an election happened");
}

/// `TimeoutNow` from a follower, over an authenticated peer connection, does not make
/// its target campaign: the leader stays, the refusal is exported, and writes go on.
#[test]
fn timeout_now_from_a_follower_leaves_the_leader_in_place() {
    let c = Cluster::start(3, |_| {});
    let (leader, victim, sender) = leader_victim_and_sender(&c);
    let term = c.status(victim).term;
    let mut s = connect(c.node(victim).peer_addr);
    s.write_all(&hello(&c, sender, victim)).unwrap();
    for t in [term, term + 1] {
        let forged = Frame::Raft(Message {
            from: sender,
            to: victim,
            term: t,
            body: MessageBody::TimeoutNow,
        });
        s.write_all(&frame_bytes(&forged)).unwrap();
    }
    let admin = c.node(victim).admin_addr;
    let line = "raftkv_core_refusals_total{reason=\"timeout_now_not_from_leader\"} 2";
    eventually("refusals exported", || {
        common::http_get(admin, "/metrics")
            .1
            .lines()
            .any(|l| l == line)
    });
    let after = c.status(victim);
    assert_eq!((after.term, after.leader), (term, Some(leader)));
    serves(&c, victim, "after-timeout-now", None);
    assert_eq!(c.wait_leader(Duration::from_secs(10)), leader);
}

/// The leader alone holds a write (both followers stopped) while an authenticated peer
/// connection claiming to be one of them answers for more than the leader sent it: the
/// write must not be acknowledged (it would be a commit on a minority of one, lost if
/// another node became leader), the forgeries are counted, and once the followers are
/// back the cluster serves again.
///
/// What this defence cannot do, and what stops it instead: an answer for exactly what
/// the leader queued for that member (`index` here) is indistinguishable from the
/// member's own. Raft is not Byzantine-tolerant: whoever holds a member's identity can
/// acknowledge without storing. So the member's identity must be authenticated — mutual
/// TLS with the ID bound to the certificate — and protected mode refuses peers beyond
/// loopback without it (README, "Security").
fn forged_answers_commit_nothing(forge: impl Fn(u64, u64, u64) -> MessageBody) {
    let mut c = Cluster::start(3, |_| {});
    let leader = c.wait_leader(Duration::from_secs(10));
    let followers: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    serves(&c, leader, "before", None);
    for &f in &followers {
        c.stop(f);
    }
    let before = c.status(leader);
    let addr = c.client_addr(leader).to_string();
    let write = std::thread::spawn(move || {
        let mut cl = RespClient::connect_with(&addr, Duration::from_secs(4), None).unwrap();
        cl.call(&["SET", "only-on-the-leader", "v"])
    });
    let at = c.wait_status(leader, Duration::from_secs(5), |s| {
        s.last_index > before.last_index
    });
    let index = at.last_index;
    let (forger, other) = (followers[0], followers[1]);
    let mut s = connect(c.node(leader).peer_addr);
    s.write_all(&hello(&c, forger, leader)).unwrap();
    for claimed in [index + 1, index + 1_000] {
        let forged = Frame::Raft(Message {
            from: forger,
            to: leader,
            term: at.term,
            body: forge(claimed, forger, other),
        });
        s.write_all(&frame_bytes(&forged)).unwrap();
    }
    let refused = || c.status(leader).refused_by_core.forged_acks;
    eventually("the forged answers counted", || refused() >= 2);
    assert!(
        c.status(leader).commit_index < index,
        "the leader committed on a forged answer: index {index}, before {before:?}, now {:?}",
        c.status(leader)
    );
    let answer = write.join().unwrap();
    assert!(
        answer.as_ref().map_or(true, |v| *v != ok()),
        "a write only the leader holds was acknowledged: {answer:?}"
    );
    drop(s);
    for &f in &followers {
        c.restart(f);
    }
    c.wait_leader(Duration::from_secs(10));
    for id in 1..=3 {
        serves(&c, id, &format!("after-{id}"), None);
    }
}

/// A forged acknowledgement (`AppendResp` claiming a match index the leader never sent
/// that peer), over an authenticated peer connection.
#[test]
fn a_forged_match_index_commits_nothing_and_the_cluster_serves_on() {
    forged_answers_commit_nothing(|index, _, _| MessageBody::AppendResp {
        success: true,
        index,
        hint_term: 0,
        rejected: 0,
        stamp: 1,
        vouch: vec![],
        vouch_index: 0,
    });
}

/// The same through a vouch: an answer that vouches for the other follower at an index
/// the leader never sent it.
#[test]
fn a_forged_vouch_commits_nothing_and_the_cluster_serves_on() {
    forged_answers_commit_nothing(|index, forger, other| MessageBody::AppendResp {
        success: true,
        index: 0,
        hint_term: 0,
        rejected: 0,
        stamp: 1,
        vouch: vec![other, forger],
        vouch_index: index,
    });
}

// ---- TLS ----

struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new(nodes: u64) -> Certs {
        let dir = tempfile::tempdir().unwrap();
        server::tls::certs::generate(dir.path(), nodes, &[]).expect("certs");
        Certs { dir }
    }
    fn files(&self, id: u64) -> TlsFiles {
        TlsFiles::in_dir(self.dir.path(), id)
    }
    fn ca(&self) -> std::path::PathBuf {
        self.files(1).ca
    }
    fn client(&self) -> ClientTls {
        ClientTls::from_ca_file(&self.ca()).unwrap()
    }
}

fn tls_cluster(n: u64, certs: &Certs) -> Cluster {
    let dir = certs.dir.path().to_path_buf();
    let c = Cluster::start(n, move |cfg| cfg.tls = Some(TlsFiles::in_dir(&dir, cfg.id)));
    c.wait_leader(Duration::from_secs(10));
    c
}

/// A TLS client that presents node `as_id`'s certificate from `certs` and trusts
/// `trust`'s CA, dialling member `to`.
fn peer_tls(
    addr: SocketAddr,
    to: u64,
    certs: &Certs,
    as_id: u64,
    trust: &Path,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let files = certs.files(as_id);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(trust).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), member_server_name(to)).unwrap();
    rustls::StreamOwned::new(conn, connect(addr))
}

#[test]
fn a_tls_cluster_serves_clients_and_admin_over_tls() {
    let certs = Certs::new(3);
    let c = tls_cluster(3, &certs);
    let tls = certs.client();
    for via in 1..=3 {
        serves(&c, via, &format!("k{via}"), Some(&tls));
    }
    // HTTPS admin.
    let mut s = rustls::StreamOwned::new(
        rustls::ClientConnection::new(client_config(&certs.ca()), "127.0.0.1".try_into().unwrap())
            .unwrap(),
        connect(c.node(1).admin_addr),
    );
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.flush().unwrap();
    let mut body = String::new();
    let _ = read_all(&mut s, &mut body);
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert_eq!(metrics(&c, 1).peer_handshakes_refused.get(), 0);
}

fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Reads until the end or a pause (the admin server closes after one answer).
fn read_all(s: &mut impl Read, out: &mut String) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[test]
fn a_peer_certificate_from_another_ca_is_refused() {
    let certs = Certs::new(3);
    let other = Certs::new(3);
    let c = tls_cluster(3, &certs);
    // The impostor trusts the real CA (it knows the cluster) but its own certificate
    // comes from another one.
    let mut s = peer_tls(c.node(1).peer_addr, 1, &other, 2, &certs.ca());
    let _ = s.write_all(&hello(&c, 2, 1));
    let _ = s.flush();
    assert!(closed_by_peer(&mut s), "a foreign certificate was accepted");
    let m = metrics(&c, 1);
    eventually("refusal counted", || m.peer_handshakes_refused.get() >= 1);
    serves(&c, 1, "after-foreign-ca", Some(&certs.client()));
}

#[test]
fn a_valid_certificate_claiming_another_members_id_is_refused() {
    let certs = Certs::new(3);
    let c = tls_cluster(3, &certs);
    let addr = c.node(1).peer_addr;
    // Node 3's genuine certificate, saying it is node 2: refused.
    let mut s = peer_tls(addr, 1, &certs, 3, &certs.ca());
    s.write_all(&hello(&c, 2, 1)).unwrap();
    s.flush().unwrap();
    assert!(
        closed_by_peer(&mut s),
        "node 3's certificate passed as node 2"
    );
    let m = metrics(&c, 1);
    eventually("refusal counted", || m.peer_handshakes_refused.get() == 1);
    // The same certificate saying who it is: accepted (the connection stays open).
    let mut s = peer_tls(addr, 1, &certs, 3, &certs.ca());
    s.write_all(&hello(&c, 3, 1)).unwrap();
    s.flush().unwrap();
    assert!(!closed_by_peer(&mut s), "node 3 could not say it is node 3");
    assert_eq!(metrics(&c, 1).peer_handshakes_refused.get(), 1);
    serves(&c, 1, "after-impostor", Some(&certs.client()));
}

#[test]
fn plaintext_to_tls_ports_is_refused() {
    let certs = Certs::new(1);
    let c = tls_cluster(1, &certs);
    // Peer port: a plaintext hello is not a TLS ClientHello.
    let mut s = connect(c.node(1).peer_addr);
    s.write_all(&hello(&c, 2, 1)).unwrap();
    assert!(closed_by_peer(&mut s));
    // RESP port: PING gets no PONG.
    let mut s = connect(c.client_addr(1));
    s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut got = String::new();
    let _ = read_all(&mut s, &mut got);
    assert!(!got.contains("PONG"), "{got:?}");
    let m = metrics(&c, 1);
    eventually("refusals counted", || {
        m.peer_handshakes_refused.get() == 1 && m.client_tls_refused.get() == 1
    });
}

#[test]
fn redis_cli_over_tls_works() {
    let certs = Certs::new(3);
    let c = tls_cluster(3, &certs);
    let port = c.client_addr(2).port().to_string();
    let ca = certs.ca();
    let cli = |args: &[&str]| {
        let o = std::process::Command::new("redis-cli")
            .args([
                "--tls",
                "--cacert",
                ca.to_str().unwrap(),
                "-h",
                "127.0.0.1",
                "-p",
                &port,
            ])
            .args(args)
            .output()
            .expect("redis-cli runs (scripts/test.sh installs redis-tools)");
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(cli(&["SET", "cli-key", "over-tls"]), "OK");
    assert_eq!(cli(&["GET", "cli-key"]), "over-tls");
}

#[test]
fn the_redis_crate_over_rediss_works() {
    let certs = Certs::new(3);
    let c = tls_cluster(3, &certs);
    let url = format!("rediss://127.0.0.1:{}/", c.client_addr(3).port());
    let ca = std::fs::read(certs.ca()).unwrap();
    let client = redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca),
        },
    )
    .expect("client");
    let mut conn = client.get_connection().expect("TLS connection");
    let _: () = redis::cmd("SET")
        .arg("crate-key")
        .arg("rediss")
        .query(&mut conn)
        .expect("SET");
    let v: String = redis::cmd("GET").arg("crate-key").query(&mut conn).unwrap();
    assert_eq!(v, "rediss");
}

#[test]
fn new_certificate_files_are_used_without_a_restart() {
    let first = Certs::new(1);
    let second = Certs::new(1);
    let live = tempfile::tempdir().unwrap();
    let copy = |from: &Certs| {
        for (src, dst) in [
            (from.files(1).ca, "ca.pem"),
            (from.files(1).cert, "node-1.pem"),
            (from.files(1).key, "node-1.key"),
        ] {
            // Write then rename, as a certificate manager does.
            let tmp = live.path().join(format!("{dst}.tmp"));
            std::fs::copy(src, &tmp).unwrap();
            std::fs::rename(&tmp, live.path().join(dst)).unwrap();
        }
    };
    copy(&first);
    let dir = live.path().to_path_buf();
    let c = Cluster::start(1, move |cfg| cfg.tls = Some(TlsFiles::in_dir(&dir, 1)));
    c.wait_leader(Duration::from_secs(10));
    let addr = c.client_addr(1).to_string();
    let connects = |certs: &Certs| {
        RespClient::connect_with(&addr, Duration::from_secs(2), Some(&certs.client()))
            .and_then(|mut cl| cl.call(&["PING"]))
            .is_ok()
    };
    assert!(connects(&first));
    assert!(!connects(&second));
    let kept = RespClient::connect_with(&addr, Duration::from_secs(2), Some(&first.client()));
    copy(&second);
    assert!(connects(&second), "the new certificate is not used");
    assert!(!connects(&first), "the old certificate is still used");
    // A connection opened before the change keeps working.
    assert_eq!(
        kept.unwrap().call(&["PING"]).unwrap(),
        server::resp::codec::Value::Simple("PONG".into())
    );
}
