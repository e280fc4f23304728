//! The identity file, `data_dir/identity`: which member of which cluster this data
//! directory belongs to.
//!
//! ```toml
//! # raftkv: the cluster member this data directory belongs to. Written once; do not edit.
//! member_id = 2
//! cluster_id = "5f0c9e3a7d4b21f08c6e2a9d3b7f1e40"
//! ```
//!
//! Written once, when the member joins its cluster (at bootstrap), durably: a temporary
//! file is written and synced, renamed over the name, and the directory synced
//! (`storage::write_file_durably`). It is read strictly: an unknown key, a missing one
//! or a cluster ID that is not 32 hex digits refuses the start with the file's name, so
//! a damaged file never lets the node take part under a guessed identity.

use std::path::{Path, PathBuf};

use raft::NodeId;
use serde::Deserialize;

use super::ClusterId;

pub const FILE_NAME: &str = "identity";

/// What the file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityFile {
    pub member_id: NodeId,
    pub cluster_id: ClusterId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    member_id: NodeId,
    cluster_id: String,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// `Ok(None)` if the directory has no identity file (a new member, or a directory from
/// before identities existed).
pub fn read(data_dir: &Path) -> Result<Option<IdentityFile>, String> {
    crate::state_file::read(
        data_dir,
        FILE_NAME,
        "says which cluster this data belongs to",
        parse,
    )
}

pub fn parse(text: &str) -> Result<IdentityFile, String> {
    let raw: OnDisk = toml::from_str(text).map_err(|e| e.message().to_string())?;
    if raw.member_id == 0 {
        return Err("member_id 0".into());
    }
    Ok(IdentityFile {
        member_id: raw.member_id,
        cluster_id: raw.cluster_id.parse()?,
    })
}

pub fn render(f: &IdentityFile) -> String {
    format!(
        "# raftkv: the cluster member this data directory belongs to. Written once; do not edit.\n\
         member_id = {}\ncluster_id = \"{}\"\n",
        f.member_id, f.cluster_id
    )
}

/// Writes the file durably (see the module docs).
pub fn write(data_dir: &Path, f: &IdentityFile) -> Result<(), String> {
    crate::state_file::write(data_dir, FILE_NAME, &render(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_strict() {
        let f = IdentityFile {
            member_id: 7,
            cluster_id: ClusterId(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
        };
        assert_eq!(parse(&render(&f)), Ok(f));
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), Ok(None));
        write(&dir.path().join("new"), &f).unwrap();
        assert_eq!(read(&dir.path().join("new")), Ok(Some(f)));
        for bad in [
            "member_id = 1\n",
            "member_id = 0\ncluster_id = \"00000000000000000000000000000001\"\n",
            "member_id = 1\ncluster_id = \"1234\"\n",
            "member_id = 1\ncluster_id = \"0000000000000000000000000000000g\"\n",
            "member_id = 1\ncluster_id = \"00000000000000000000000000000001\"\nextra = 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        std::fs::write(path(dir.path()), "member_id = 1\n").unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.contains("is damaged"), "{err}");
    }
}
