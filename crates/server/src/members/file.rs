//! `data_dir/membership`: this member's bootstrap membership (see `members/mod.rs`), and
//! the peer addresses it learned when it joined.
//!
//! ```toml
//! # raftkv: the configuration this member started from ... Written once; do not edit.
//! voters = [1, 2, 3]              # empty: the node joined an existing cluster
//! [addresses]                      # each bootstrap voter's peer address
//! 1 = "127.0.0.1:7101"
//! [hints]                          # members' addresses learned when joining
//! 1 = "127.0.0.1:7101"
//! ```
//!
//! Written durably (temporary file, sync, rename, directory sync) and read strictly: a
//! damaged file refuses the start with its name, so the node never guesses who votes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use raft::{Membership, NodeId};
use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "membership";

/// What the file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipFile {
    /// The bootstrap membership (unknown for a node that joined).
    pub membership: Membership,
    /// Peer addresses of the members, as the member this node joined through knew them.
    pub hints: BTreeMap<NodeId, String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    voters: Vec<NodeId>,
    #[serde(default)]
    addresses: BTreeMap<String, String>,
    #[serde(default)]
    hints: BTreeMap<String, String>,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

fn ids(table: BTreeMap<String, String>, what: &str) -> Result<BTreeMap<NodeId, String>, String> {
    table
        .into_iter()
        .map(|(k, v)| match k.parse::<NodeId>() {
            Ok(id) if id > 0 => Ok((id, v)),
            _ => Err(format!("{what}: {k:?} is not a member ID")),
        })
        .collect()
}

pub fn parse(text: &str) -> Result<MembershipFile, String> {
    let raw: OnDisk = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let mut membership = Membership::new(raw.voters.iter().copied());
    if membership.voters.len() != raw.voters.len() || membership.voters.contains(&0) {
        return Err("voters: repeated or zero IDs".into());
    }
    for (id, addr) in ids(raw.addresses, "addresses")? {
        if !membership.voters.contains(&id) {
            return Err(format!("addresses: {id} is no voter"));
        }
        membership.metadata.insert(id, super::metadata_of(&addr));
    }
    Ok(MembershipFile {
        membership,
        hints: ids(raw.hints, "hints")?,
    })
}

pub fn render(f: &MembershipFile) -> String {
    let raw = OnDisk {
        voters: f.membership.voters.iter().copied().collect(),
        addresses: super::addresses(&f.membership)
            .into_iter()
            .map(|(id, a)| (id.to_string(), a))
            .collect(),
        hints: f
            .hints
            .iter()
            .map(|(id, a)| (id.to_string(), a.clone()))
            .collect(),
    };
    let body = toml::to_string(&raw).unwrap_or_default();
    format!(
        "# raftkv: the configuration this member started from (the log and snapshots hold \
         every later one). Written once; do not edit.\n{body}"
    )
}

/// `Ok(None)`: no file yet.
pub fn read(data_dir: &Path) -> Result<Option<MembershipFile>, String> {
    crate::state_file::read(
        data_dir,
        FILE_NAME,
        "says which configuration this member started from",
        parse,
    )
}

/// Writes the file durably.
pub fn write(data_dir: &Path, f: &MembershipFile) -> Result<(), String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    crate::state_file::write(data_dir, FILE_NAME, &render(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_strict() {
        let mut m = Membership::new([1, 2, 3]);
        m.metadata
            .insert(2, super::super::metadata_of("10.0.0.2:7100"));
        let f = MembershipFile {
            membership: m,
            hints: [(1, "10.0.0.1:7100".to_string())].into(),
        };
        assert_eq!(parse(&render(&f)), Ok(f.clone()));
        let joined = MembershipFile {
            membership: Membership::default(),
            hints: BTreeMap::new(),
        };
        assert_eq!(parse(&render(&joined)), Ok(joined));
        for bad in [
            "",
            "voters = [1, 1]\n",
            "voters = [0]\n",
            "voters = [1]\n[addresses]\n2 = \"h:2\"\n",
            "voters = [1]\n[hints]\nx = \"h:2\"\n",
            "voters = [1]\nextra = 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), Ok(None));
        write(dir.path(), &f).unwrap();
        assert_eq!(read(dir.path()), Ok(Some(f)));
    }
}
