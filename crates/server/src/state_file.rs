//! The small TOML files a member keeps beside its log (`identity`, `membership`,
//! `seen_members`): each is written durably as a whole (`storage::write_file_durably`) and
//! read strictly. A missing file is a normal state (not written yet); a file that cannot
//! be read or parsed refuses the start, with the file's name and what it is for, rather
//! than letting the node guess.

use std::path::Path;

/// `Ok(None)` if `data_dir/name` does not exist; otherwise `parse` of its text. `purpose`
/// completes "it ..." in the refusal (e.g. "says which cluster this data belongs to").
pub fn read<T>(
    data_dir: &Path,
    name: &str,
    purpose: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    let p = data_dir.join(name);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
    };
    parse(&text).map(Some).map_err(|e| {
        format!(
            "{} is damaged ({e}); it {purpose}, so the node will not start without it",
            p.display()
        )
    })
}

/// Writes `data_dir/name` durably (temp file, fdatasync, rename, directory fsync).
pub fn write(data_dir: &Path, name: &str, text: &str) -> Result<(), String> {
    storage::write_file_durably(data_dir, name, text.as_bytes())
        .map(|_| ())
        .map_err(|e| format!("cannot write {}: {e}", data_dir.join(name).display()))
}
