//! The seen-members file, `data_dir/seen_members`: the members this node has seen
//! bound to its cluster ID (in a handshake), so that one of them that comes back with
//! an empty data directory is told it forgot its vote and its log (`cluster_id/`).
//!
//! ```toml
//! # raftkv: members this node has seen bound to its cluster. Rewritten as it grows; do not edit.
//! cluster_id = "5f0c9e3a7d4b21f08c6e2a9d3b7f1e40"
//! members = [1, 3]
//! ```
//!
//! The record is about one cluster: it counts only beside an identity file with the same
//! cluster ID (an identity file deleted and a new ID minted starts a new record).
//!
//! Rewritten (never edited in place) each time a member is seen bound for the first
//! time, durably, like the identity file (`storage::write_file_durably`: a temporary
//! file written and synced, renamed over the name, the directory synced), and before
//! any Raft frame is exchanged with that member. It only grows: a member ID is never
//! forgotten. Read strictly: a damaged file refuses the start with its name (an
//! unreadable record would let a wiped member slip back in).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use raft::NodeId;
use serde::Deserialize;

use super::ClusterId;

pub const FILE_NAME: &str = "seen_members";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    cluster_id: String,
    members: Vec<NodeId>,
}

/// What the file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenFile {
    pub cluster_id: ClusterId,
    pub members: BTreeSet<NodeId>,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// `Ok(None)` if there is no file (no member seen yet, or a directory from before the
/// file existed).
pub fn read(data_dir: &Path) -> Result<Option<SeenFile>, String> {
    crate::state_file::read(
        data_dir,
        FILE_NAME,
        "lists the members this node has seen in its cluster",
        parse,
    )
}

pub fn parse(text: &str) -> Result<SeenFile, String> {
    let raw: OnDisk = toml::from_str(text).map_err(|e| e.message().to_string())?;
    if raw.members.contains(&0) {
        return Err("member 0".into());
    }
    Ok(SeenFile {
        cluster_id: raw.cluster_id.parse()?,
        members: raw.members.into_iter().collect(),
    })
}

pub fn render(f: &SeenFile) -> String {
    let list: Vec<String> = f.members.iter().map(|m| m.to_string()).collect();
    format!(
        "# raftkv: members this node has seen bound to its cluster. Rewritten as it grows; do \
         not edit.\ncluster_id = \"{}\"\nmembers = [{}]\n",
        f.cluster_id,
        list.join(", ")
    )
}

/// Writes the whole file durably (see the module docs).
pub fn write(data_dir: &Path, f: &SeenFile) -> Result<(), String> {
    crate::state_file::write(data_dir, FILE_NAME, &render(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_strict() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), Ok(None));
        let f = SeenFile {
            cluster_id: ClusterId(0xabcdef),
            members: [3, 1, 7].into_iter().collect(),
        };
        write(dir.path(), &f).unwrap();
        assert_eq!(read(dir.path()), Ok(Some(f.clone())));
        let empty = SeenFile {
            members: BTreeSet::new(),
            ..f
        };
        assert_eq!(parse(&render(&empty)), Ok(empty));
        const C: &str = "cluster_id = \"00000000000000000000000000000001\"\n";
        for bad in [
            "".to_string(),
            "members = [1]\n".to_string(),
            format!("{C}members = [0]\n"),
            format!("{C}members = [1]\nextra = 2\n"),
            format!("{C}members = 1\n"),
            "cluster_id = \"12\"\nmembers = [1]\n".to_string(),
        ] {
            assert!(parse(&bad).is_err(), "{bad:?} parsed");
        }
        std::fs::write(path(dir.path()), "members = [\n").unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.contains("is damaged"), "{err}");
    }
}
